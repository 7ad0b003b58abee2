"""State in SQL (SQLite by default): feeds, seen articles, the alert outbox, notices.

Portable SQLAlchemy Core: the same tables and statements serve PostgreSQL; every write that may
race another instance is idempotent (unique keys with ON CONFLICT DO NOTHING).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from bot.errors import StoreError
from bot.models import AlertContent, Article
from bot.schedule import Polling
from bot.store.schema import (
    ALERT_COLUMNS_V3,
    MIGRATIONS,
    alerts,
    feed_polling,
    feeds,
    migrate,
    notices,
    rule_snapshots,
    schema_version,
    seen_articles,
    slack_channels,
)

__all__ = [
    "ALERT_COLUMNS_V3",
    "MIGRATIONS",
    "AlertCounts",
    "FeedState",
    "NotModified",
    "ParkedGroup",
    "PendingAlert",
    "Store",
    "decode_content",
    "encode_content",
    "schema_version",
]


@dataclass(frozen=True)
class FeedState:
    name: str
    url: str
    etag: str | None
    last_modified: str | None
    first_polled_at: datetime | None
    last_polled_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    articles_seen: int
    polling: Polling = field(default_factory=Polling)


_NOT_MODIFIED = (
    feeds.update()
    .where(feeds.c.name == sa.bindparam("b_name"))
    .values(
        url=sa.bindparam("b_url"),
        last_polled_at=sa.bindparam("b_now"),
        last_success_at=sa.bindparam("b_now"),
        consecutive_failures=0,
    )
)


@dataclass(frozen=True)
class NotModified:
    """A poll answered 304: the feed's bookkeeping, and its polling state when it changed."""

    name: str
    url: str
    now: datetime
    polling: Polling | None = None
    previous: Polling | None = None  # what the store held, so only changed fields are written


_POLLING_COLUMNS = [c for c in feed_polling.c if c.name != "name"]


def _feed_state(row: Any) -> FeedState:
    polling = Polling(**{c.name: row[f"p_{c.name}"] for c in _POLLING_COLUMNS})
    plain = {c.name: row[c.name] for c in feeds.c}
    return FeedState(**plain, polling=Polling() if row["p_name"] is None else polling)


_FEED_STATE_QUERY = sa.select(
    feeds, feed_polling.c.name.label("p_name"), *(c.label(f"p_{c.name}") for c in _POLLING_COLUMNS)
).select_from(feeds.outerjoin(feed_polling, feed_polling.c.name == feeds.c.name))


@dataclass(frozen=True)
class PendingAlert:
    id: int
    channel: str
    content: AlertContent
    attempts: int
    unknown_since: datetime | None = None  # an earlier attempt may have posted it
    notice: str | None = None  # an operational notice's text (then `content` is a stand-in)
    article_key: str = ""  # the alert's cross-feed article key (unique within its channel)


@dataclass(frozen=True)
class AlertCounts:
    pending: int
    sent: int
    parked: int = 0


