"""The store's stories: which queued alerts are near-duplicates, and the count each post shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.models import AlertContent, Article
from bot.store.content import decode_content
from bot.store.database import Database
from bot.store.schema import alerts, stories, story_members
from bot.story import (
    MAX_RECENT,
    Recent,
    Signature,
    StoryGrouping,
    StoryPolicy,
    same_story,
    story_sources,
)


@dataclass(frozen=True)
class ThreadParent:
    """Where a reply goes: its story's first alert, as delivered so far."""

    story_id: int
    status: str  # "pending", "sent" or "parked"
    ts: str | None  # the message's ts in Slack once sent
    channel_id: str | None


@dataclass(frozen=True)
class StoryUpdate:
    """A posted story whose "also reported by" count should change (or be checked again)."""

    story_id: int
    channel: str
    channel_id: str | None
    ts: str | None
    content: AlertContent
    article_key: str
    sources: int  # other sources whose reports are in the thread now
    shown: int  # the count the message shows
    settled: bool  # no reply of the story is still waiting to be delivered


class StoryStore(Database):
    """Stories are grouped in the transaction that queues their alerts; see bot/story.py."""

    def _join_story(
        self,
        conn: Connection,
        alert_id: int,
        article: Article,
        content: AlertContent,
        grouping: StoryGrouping,
        now: datetime,
        recent: dict[str, list[Recent]],
    ) -> None:
        """Make a just-queued alert a member of the recent story it repeats, or a story of its
        own. `recent` holds each channel's recent members for this transaction."""
        signature = grouping.signatures.get(article.feed_key)
        if signature is None or not signature.hashes:  # nothing to compare: posted on its own
            return
        policy = grouping.policy
        channel = content.channel
        if channel not in recent:
            recent[channel] = _recent_members(conn, channel, policy, now)
        found = same_story(signature, recent[channel], now, policy)
        story_id = alert_id if found is None else found.story_id
        conn.execute(
            story_members.insert().values(
                alert_id=alert_id,
                story_id=story_id,
                channel=channel,
                signature=signature.encode(),
                source=content.source,
                at=now,
            )
        )
        if found is None:
            conn.execute(stories.insert().values(alert_id=alert_id, shown=0, recount=False))
        else:  # its delivery may change the count the first post shows
            conn.execute(
                stories.update().where(stories.c.alert_id == story_id).values(recount=True)
            )
        recent[channel].append(Recent(alert_id, story_id, signature, now))

    def story_copies(
        self, items: Sequence[tuple[str, str, Signature]], policy: StoryPolicy, now: datetime
    ) -> set[tuple[str, str]]:
        """Of `items` (channel, article cross key, signature), those that repeat a story already
        queued or posted in their channel (not parked): they will go into its thread."""
        found: set[tuple[str, str]] = set()
        if not policy.enabled:
            return found
        recent: dict[str, list[Recent]] = {}
        with self._tx() as conn:
            for channel, key, sig in items:
                if channel not in recent:
                    recent[channel] = _recent_members(conn, channel, policy, now)
                member = same_story(sig, recent[channel], now, policy)
                if member is None:
                    continue
                status = conn.execute(
                    sa.select(alerts.c.status).where(alerts.c.id == member.story_id)
                ).scalar_one_or_none()
                if status in ("pending", "sent"):
                    found.add((channel, key))
        return found

    def prune_stories(self, now: datetime, window: timedelta) -> int:
        """Forget story members queued more than `window` ago (no copy can join them any more)
        unless their alert still waits to be delivered or their story's count is still to be
        shown, then the stories left without members; returns how many rows went."""
        pending = (
            sa.select(alerts.c.id)
            .where(alerts.c.id == story_members.c.alert_id, alerts.c.status == "pending")
            .exists()
        )
        counting = sa.select(stories.c.alert_id).where(stories.c.recount.is_(True))
        members = (
            sa.select(story_members.c.alert_id)
            .where(story_members.c.story_id == stories.c.alert_id)
            .exists()
        )
        with self._tx() as conn:
            gone = conn.execute(
                story_members.delete().where(
                    story_members.c.at < now - window,
                    ~pending,
                    story_members.c.story_id.not_in(counting),  # its count is still to show
                )
            ).rowcount
            gone += conn.execute(
                stories.delete().where(stories.c.recount.is_(False), ~members)
            ).rowcount
        return max(gone, 0)

    def story_parents(self, alert_ids: Sequence[int]) -> dict[int, int]:
        """For the alerts among `alert_ids` that go into a thread: the story each belongs to."""
        if not alert_ids:
            return {}
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(story_members.c.alert_id, story_members.c.story_id).where(
                    story_members.c.alert_id.in_(list(alert_ids)),
                    story_members.c.story_id != story_members.c.alert_id,
                )
            ).all()
        return {r.alert_id: r.story_id for r in rows}

    def thread_parent(self, story_id: int) -> ThreadParent:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(alerts.c.status, alerts.c.slack_ts, alerts.c.slack_channel_id).where(
                    alerts.c.id == story_id
                )
            ).one()
        return ThreadParent(story_id, row.status, row.slack_ts, row.slack_channel_id)

    def leave_story(self, alert_id: int) -> None:
        """The alert is posted top-level after all (its story's first post never went out):
        from now on it starts a story of its own."""
        with self._tx() as conn:
            old = conn.execute(
                sa.select(story_members.c.story_id).where(story_members.c.alert_id == alert_id)
            ).scalar_one_or_none()
            if old is None or old == alert_id:
                return
            conn.execute(
                story_members.update()
                .where(story_members.c.alert_id == alert_id)
                .values(story_id=alert_id)
            )
            conn.execute(
                self._insert(stories)
                .values(alert_id=alert_id, shown=0, recount=False)
                .on_conflict_do_nothing()
            )

    def story_updates(self, now: datetime, limit: int = 50) -> list[StoryUpdate]:
        """Stories whose count may have changed (a reply was queued), not waiting to retry."""
        with self._tx() as conn:
            heads = conn.execute(
                sa.select(
                    stories.c.alert_id,
                    stories.c.shown,
                    alerts.c.channel,
                    alerts.c.status,
                    alerts.c.slack_ts,
                    alerts.c.slack_channel_id,
                    alerts.c.content,
                    alerts.c.cross_key,
                )
                .join(alerts, alerts.c.id == stories.c.alert_id)
                .where(
                    stories.c.recount.is_(True),
                    sa.or_(stories.c.retry_at.is_(None), stories.c.retry_at <= now),
                )
                .order_by(stories.c.alert_id)
                .limit(limit)
            ).all()
            if not heads:
                return []
            members = conn.execute(
                sa.select(story_members.c.story_id, story_members.c.source, alerts.c.status)
                .join(alerts, alerts.c.id == story_members.c.alert_id)
                .where(
                    story_members.c.story_id.in_([h.alert_id for h in heads]),
                    story_members.c.alert_id != story_members.c.story_id,
                )
            ).all()
        sent: dict[int, list[str]] = {}
        waiting: set[int] = set()
        for m in members:
            if m.status == "sent":
                sent.setdefault(m.story_id, []).append(m.source)
            elif m.status == "pending":
                waiting.add(m.story_id)
        updates = []
        for h in heads:
            content = decode_content(h.content)
            updates.append(
                StoryUpdate(
                    story_id=h.alert_id,
                    channel=h.channel,
                    channel_id=h.slack_channel_id,
                    ts=h.slack_ts if h.status == "sent" else None,
                    content=content,
                    article_key=h.cross_key,
                    sources=story_sources(sent.get(h.alert_id, []), content.source),
                    shown=h.shown,
                    settled=h.alert_id not in waiting and h.status != "pending",
                )
            )
        return updates

    def story_shown(self, story_id: int, shown: int, settled: bool) -> None:
        """The message shows `shown`; with `settled`, nothing is left to count until the next
        reply is queued."""
        values: Mapping[str, object] = {"shown": shown, "retry_at": None}
        if settled:
            values = {**values, "recount": False}
        with self._tx() as conn:
            conn.execute(stories.update().where(stories.c.alert_id == story_id).values(**values))

    def story_retry(self, story_id: int, retry_at: datetime) -> None:
        with self._tx() as conn:
            conn.execute(
                stories.update().where(stories.c.alert_id == story_id).values(retry_at=retry_at)
            )


def _recent_members(
    conn: Connection, channel: str, policy: StoryPolicy, now: datetime
) -> list[Recent]:
    """The channel's story members within the window, newest first (at most MAX_RECENT)."""
    rows = conn.execute(
        sa.select(
            story_members.c.alert_id,
            story_members.c.story_id,
            story_members.c.signature,
            story_members.c.at,
        )
        .where(
            story_members.c.channel == channel,
            story_members.c.at >= now - policy.window,
        )
        .order_by(story_members.c.at.desc(), story_members.c.alert_id.desc())
        .limit(MAX_RECENT)
    ).all()
    return [Recent(r.alert_id, r.story_id, Signature.decode(r.signature), r.at) for r in rows]
