"""Noise control in the running bot: a poll's alerts planned, due held alerts released."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from bot.models import AlertContent, Article
from bot.noise import Plan, Recent, batches, plan_alerts
from bot.runtime import Runtime
from bot.story import Signature

log = logging.getLogger("newswatch.hold")


async def plan_poll(
    rt: Runtime,
    alerts: Sequence[tuple[Article, AlertContent]],
    signatures: Mapping[str, Signature] | None = None,
) -> Plan:
    """Which of a poll's alerts post now and which are held (call under `rt.noise_lock`, and
    record the plan with the poll, so that two polls never both take a cap's last place).
    With the new articles' `signatures` (by feed key), copies of a story already in a channel
    are found first: they go into its thread (see `plan_alerts`)."""
    if not alerts:
        return Plan()
    rules = {rule.name: rule for rule in rt.rules.rules}
    capped = sorted(
        {n for _, c in alerts for n in c.rules if (r := rules.get(n)) and r.max_per_hour}
    )
    now = rt.clock.now()
    recent = await rt.db(rt.store.recent, capped, now) if capped else Recent()
    covered = await rt.db(rt.store.covered, [(c.channel, a.cross_key) for a, c in alerts])
    copies: set[tuple[str, str]] = set()
    if signatures:
        items = [
            (c.channel, a.cross_key, sig)
            for a, c in alerts
            if (sig := signatures.get(a.feed_key)) is not None and sig.hashes
        ]
        copies = await rt.db(rt.store.story_copies, items, rt.stories, now)
    return plan_alerts(alerts, rules, rt.noise, recent, now, covered, copies, signatures)


async def release_due(rt: Runtime) -> int:
    """Queue every batch that is due (a digest time, a cap's window reopening, the end of
    quiet hours; also any missed while the bot was down); returns how many were queued."""
    now = rt.clock.now()
    when = await rt.db(rt.store.next_release)
    if when is None or when > now:
        return 0
    rows = await rt.db(rt.store.due_holds, now)
    release = batches(rows, now, rt.noise)
    if not release.batches and not release.dropped:
        return 0
    queued = await rt.db(rt.store.queue_batches, release, now)
    for batch, ids in release.batches:
        log.info(
            "batch kind=%s channel=%s rule=%s alerts=%d queued",
            batch.kind,
            batch.channel,
            batch.rule or "-",
            len(ids),
        )
    return queued