@dataclass(frozen=True)
class ParkedGroup:
    """Alerts Slack refused for good, by channel and reason."""

    channel: str
    reason: str
    scope: str  # "channel": the whole route waits; "message": only these alerts
    count: int
    since: datetime


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    """The one gateway to the database; every method is a short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert: Callable[..., Any] = (
            postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        )

    @classmethod
    def open(cls, where: Path | str) -> Store:
        """Open (creating and migrating) a SQLite file path or any SQLAlchemy database URL."""
        url = str(where)
        if "://" not in url:
            Path(url).parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{url}"
        try:
            engine = sa.create_engine(url)
            if engine.dialect.name == "sqlite":
                sa.event.listen(engine, "connect", _set_sqlite_pragmas)
            store = cls(engine)
            store.migrate()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot open database {where}: {exc}") from exc
        return store

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"database error ({self.engine.url.database}): {exc}") from exc

    def migrate(self) -> int:
        with self._tx() as conn:
            current = migrate(conn)
        return current

    # Feeds -----------------------------------------------------------------------------------

    def feed_state(self, name: str) -> FeedState | None:
        with self._tx() as conn:
            query = _FEED_STATE_QUERY.where(feeds.c.name == name)
            row = conn.execute(query).mappings().first()
        return None if row is None else _feed_state(row)

    def feed_states(self) -> list[FeedState]:
        with self._tx() as conn:
            query = _FEED_STATE_QUERY.order_by(feeds.c.name)
            rows = conn.execute(query).mappings().all()
        return [_feed_state(row) for row in rows]

    def _touch_feed(self, conn: Connection, name: str, url: str) -> None:
        conn.execute(self._insert(feeds).values(name=name, url=url).on_conflict_do_nothing())

    def _save_polling(
        self, conn: Connection, name: str, polling: Polling | None, previous: Polling | None
    ) -> None:
        """Write `polling`; given the `previous` stored value, only the fields that changed."""
        if polling is None:
            return
        values = {c.name: getattr(polling, c.name) for c in _POLLING_COLUMNS}
        changed = values
        if previous is not None:
            changed = {k: v for k, v in values.items() if getattr(previous, k) != v}
            if not changed:
                return
        # UPDATE, then INSERT for a new feed: one small statement on most polls, and one poll
        # of a feed at a time (the scheduler's rule) means no race between the two.
        updated = conn.execute(
            feed_polling.update().where(feed_polling.c.name == name).values(**changed)
        )
        if updated.rowcount == 0:
            conn.execute(self._insert(feed_polling).values(name=name, **values))

    def _update_feed(self, conn: Connection, name: str, url: str, **values: Any) -> None:
        """UPDATE the feed's row, creating it first only when missing (one statement a poll)."""
        update = feeds.update().where(feeds.c.name == name).values(url=url, **values)
        if conn.execute(update).rowcount == 0:
            self._touch_feed(conn, name, url)
            conn.execute(update)

    def save_polling(
        self, name: str, url: str, polling: Polling, previous: Polling | None = None
    ) -> None:
        """Store how the feed is polled from now on (its next poll, effective URL, …)."""
        with self._tx() as conn:
            self._touch_feed(conn, name, url)
            self._save_polling(conn, name, polling, previous)

    def record_not_modified(
        self,
        name: str,
        url: str,
        now: datetime,
        polling: Polling | None = None,
        previous: Polling | None = None,
    ) -> None:
        self.record_not_modified_many([NotModified(name, url, now, polling, previous)])

    def record_not_modified_many(self, polls: Sequence[NotModified]) -> None:
        """Record several 304 answers in one transaction (a pass's polls, grouped): one
        executemany per statement shape, and the one-by-one path for feeds without rows."""
        with self._tx() as conn:
            rows = [{"b_name": p.name, "b_url": p.url, "b_now": p.now} for p in polls]
            if conn.execute(_NOT_MODIFIED, rows).rowcount != len(rows):
                for poll in polls:  # some feed has no row yet: create them, then write again
                    self._touch_feed(conn, poll.name, poll.url)
                conn.execute(_NOT_MODIFIED, rows)
            shapes: dict[tuple[str, ...], list[NotModified]] = {}
            for poll in polls:
                if poll.polling is None:
                    continue
                if poll.previous is None:
                    self._save_polling(conn, poll.name, poll.polling, None)
                    continue
                changed = tuple(
                    c.name
                    for c in _POLLING_COLUMNS
                    if getattr(poll.polling, c.name) != getattr(poll.previous, c.name)
                )
                if changed:
                    shapes.setdefault(changed, []).append(poll)
            for columns, same in shapes.items():
                update = feed_polling.update().where(feed_polling.c.name == sa.bindparam("b_name"))
                update = update.values({c: sa.bindparam(f"b_{c}") for c in columns})
                values = [
                    {"b_name": p.name, **{f"b_{c}": getattr(p.polling, c) for c in columns}}
                    for p in same
                ]
                if conn.execute(update, values).rowcount != len(values):
                    for poll in same:  # a row went missing: write each whole, inserting if need be
                        self._save_polling(conn, poll.name, poll.polling, None)

    def record_failure(
        self,
        name: str,
        url: str,
        reason: str,
        now: datetime,
        polling: Polling | None = None,
        previous: Polling | None = None,
    ) -> int:
        """Record a failed poll; returns the number of failures in a row."""
        with self._tx() as conn:
            self._update_feed(
                conn,
                name,
                url,
                last_polled_at=now,
                last_error=reason,
                last_error_at=now,
                consecutive_failures=feeds.c.consecutive_failures + 1,
            )
            self._save_polling(conn, name, polling, previous)
            return int(
                conn.execute(
                    sa.select(feeds.c.consecutive_failures).where(feeds.c.name == name)
                ).scalar_one()
            )

    # Articles and the outbox -----------------------------------------------------------------

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
    ) -> int:
        """In ONE transaction: mark articles seen, queue their alerts, record the feed's success.

        Returns how many alerts were queued (an alert already queued for the same article in
        the same channel — e.g. from another feed — is not queued twice).
        """
        queued = 0
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
                        }
                        for a in articles
                    ],
                )
            for article, content in new_alerts:
                result = conn.execute(
                    self._insert(alerts)
                    .values(
                        channel=content.channel,
                        cross_key=article.cross_key,
                        feed=feed,
                        content=encode_content(content),
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                    .on_conflict_do_nothing()
                )
                queued += max(result.rowcount, 0)
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

    def park(
        self, alert_id: int, reason: str, config: str, now: datetime, *, route: bool = False
    ) -> int:
        """Park an alert Slack refused for good (with `route`: every pending alert of its
        channel too, which then waits as a whole). Returns how many alerts were parked."""
        with self._tx() as conn:
            where = alerts.c.id == alert_id
            if route:
                channel = sa.select(alerts.c.channel).where(alerts.c.id == alert_id)
                where = sa.or_(
                    where,
                    sa.and_(
                        alerts.c.channel == channel.scalar_subquery(),
                        alerts.c.status == "pending",
                    ),
                )
            result = conn.execute(
                alerts.update()
                .where(where)
                .values(
                    status="parked",
                    parked_reason=reason,
                    parked_scope="channel" if route else "message",
                    parked_config=config,
                    parked_at=now,
                    last_error=reason,
                )
            )
            conn.execute(
                alerts.update()
                .where(alerts.c.id == alert_id)
                .values(attempts=alerts.c.attempts + 1)
            )
        return max(result.rowcount, 0)

    def unpark(
        self, now: datetime, *, channel: str | None = None, unless_config: str | None = None
    ) -> int:
        """Parked alerts become pending again (all, one channel's, or those parked under
        another configuration than `unless_config`). Returns how many."""
        where = alerts.c.status == "parked"
        if channel is not None:
            where = sa.and_(where, alerts.c.channel == channel)
        if unless_config is not None:
            where = sa.and_(
                where,
                sa.or_(alerts.c.parked_config.is_(None), alerts.c.parked_config != unless_config),
            )
        with self._tx() as conn:
            result = conn.execute(
                alerts.update()
                .where(where)
                .values(
                    status="pending",
                    next_attempt_at=now,
                    parked_reason=None,
                    parked_scope=None,
                    parked_config=None,
                    parked_at=None,
                )
            )
        return max(result.rowcount, 0)

    def parked(self) -> list[ParkedGroup]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(
                    alerts.c.channel,
                    alerts.c.parked_reason,
                    alerts.c.parked_scope,
                    sa.func.count(),
                    sa.func.min(alerts.c.parked_at),
                )
                .where(alerts.c.status == "parked")
                .group_by(alerts.c.channel, alerts.c.parked_reason, alerts.c.parked_scope)
                .order_by(alerts.c.channel, alerts.c.parked_reason)
            ).all()
        return [
            ParkedGroup(r[0], r[1] or "", r[2] or "message", int(r[3]), r[4].replace(tzinfo=UTC))
            for r in rows
        ]

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

    # Notices and rule snapshots -------------------------------------------------------------

    def set_notice(self, key: str, active: bool, message: str, now: datetime) -> bool:
        """Record a problem as raised or cleared; True when that is a change worth telling."""
        with self._tx() as conn:
            row = conn.execute(sa.select(notices.c.active).where(notices.c.key == key)).first()
            if row is None and not active:
                return False
            if row is not None and bool(row.active) == active:
                return False
            values = {"active": active, "message": message, "changed_at": now}
            if row is None:
                conn.execute(
                    self._insert(notices).values(key=key, **values).on_conflict_do_nothing()
                )
            else:
                conn.execute(notices.update().where(notices.c.key == key).values(**values))
        return True

    def active_notices(self) -> list[tuple[str, str]]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(notices.c.key, notices.c.message)
                .where(notices.c.active.is_(True))
                .order_by(notices.c.key)
            ).all()
        return [(r.key, r.message) for r in rows]

    def save_rule_snapshots(self, sources: dict[str, str], now: datetime) -> None:
        """Remember the text of rule files that loaded cleanly (their last good version)."""
        if not sources:
            return
        with self._tx() as conn:
            for path, source in sources.items():
                stmt = self._insert(rule_snapshots).values(path=path, source=source, saved_at=now)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["path"],
                        set_={"source": stmt.excluded.source, "saved_at": stmt.excluded.saved_at},
                    )
                )

    def rule_snapshots(self) -> dict[str, str]:
        with self._tx() as conn:
            return dict(
                conn.execute(sa.select(rule_snapshots.c.path, rule_snapshots.c.source)).all()
            )


def _pending(row: Any) -> PendingAlert:
    if row.kind == "notice":
        text = str(json.loads(row.content).get("notice", ""))
        stand_in = AlertContent(row.channel, text, None, "newswatch", None, (), (), ())
        return PendingAlert(
            row.id, row.channel, stand_in, row.attempts, row.unknown_since, text, row.cross_key
        )
    content = decode_content(row.content)
    return PendingAlert(
        row.id, row.channel, content, row.attempts, row.unknown_since, None, row.cross_key
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_content(content: AlertContent) -> str:
    return json.dumps(
        {
            "channel": content.channel,
            "title": content.title,
            "link": content.link,
            "source": content.source,
            "published": content.published.isoformat() if content.published else None,
            "rules": list(content.rules),
            "terms": list(content.terms),
            "summary": list(content.summary),
        },
        ensure_ascii=False,
    )


def decode_content(text: str) -> AlertContent:
    data = json.loads(text)
    published = data.get("published")
    return AlertContent(
        channel=data["channel"],
        title=data["title"],
        link=data.get("link"),
        source=data["source"],
        published=datetime.fromisoformat(published) if published else None,
        rules=tuple(data["rules"]),
        terms=tuple(data["terms"]),
        summary=tuple(data["summary"]),
    )
