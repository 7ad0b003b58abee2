"""The store's held alerts: kept back for a digest, a cap or quiet hours, then one outbox row."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.models import Batch
from bot.noise import HOUR, HeldRow, Hold, Plan, Recent, Release
from bot.store.content import decode_content, encode_content
from bot.store.database import Database
from bot.store.schema import alerts, cap_notes, held_alerts, rule_posts


class HoldStore(Database):
    """Held alerts and the rolling hour of each rule; a due batch joins the outbox."""

    def recent(self, rules: Sequence[str], now: datetime) -> Recent:
        """Each rule's alerts posted in the hour before `now`, the oldest of them, last note."""
        if not rules:
            return Recent()
        since = now - HOUR
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(rule_posts.c.rule, sa.func.count(), sa.func.min(rule_posts.c.at))
                .where(rule_posts.c.rule.in_(list(rules)), rule_posts.c.at > since)
                .group_by(rule_posts.c.rule)
            ).all()
            noted = conn.execute(
                sa.select(cap_notes.c.rule, cap_notes.c.noted_at).where(
                    cap_notes.c.rule.in_(list(rules))
                )
            ).all()
        return Recent(
            counts={r[0]: r[1] for r in rows},
            oldest={r[0]: _utc(r[2]) for r in rows},
            noted={r[0]: _utc(r[1]) for r in noted},
        )

    def covered(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (channel, article key) pairs already in a batch or waiting for one that is
        not a pending digest's (a digest drops what posts meanwhile; the others cannot)."""
        if not pairs:
            return set()
        keys = sorted({key for _, key in pairs})
        found: set[tuple[str, str]] = set()
        with self._tx() as conn:
            for start in range(0, len(keys), 500):
                rows = conn.execute(
                    sa.select(held_alerts.c.channel, held_alerts.c.cross_key).where(
                        held_alerts.c.cross_key.in_(keys[start : start + 500]),
                        sa.or_(
                            held_alerts.c.kind != "digest",
                            held_alerts.c.batch_id > 0,
                        ),
                    )
                )
                found.update((row[0], row[1]) for row in rows)
        return found & set(pairs)

    def next_release(self) -> datetime | None:
        """When the earliest held alert is due (None: nothing is held)."""
        with self._tx() as conn:
            when = conn.execute(
                sa.select(sa.func.min(held_alerts.c.release_at)).where(
                    held_alerts.c.batch_id.is_(None)
                )
            ).scalar()
        return _utc(when) if when is not None else None

    def due_holds(self, now: datetime) -> list[HeldRow]:
        """Held alerts due by `now`, each marked `posted` when an alert for its article went
        to its channel through the outbox meanwhile."""
        posted = (
            sa.select(alerts.c.id)
            .where(
                alerts.c.channel == held_alerts.c.channel,
                alerts.c.cross_key == held_alerts.c.cross_key,
                alerts.c.kind.is_(None),
            )
            .exists()
        )
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(held_alerts, posted.label("posted"))
                .where(held_alerts.c.batch_id.is_(None), held_alerts.c.release_at <= now)
                .order_by(held_alerts.c.id)
            ).all()
        return [_held(r) for r in rows]

    def queue_batches(self, release: Release, now: datetime) -> int:
        """In ONE transaction: each batch joins the outbox (sent like an alert: in order, tagged,
        reconciled after a crash) and its holds are marked as carried; dropped holds too."""
        with self._tx() as conn:
            for batch, ids in release.batches:
                result = conn.execute(
                    alerts.insert().values(
                        channel=batch.channel,
                        cross_key=f"batch:{batch.kind}:{batch.rule}:{min(ids)}",
                        feed="",
                        content=encode_batch(batch),
                        kind="batch",
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
                inserted = result.inserted_primary_key
                batch_id = inserted[0] if inserted else None
                conn.execute(
                    held_alerts.update().where(held_alerts.c.id.in_(ids)).values(batch_id=batch_id)
                )
            if release.dropped:
                conn.execute(
                    held_alerts.update()
                    .where(held_alerts.c.id.in_(release.dropped))
                    .values(batch_id=0)
                )
        return len(release.batches)

    def prune_noise(self, now: datetime, keep_batched: timedelta) -> int:
        """Forget what noise control no longer needs; returns how many rows went: posts and cap
        notes older than the cap's hour, and held alerts carried by a batch (or dropped) more
        than `keep_batched` ago (until then they keep their article out of the channel)."""
        with self._tx() as conn:
            gone = conn.execute(rule_posts.delete().where(rule_posts.c.at <= now - HOUR)).rowcount
            gone += conn.execute(
                cap_notes.delete().where(cap_notes.c.noted_at <= now - HOUR)
            ).rowcount
            gone += conn.execute(
                held_alerts.delete().where(
                    held_alerts.c.batch_id.is_not(None),
                    held_alerts.c.release_at < now - keep_batched,
                )
            ).rowcount
        return max(gone, 0)

    def held_count(self) -> int:
        """Alerts held now (for a digest, a cap or quiet hours)."""
        with self._tx() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(held_alerts.c.batch_id.is_(None))
                ).scalar_one()
            )


