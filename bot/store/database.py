"""What every area of the store shares: the engine, its dialect's INSERT, one transaction a call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from bot.errors import StoreError
from bot.store.schema import feeds


class Database:
    """The engine and transactions that each area of the store (feeds, outbox, …) builds on."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert: Callable[..., Any] = (
            postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        )

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"database error ({self.engine.url.database}): {exc}") from exc

    def _touch_feed(self, conn: Connection, name: str, url: str) -> None:
        """Create the feed's row if missing: both a poll's outcome and its polling need it."""
        conn.execute(self._insert(feeds).values(name=name, url=url).on_conflict_do_nothing())
