"""The store's parked alerts: those Slack refused for good, held until they are retried."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from bot.store.database import Database
from bot.store.schema import alerts


@dataclass(frozen=True)
class ParkedGroup:
    """Alerts Slack refused for good, by channel and reason."""

    channel: str
    reason: str
    scope: str  # "channel": the whole route waits; "message": only these alerts
    count: int
    since: datetime


class ParkingStore(Database):
    """Parking alerts Slack refused for good, listing them, and sending them back to the outbox."""

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