def write_plan(conn: Connection, insert: Callable[..., Any], plan: Plan, now: datetime) -> None:
    """Inside a poll's transaction: the holds, the posts counted against caps, the notes."""
    if plan.spoke:
        conn.execute(
            insert(rule_posts).on_conflict_do_nothing(),
            [{"rule": r, "channel": c, "cross_key": k, "at": now} for r, c, k in plan.spoke],
        )
        conn.execute(rule_posts.delete().where(rule_posts.c.at <= now - HOUR))
    for hold in plan.holds:
        conn.execute(
            insert(held_alerts)
            .values(
                kind=hold.kind,
                channel=hold.channel,
                rule=hold.rule,
                cross_key=hold.cross_key,
                content=encode_content(hold.content),
                signature=hold.signature or None,
                held_at=now,
                release_at=hold.release_at,
            )
            .on_conflict_do_nothing()
        )
    for note in plan.notes:
        stmt = insert(cap_notes).values(rule=note.rule, noted_at=now)
        conn.execute(stmt.on_conflict_do_update(index_elements=["rule"], set_={"noted_at": now}))
        conn.execute(
            alerts.insert().values(
                channel=note.channel,
                cross_key=f"cap-note:{note.rule}:{now.isoformat()}",
                feed="",
                content=json.dumps({"notice": note.text}, ensure_ascii=False),
                kind="notice",
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )


def encode_batch(batch: Batch) -> str:
    return json.dumps(
        {
            "batch": {
                "channel": batch.channel,
                "kind": batch.kind,
                "rule": batch.rule,
                "items": [json.loads(encode_content(c)) for c in batch.items],
                "total": batch.total,
                "mentions": list(batch.mentions),
                "since": batch.since.isoformat() if batch.since else None,
                "also": [list(a) for a in batch.also],
            }
        },
        ensure_ascii=False,
    )


def decode_batch(text: str) -> Batch:
    data = json.loads(text)["batch"]
    since = data.get("since")
    return Batch(
        channel=data["channel"],
        kind=data["kind"],
        rule=data["rule"],
        items=tuple(decode_content(json.dumps(item)) for item in data["items"]),
        total=int(data["total"]),
        mentions=tuple(data.get("mentions") or ()),
        since=datetime.fromisoformat(since) if since else None,
        also=tuple(tuple(a) for a in data.get("also") or ()),
    )


def _held(row: Any) -> HeldRow:
    hold = Hold(
        row.kind,
        row.channel,
        row.rule,
        row.cross_key,
        decode_content(row.content),
        _utc(row.release_at),
        row.signature or "",
    )
    return HeldRow(row.id, hold, _utc(row.held_at), bool(row.posted))


def _utc(value: datetime) -> datetime:
    """UTCDateTime gives aware values; an aggregate (min) comes back as the raw column value."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
