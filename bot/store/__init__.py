"""State in SQL (SQLite by default): one Store over feeds, the outbox, parking and notices.

Portable SQLAlchemy Core: the same tables and statements serve PostgreSQL; every write that may
race another instance is idempotent (unique keys with ON CONFLICT DO NOTHING). The package is
the only user of SQLAlchemy. schema.py holds the tables and the append-only migrations;
feeds.py, outbox.py, parking.py, notices.py, pages.py, holds.py, stories.py and edits.py each
area's reads and writes, over the engine and transaction of database.py; content.py the JSON
an alert is kept as; archive.py every polled article, its full-text search and pruning;
retention.py the pruning of seen keys, delivered alerts and cleared notices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bot.errors import StoreError
from bot.store.archive import ArchivedArticle, ArchiveSpan, ArchiveStore, SearchHit
from bot.store.content import decode_content, encode_content
from bot.store.edits import EditStore
from bot.store.feeds import FeedState, FeedStore, NotModified
from bot.store.holds import HoldStore
from bot.store.notices import NoticeStore
from bot.store.outbox import AlertCounts, OutboxStore, PendingAlert
from bot.store.pages import PAGE_RETENTION, PageCounts, PageStore
from bot.store.parking import ParkedGroup, ParkingStore
from bot.store.retention import Pruned, RetentionStore
from bot.store.schema import ALERT_COLUMNS_V3, MIGRATIONS, migrate, schema_version
from bot.store.stories import StoryUpdate, ThreadParent

__all__ = [
    "ALERT_COLUMNS_V3",
    "MIGRATIONS",
    "PAGE_RETENTION",
    "AlertCounts",
    "ArchiveSpan",
    "ArchivedArticle",
    "FeedState",
    "NotModified",
    "PageCounts",
    "ParkedGroup",
    "PendingAlert",
    "Pruned",
    "SearchHit",
    "Store",
    "StoryUpdate",
    "ThreadParent",
    "decode_content",
    "encode_content",
    "schema_version",
]


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store(
    HoldStore,
    FeedStore,
    OutboxStore,
    ParkingStore,
    NoticeStore,
    PageStore,
    ArchiveStore,
    EditStore,
    RetentionStore,
):
    """The one gateway to the database; every method is a short transaction."""

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

    def migrate(self) -> int:
        with self._tx() as conn:
            current = migrate(conn)
        return current
