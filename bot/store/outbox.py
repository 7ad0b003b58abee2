"""The store's outbox: articles seen, the alerts queued with them, and how each delivery went."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.models import AlertContent, Article, Batch
from bot.noise import Plan
from bot.store.archive import archive_articles
from bot.store.content import decode_content, encode_content
from bot.store.edits import decode_edit
from bot.store.holds import decode_batch, write_plan
from bot.store.schema import alerts, feeds, seen_articles, slack_channels
from bot.store.stories import StoryStore
from bot.story import Recent, StoryGrouping


@dataclass(frozen=True)
class PendingAlert:
    """An alert or notice in the outbox that is due: what to post, where, and its history."""

    id: int
    channel: str
    content: AlertContent
    attempts: int
    unknown_since: datetime | None = None  # an earlier attempt may have posted it
    notice: str | None = None  # an operational notice's text (then `content` is a stand-in)
    article_key: str = ""  # the alert's cross-feed article key (unique within its channel)
    batch: Batch | None = None  # several held alerts as one message (then `content` stands in)
    edit_of: int | None = None  # an edit at the source of this alert's article: its new version


@dataclass(frozen=True)
class AlertCounts:
    """How many alerts wait, went out, or are parked (queued notices left out)."""

    pending: int
    sent: int
    parked: int = 0


class OutboxStore(StoryStore):
    """Seen articles and their alerts, written together; pending alerts until Slack has them."""

    def unseen(self, feed: str, keys: Sequence[str]) -> set[str]:
        """The feed keys among `keys` that this feed has never delivered before."""
        if not keys:
            return set()
        found: set[str] = set()
        with self._tx() as conn:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                found.update(
                    conn.execute(
                        sa.select(seen_articles.c.feed_key).where(
                            seen_articles.c.feed == feed, seen_articles.c.feed_key.in_(chunk)
                        )
                    ).scalars()
                )
        return set(keys) - found

    def record_poll(
        self,
        feed: str,
        url: str,
        articles: Sequence[Article],
        new_alerts: Sequence[tuple[Article, AlertContent]],
        *,
        etag: str | None,
        last_modified: str | None,
        now: datetime,
        noise: Plan | None = None,
        stories: StoryGrouping | None = None,
        present: Sequence[str] = (),
    ) -> int:
        """In ONE transaction: mark articles seen (and archive them), queue their alerts, record
        the feed's success.

        `present`: the feed keys of every article this (full) poll listed, new or not; each
        seen key among them is marked as last listed `now` (see RetentionStore.prune_seen).

        Returns how many alerts were queued (an alert already queued for the same article in
        the same channel — e.g. from another feed — is not queued twice). `noise`: the alerts
        held back and the notes of noise control, written in the same transaction (its `later`
        copies are queued too, each due when its channel's quiet hours end). With
        `stories`, each queued alert joins the recent story it repeats in its channel, or starts
        one.
        """
        queued = 0
        recent: dict[str, list[Recent]] = {}  # each channel's recent stories, read once
        with self._tx() as conn:
            self._touch_feed(conn, feed, url)
            if articles:
                conn.execute(
                    self._insert(seen_articles).on_conflict_do_nothing(),
                    [
                        {
                            "feed": feed,
                            "feed_key": a.feed_key,
                            "cross_key": a.cross_key,
                            "first_seen_at": now,
                            "last_seen_at": now,
                        }
                        for a in articles
                    ],
                )
                archive_articles(conn, self._insert, feed, articles, now)
            new = {a.feed_key for a in articles}
            listed = [k for k in dict.fromkeys(present) if k not in new]
            for start in range(0, len(listed), 500):
                conn.execute(
                    _STILL_LISTED,
                    {"b_feed": feed, "b_keys": listed[start : start + 500], "b_now": now},
                )
            later = noise.later if noise is not None else ()  # copies due after quiet hours
            for article, content, due in [*((a, c, now) for a, c in new_alerts), *later]:
                result = conn.execute(
                    self._insert(alerts)
                    .values(
                        channel=content.channel,
                        cross_key=article.cross_key,
                        feed=feed,
                        content=encode_content(content),
                        status="pending",
                        attempts=0,
                        next_attempt_at=due,
                        created_at=now,
                    )
                    .on_conflict_do_nothing()
                )
                queued += max(result.rowcount, 0)
                if stories is not None and result.rowcount > 0:
                    key = result.inserted_primary_key
                    assert key is not None
                    self._join_story(conn, int(key[0]), article, content, stories, now, recent)
            conn.execute(
                feeds.update()
                .where(feeds.c.name == feed)
                .values(
                    url=url,
                    etag=etag,
                    last_modified=last_modified,
                    first_polled_at=sa.func.coalesce(feeds.c.first_polled_at, now),
                    last_polled_at=now,
                    last_success_at=now,
                    consecutive_failures=0,
                    articles_seen=feeds.c.articles_seen + len(articles),
                )
            )
            if noise is not None:
                write_plan(conn, self._insert, noise, now)
        return queued

    def due_alerts(
        self, now: datetime, limit: int = 500, per_channel: int | None = None
    ) -> list[PendingAlert]:
        """Pending alerts, oldest first, of the channels whose OLDEST pending alert is due;
        with `per_channel`, at most that many of each channel, so that one channel's backlog
        never crowds another out of the batch.

        A channel waiting to retry its oldest alert sends nothing newer meanwhile, so each
        channel receives its alerts in order; a channel parked as a whole (Slack refuses the
        channel itself) sends nothing until its alerts are retried.
        """
        heads = (
            sa.select(alerts.c.channel, sa.func.min(alerts.c.id).label("head"))
            .where(alerts.c.status == "pending")
            .group_by(alerts.c.channel)
            .subquery()
        )
        head = alerts.alias("head")
        parked_routes = sa.select(alerts.c.channel).where(
            alerts.c.status == "parked", alerts.c.parked_scope == "channel"
        )
        rank = sa.func.row_number().over(partition_by=alerts.c.channel, order_by=alerts.c.id)
        due = (
            sa.select(
                alerts.c.id,
                alerts.c.channel,
                alerts.c.content,
                alerts.c.attempts,
                alerts.c.unknown_since,
                alerts.c.kind,
                alerts.c.cross_key,
                rank.label("rank"),
            )
            .join(heads, alerts.c.channel == heads.c.channel)
            .join(head, head.c.id == heads.c.head)
            .where(
                alerts.c.status == "pending",
                head.c.next_attempt_at <= now,
                alerts.c.channel.not_in(parked_routes),
            )
            .subquery()
        )
        query = sa.select(due).order_by(due.c.id).limit(limit)
        if per_channel is not None:
            query = query.where(due.c.rank <= per_channel)
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [_pending(r) for r in rows]

    def queue_notice(self, channel: str, text: str, now: datetime) -> None:
        """An operational notice joins the outbox: sent like an alert, in order, never lost."""
        with self._tx() as conn:
            conn.execute(
                alerts.insert().values(
                    channel=channel,
                    cross_key=f"notice:{now.isoformat()}:{_digest(text)}",
                    feed="",
                    content=json.dumps({"notice": text}, ensure_ascii=False),
                    kind="notice",
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )

    def begin_attempt(self, alert_id: int, now: datetime) -> datetime:
        """Record, BEFORE posting, that the alert may reach Slack from now on.

        Returns the time since which its outcome is unknown (this attempt's, or an earlier
        one's that was never settled): after a crash the sender looks for it in Slack first.
        """
        with self._tx() as conn:
            conn.execute(
                alerts.update()
                .where(alerts.c.id == alert_id)
                .values(
                    last_attempt_at=now,
                    unknown_since=sa.func.coalesce(alerts.c.unknown_since, now),
                )
            )
            since: datetime = conn.execute(
                sa.select(alerts.c.unknown_since).where(alerts.c.id == alert_id)
            ).scalar_one()
        return since

    def mark_sent(
        self, alert_id: int, ts: str | None, channel_id: str | None, now: datetime
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                alerts.update()
                .where(alerts.c.id == alert_id)
                .values(
                    status="sent",
                    sent_at=now,
                    slack_ts=ts,
                    slack_channel_id=channel_id,
                    attempts=alerts.c.attempts + 1,
                    last_error=None,
                    unknown_since=None,
                )
            )
            if channel_id:
                name = conn.execute(
                    sa.select(alerts.c.channel).where(alerts.c.id == alert_id)
                ).scalar_one()
                self._save_channel_id(conn, name, channel_id, now)

    def mark_failed(
        self,
        alert_id: int,
        reason: str,
        retry_at: datetime,
        unknown_since: datetime | None = None,
    ) -> None:
        """The alert stays pending; it is tried again at `retry_at`.

        `unknown_since`: when an attempt whose outcome is unknown began (None: every attempt
        so far is known not to have posted).
        """
        with self._tx() as conn:
            conn.execute(
                alerts.update()
                .where(alerts.c.id == alert_id)
                .values(
                    attempts=alerts.c.attempts + 1,
                    last_error=reason,
                    next_attempt_at=retry_at,
                    unknown_since=unknown_since,
                )
            )

    def _save_channel_id(self, conn: Connection, name: str, channel_id: str, now: datetime) -> None:
        stmt = self._insert(slack_channels).values(name=name, channel_id=channel_id, updated_at=now)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["name"],
                set_={"channel_id": stmt.excluded.channel_id, "updated_at": now},
                where=slack_channels.c.channel_id != stmt.excluded.channel_id,
            )
        )

    def channel_ids(self) -> dict[str, str]:
        """The channel ID Slack returned for each configured channel name posted to."""
        with self._tx() as conn:
            return dict(
                conn.execute(sa.select(slack_channels.c.name, slack_channels.c.channel_id)).all()
            )

    def alert_counts(self) -> AlertCounts:
        with self._tx() as conn:
            rows: dict[str, int] = dict(
                conn.execute(
                    sa.select(alerts.c.status, sa.func.count())
                    .where(alerts.c.kind.is_(None))  # notices waiting are not alerts
                    .group_by(alerts.c.status)
                ).all()
            )
        return AlertCounts(
            pending=rows.get("pending", 0), sent=rows.get("sent", 0), parked=rows.get("parked", 0)
        )


_STILL_LISTED = (
    seen_articles.update()
    .where(
        seen_articles.c.feed == sa.bindparam("b_feed"),
        seen_articles.c.feed_key.in_(sa.bindparam("b_keys", expanding=True)),
    )
    .values(last_seen_at=sa.bindparam("b_now"))
)


def _pending(row: Any) -> PendingAlert:
    if row.kind == "batch":
        batch = decode_batch(row.content)
        stand_in = AlertContent(row.channel, batch.kind, None, "newswatch", None, (), (), ())
        return PendingAlert(
            row.id,
            row.channel,
            stand_in,
            row.attempts,
            row.unknown_since,
            None,
            row.cross_key,
            batch,
        )
    if row.kind == "notice":
        text = str(json.loads(row.content).get("notice", ""))
        stand_in = AlertContent(row.channel, text, None, "newswatch", None, (), (), ())
        return PendingAlert(
            row.id, row.channel, stand_in, row.attempts, row.unknown_since, text, row.cross_key
        )
    if row.kind == "edit":
        of, content_json = decode_edit(row.content)
        return PendingAlert(
            row.id,
            row.channel,
            decode_content(content_json),
            row.attempts,
            row.unknown_since,
            article_key=row.cross_key,
            edit_of=of,
        )
    content = decode_content(row.content)
    return PendingAlert(
        row.id, row.channel, content, row.attempts, row.unknown_since, None, row.cross_key
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
