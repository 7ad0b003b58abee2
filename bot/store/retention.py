"""The store's retention: seen keys gone from their feed, delivered alerts and old notices pruned.

Like a feed reader (an entry still in its feed is kept, or the next poll would find it new
again; one that left it goes after a retention), a seen key is kept while its feed lists it:
each full poll marks the keys it listed (`last_seen_at`, see OutboxStore.record_poll), a 304
changes nothing. A key is forgotten once it has been missing from its feed for longer than the
retention, and only when a later full poll of that feed did not list it, so a feed that
answers 304 or fails for weeks keeps every key. An article forgotten that way and listed again
later is new: it alerts again if it matches and its alert was forgotten too (prune_alerts);
while the alert is kept, the channel's unique (channel, article) key stops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from bot.store.database import Database
from bot.store.schema import (
    alerts,
    feeds,
    held_alerts,
    notices,
    seen_articles,
    stories,
    story_members,
)


@dataclass(frozen=True)
class Pruned:
    """How many rows one pass of pruning removed, per table."""

    seen: int = 0
    alerts: int = 0
    notices: int = 0

    @property
    def total(self) -> int:
        return self.seen + self.alerts + self.notices


_seen_latest = seen_articles.alias("latest")
_GONE_KEYS = seen_articles.delete().where(
    seen_articles.c.feed == sa.bindparam("b_feed"),
    seen_articles.c.last_seen_at < sa.bindparam("b_before"),
    seen_articles.c.last_seen_at
    < (
        sa.select(sa.func.max(_seen_latest.c.last_seen_at))
        .where(_seen_latest.c.feed == sa.bindparam("b_feed"))
        .scalar_subquery()
    ),
)


class RetentionStore(Database):
    """What the bot may forget after the retention, and nothing that is still needed."""

    def prune_seen(self, before: datetime) -> int:
        """Forget the seen keys last listed by their feed before `before` and not listed by the
        feed's latest full poll (the keys that poll listed carry its time, the latest there
        is); returns how many."""
        with self._tx() as conn:
            names = conn.execute(sa.select(feeds.c.name)).scalars().all()
            if not names:
                return 0
            result = conn.execute(_GONE_KEYS, [{"b_feed": n, "b_before": before} for n in names])
        return max(result.rowcount, 0)

    def prune_alerts(self, before: datetime) -> int:
        """Forget outbox rows delivered before `before` that nothing needs any more; returns
        how many.

        Only sent rows go (posted or reconciled): pending ones (retrying, or whose outcome is
        unknown) and parked ones (waiting for `newswatch retry`) stay, whatever their age. A
        sent alert also stays while any feed still has its article's key among the seen ones
        (it is what stops another feed's copy from alerting again in the channel), while a
        story member or story refers to it, while a held alert names it as its batch, and
        while an edit of it waits to go into its thread.
        """
        edit = alerts.alias("edit")
        waiting_edit = (
            sa.select(edit.c.id)
            .where(
                edit.c.kind == "edit",
                edit.c.status.in_(("pending", "parked")),
                edit.c.cross_key.startswith(
                    sa.literal("edit:") + sa.cast(alerts.c.id, sa.String) + sa.literal(":")
                ),
            )
            .exists()
        )
        still_seen = (
            sa.select(seen_articles.c.feed)
            .where(seen_articles.c.cross_key == alerts.c.cross_key)
            .exists()
        )
        with self._tx() as conn:
            result = conn.execute(
                alerts.delete().where(
                    alerts.c.status == "sent",
                    alerts.c.sent_at < before,
                    ~still_seen,
                    alerts.c.id.not_in(sa.select(story_members.c.alert_id)),
                    alerts.c.id.not_in(sa.select(story_members.c.story_id)),
                    alerts.c.id.not_in(sa.select(stories.c.alert_id)),
                    alerts.c.id.not_in(
                        sa.select(held_alerts.c.batch_id).where(held_alerts.c.batch_id.is_not(None))
                    ),
                    ~waiting_edit,
                )
            )
        return max(result.rowcount, 0)

    def prune_notices(self, before: datetime) -> int:
        """Forget notices cleared before `before`: a cleared notice with no row is the same as
        one never raised (raising it again tells it, clearing it again says nothing)."""
        with self._tx() as conn:
            result = conn.execute(
                notices.delete().where(notices.c.active.is_(False), notices.c.changed_at < before)
            )
        return max(result.rowcount, 0)

    def prune_kept(self, now: datetime, retention: timedelta) -> Pruned:
        """Seen keys, then alerts (which may wait for their keys), then notices, past the
        retention."""
        before = now - retention
        seen = self.prune_seen(before)
        return Pruned(seen, self.prune_alerts(before), self.prune_notices(before))
