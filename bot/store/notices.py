"""The store's notices (problems raised and cleared) and rule snapshots (last good rule files)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from bot.store.database import Database
from bot.store.schema import notices, rule_snapshots


class NoticeStore(Database):
    """Operational notices, each told once when raised and once when cleared; rule snapshots."""

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
