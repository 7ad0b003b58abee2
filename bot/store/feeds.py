"""The store's feeds: each feed's state and polling, its 304s (written in groups) and failures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.schedule import Polling
from bot.store.database import Database
from bot.store.schema import feed_polling, feeds


@dataclass(frozen=True)
class FeedState:
    """What the bot has learned about one feed: validators, last success and error, counts."""

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


class FeedStore(Database):
    """What each feed's polls found, and how it is polled next."""

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
