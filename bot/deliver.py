"""Drain the outbox: post due alerts, mark them sent, or schedule the retry — never drop one."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from bot.errors import SlackCredentialError, SlackPermanentError, SlackTransientError
from bot.runtime import Runtime

log = logging.getLogger("newswatch.deliver")

BATCH = 500  # alerts taken from the store per pass
RETRY_BASE = timedelta(seconds=5)
RETRY_CAP = timedelta(minutes=15)
RETRY_AFTER_CAP = timedelta(hours=1)  # a Retry-After beyond this is not believed
CREDENTIAL_PAUSE = timedelta(minutes=5)  # a rejected token is tried again this much later


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    failed: int = 0


def retry_delay(attempts: int, retry_after: float | None, rng: random.Random) -> timedelta:
    """When to try again: Slack's Retry-After (capped) when given, else capped backoff.

    Backoff doubles per attempt with ±20 % jitter; a Retry-After gets up to 1 s of jitter on
    top, never less than it asked for.
    """
    if retry_after is not None and retry_after > 0:
        told = min(timedelta(seconds=retry_after), RETRY_AFTER_CAP)
        return told + timedelta(seconds=rng.uniform(0, 1))
    backoff = min(RETRY_BASE * (1 << min(attempts, 20)), RETRY_CAP)
    return backoff * rng.uniform(0.8, 1.2)


async def deliver_due(rt: Runtime, rng: random.Random | None = None) -> DeliveryReport:
    """One pass over the due alerts, oldest first; a channel that fails waits for its retry."""
    rng = rng or random.Random()
    now = rt.clock.now()
    if rt.sending_paused_until is not None and now < rt.sending_paused_until:
        return DeliveryReport()
    due = await rt.db(rt.store.due_alerts, now, BATCH)
    held: set[str] = set()  # channels that failed this pass: keep their order, try later
    sent = failed = 0
    for alert in due:
        if alert.channel in held:
            continue
        try:
            result = await rt.sender.send(alert.content)
        except SlackTransientError as exc:
            delay = retry_delay(alert.attempts, exc.retry_after, rng)
            await _failed(rt, alert.id, alert.channel, exc.reason, delay)
            held.add(alert.channel)
            failed += 1
            continue
        except SlackPermanentError as exc:
            delay = retry_delay(alert.attempts, None, rng)
            await _failed(rt, alert.id, alert.channel, exc.reason, delay)
            failed += 1
            if isinstance(exc, SlackCredentialError):
                rt.sending_paused_until = rt.clock.now() + CREDENTIAL_PAUSE
                await rt.notice(
                    "slack:credentials",
                    f"Slack rejected the token ({exc.reason}); alerts are kept until it is fixed",
                )
                break
            held.add(alert.channel)
            await rt.notice(
                f"slack:{alert.channel}:{exc.reason}",
                f"cannot post to {alert.channel}: {exc.reason}; its alerts are kept pending",
            )
            continue
        await rt.db(rt.store.mark_sent, alert.id, result.ts, result.channel_id, rt.clock.now())
        log.info("alert id=%d channel=%s status=sent ts=%s", alert.id, alert.channel, result.ts)
        sent += 1
    if sent:
        rt.sending_paused_until = None
        await rt.resolve("slack:credentials", "Slack accepts the token again")
    return DeliveryReport(sent, failed)


async def _failed(rt: Runtime, alert_id: int, channel: str, reason: str, delay: timedelta) -> None:
    retry_at = rt.clock.now() + delay
    await rt.db(rt.store.mark_failed, alert_id, reason, retry_at)
    log.warning(
        "alert id=%d channel=%s status=retry reason=%r retry_in=%.0fs",
        alert_id,
        channel,
        reason,
        delay.total_seconds(),
    )
