"""Drain the outbox per channel at Slack's pace: post, reconcile, retry or park — never drop."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.errors import (
    SlackCredentialError,
    SlackPermanentError,
    SlackTransientError,
    SlackUnknownOutcomeError,
)
from bot.models import AlertTag
from bot.pacing import Bucket, backoff, rate_limited_delay, retry_delay
from bot.runtime import Runtime
from bot.slack import CONTENT_ERRORS, DESTINATION_ERRORS
from bot.store import PendingAlert

log = logging.getLogger("newswatch.deliver")

BATCH = 500  # alerts taken from the store per pass


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    parked: int = 0
    reconciled: int = 0  # found already posted in Slack: not posted again
    paced_until: datetime | None = None  # a channel still has due alerts once its pace allows


@dataclass
class _Pass:
    """What one pass learns as it goes (its channels run concurrently)."""

    rng: random.Random
    stopped: bool = False  # Slack rejected the token: nobody sends any more this pass
    sent: int = 0
    failed: int = 0
    parked: int = 0
    reconciled: int = 0
    paced_until: datetime | None = None
    threads: dict[int, int] = field(default_factory=dict)  # reply alert id: its story's first


async def deliver_due(rt: Runtime, rng: random.Random | None = None) -> DeliveryReport:
    """One pass: every channel drains its due alerts in order, concurrently, at its pace.

    A channel stops for this pass at its first failure (its order is kept) or when its
    bucket is empty; no channel waits for another.
    """
    now = rt.clock.now()
    if rt.sending_paused_until is not None and now < rt.sending_paused_until:
        return DeliveryReport()
    # a channel can take at most `burst` posts per pass: fetch no more, so none crowds out another
    due = await rt.db(rt.store.due_alerts, now, BATCH, per_channel=rt.pace.burst)
    state = _Pass(rng or random.Random())
    if not due:
        await update_stories(rt, state.rng)
        return DeliveryReport()
    channel_ids = await rt.db(rt.store.channel_ids)
    by_channel: dict[str, list[PendingAlert]] = {}
    for alert in due:
        by_channel.setdefault(alert.channel, []).append(alert)
    state.threads = await rt.db(rt.store.story_parents, [a.id for a in due if a.notice is None])
    sent_to = await asyncio.gather(
        *(
            _drain(rt, state, channel, alerts, channel_ids.get(channel))
            for channel, alerts in by_channel.items()
        )
    )
    if state.sent or state.reconciled:
        rt.sending_paused_until = None
        await _resolve_recovered(rt, [c for c, ok in zip(by_channel, sent_to, strict=True) if ok])
    await update_stories(rt, state.rng)
    return DeliveryReport(
        state.sent, state.failed, state.parked, state.reconciled, state.paced_until
    )


async def _drain(
    rt: Runtime, state: _Pass, channel: str, alerts: Sequence[PendingAlert], channel_id: str | None
) -> bool:
    """Post one channel's due alerts in order; True when at least one reached it."""
    key = channel_id or channel
    if key != channel and channel in rt.buckets:  # its ID is known now: one bucket per channel
        rt.buckets.setdefault(key, rt.buckets.pop(channel))
    delivered = False
    for alert in alerts:
        if state.stopped:
            break
        now = rt.clock.now()
        bucket = rt.buckets.get(key) or Bucket.full(rt.pace, now)
        taken = bucket.take(rt.pace, now)
        if taken is None:
            ready = bucket.ready_at(rt.pace, now)
            state.paced_until = min(state.paced_until or ready, ready)
            break
        rt.buckets[key] = taken
        outcome = await _deliver_one(rt, state, alert, channel_id)
        delivered = delivered or outcome == "sent"
        if outcome == "held":
            break
    return delivered


async def _deliver_one(
    rt: Runtime, state: _Pass, alert: PendingAlert, channel_id: str | None
) -> str:
    """Post one alert (after looking for an earlier uncertain post of it); the outcome is
    "sent", "parked" (the channel carries on) or "held" (the channel waits)."""
    if alert.edit_of is not None:  # into the thread of the alert it follows, if that was posted
        thread_ts = await rt.db(rt.store.edit_thread, alert.edit_of)
    else:
        thread_ts = await _thread_of(rt, state, alert)
    if alert.unknown_since is not None:
        found = await _find_earlier_post(rt, state, alert, channel_id, thread_ts)
        if found == "held":
            return "held"
        if found == "found":
            return "sent"
    since = await rt.db(rt.store.begin_attempt, alert.id, rt.clock.now())
    tag = AlertTag.of(alert.id, alert.article_key)
    plain = False
    while True:
        try:
            if alert.notice is not None:
                result = await rt.sender.send_notice(alert.channel, alert.notice, tag)
            elif alert.batch is not None:
                result = await rt.sender.send_batch(alert.batch, tag, plain=plain)
            elif alert.edit_of is not None or thread_ts is not None:
                edit = alert.edit_of is not None
                result = await rt.sender.send_follow_up(
                    alert.content, thread_ts, tag, edit=edit, plain=plain
                )
            else:
                result = await rt.sender.send(alert.content, tag, plain=plain)
        except SlackUnknownOutcomeError as exc:
            # it may be in Slack already: the next attempt looks for it first
            delay = backoff(alert.attempts, rt.pace, state.rng)
            await _retry_later(rt, state, alert, exc.reason, delay, since)
            return "held"
        except SlackTransientError as exc:
            if exc.rate_limited:
                delay = rate_limited_delay(exc.retry_after, rt.pace, state.rng)
            else:
                delay = retry_delay(alert.attempts, exc.retry_after, state.rng, rt.pace)
            await _retry_later(rt, state, alert, exc.reason, delay, alert.unknown_since)
            return "held"
        except SlackCredentialError as exc:
            state.stopped = True
            rt.sending_paused_until = rt.clock.now() + rt.pace.credential_pause
            await _retry_later(
                rt, state, alert, exc.reason, rt.pace.credential_pause, alert.unknown_since
            )
            await rt.notice(
                "slack:credentials",
                f"Slack rejected the token ({exc.reason}): all sending is stopped and every "
                "alert is kept until the token is fixed",
            )
            return "held"
        except SlackPermanentError as exc:
            if exc.reason in CONTENT_ERRORS and not plain and alert.notice is None:
                log.warning("alert id=%d refused (%s): trying plain text", alert.id, exc.reason)
                plain = True  # exactly one fallback: the escaped text without blocks
                continue
            return await _park(rt, state, alert, exc.reason)
        await rt.db(rt.store.mark_sent, alert.id, result.ts, result.channel_id, rt.clock.now())
        log.info("alert id=%d channel=%s status=sent ts=%s", alert.id, alert.channel, result.ts)
        state.sent += 1
        return "sent"


async def _find_earlier_post(
    rt: Runtime,
    state: _Pass,
    alert: PendingAlert,
    channel_id: str | None,
    thread_ts: str | None = None,
) -> str:
    """Look in Slack (in the thread of `thread_ts` for a reply) for an earlier post of the
    alert: "found", "absent" or "held"."""
    assert alert.unknown_since is not None
    try:
        tag = AlertTag.of(alert.id, alert.article_key)
        found = await rt.sender.find(
            alert.channel, tag, alert.unknown_since, channel_id, thread_ts or None
        )
    except SlackTransientError as exc:
        delay = retry_delay(alert.attempts, exc.retry_after, state.rng, rt.pace)
        await _retry_later(rt, state, alert, exc.reason, delay, alert.unknown_since)
        return "held"
    except SlackPermanentError as exc:  # no history scope, or no channel ID yet
        await rt.notice(
            f"slack:{alert.channel}:history",
            f"cannot read the history of {alert.channel} ({exc.reason}): an alert whose post "
            "was interrupted is posted again and may appear twice (grant channels:history "
            "and groups:history)",
        )
        return "absent"
    await rt.resolve(f"slack:{alert.channel}:history", f"history of {alert.channel} is readable")
    if found is None:
        log.info("alert id=%d channel=%s not in Slack: posting", alert.id, alert.channel)
        return "absent"
    await rt.db(
        rt.store.mark_sent, alert.id, found.ts, found.channel_id or channel_id, rt.clock.now()
    )
    log.info("alert id=%d channel=%s status=sent (found ts=%s)", alert.id, alert.channel, found.ts)
    state.reconciled += 1
    return "found"


async def _park(rt: Runtime, state: _Pass, alert: PendingAlert, reason: str) -> str:
    route = reason in DESTINATION_ERRORS
    count = await rt.db(
        rt.store.park, alert.id, reason, rt.config_fingerprint, rt.clock.now(), route=route
    )
    state.parked += count
    log.warning(
        "alert id=%d channel=%s status=parked reason=%r alerts=%d",
        alert.id,
        alert.channel,
        reason,
        count,
    )
    if route:
        text = (
            f"cannot post to {alert.channel}: {reason}; its alerts are parked until the "
            f"configuration changes or `newswatch retry --channel {alert.channel}`"
        )
    else:
        text = (
            f"Slack refused an alert for {alert.channel} ({reason}); it is parked until "
            f"`newswatch retry --channel {alert.channel}`"
        )
    await rt.notice(f"slack:{alert.channel}:{reason}", text)
    return "held" if route else "parked"


async def _retry_later(
    rt: Runtime,
    state: _Pass,
    alert: PendingAlert,
    reason: str,
    delay: timedelta,
    unknown_since: datetime | None,
) -> None:
    retry_at = rt.clock.now() + delay
    await rt.db(rt.store.mark_failed, alert.id, reason, retry_at, unknown_since)
    state.failed += 1
    log.warning(
        "alert id=%d channel=%s status=retry reason=%r retry_in=%.0fs%s",
        alert.id,
        alert.channel,
        reason,
        delay.total_seconds(),
        " outcome=unknown" if unknown_since else "",
    )


async def _resolve_recovered(rt: Runtime, channels: Sequence[str]) -> None:
    """A pass delivered: a rejected token, and problems told about `channels` (which take
    messages again), are over. One read of the open notices; a pass with none costs no more."""
    prefixes = tuple(f"slack:{channel}:" for channel in channels)
    for key, _ in await rt.db(rt.store.active_notices):
        if key == "slack:credentials":
            await rt.resolve(key, "Slack accepts the token again")
        elif key.startswith(prefixes) and not key.endswith(":history"):
            channel = key.split(":")[1]
            await rt.resolve(key, f"{channel} takes messages again")


async def _thread_of(rt: Runtime, state: _Pass, alert: PendingAlert) -> str | None:
    """The ts of the message whose thread a near-duplicate goes into; None: post it top-level.

    Its story's first alert is older and in the same channel, so it has been delivered or
    given up by now: a reply whose first post was parked is posted on its own instead (and
    starts a story of its own)."""
    story = state.threads.get(alert.id)
    if story is None:
        return None
    parent = await rt.db(rt.store.thread_parent, story)
    if parent.status == "sent":
        return parent.ts or ""  # no ts (a terminal): printed as a reply all the same
    log.info(
        "alert id=%d: its story's first alert is %s, posted top-level", alert.id, parent.status
    )
    await rt.db(rt.store.leave_story, alert.id)
    del state.threads[alert.id]
    return None


async def update_stories(rt: Runtime, rng: random.Random) -> int:
    """Bring the "also reported by N other sources" of each story's first message up to date;
    returns how many messages were updated. An update is idempotent (it sets the count), so a
    crash or a lost answer only means doing it again; a failed one is retried later."""
    updated = 0
    for update in await rt.db(rt.store.story_updates, rt.clock.now()):
        if update.sources == update.shown or update.ts is None or update.channel_id is None:
            # nothing to show, or nowhere to show it: done once every reply is settled
            await rt.db(rt.store.story_shown, update.story_id, update.shown, update.settled)
            continue
        tag = AlertTag.of(update.story_id, update.article_key)
        try:
            await rt.sender.update_story(
                update.content, update.channel_id, update.ts, update.sources, tag
            )
        except (SlackTransientError, SlackCredentialError) as exc:
            retry_at = rt.clock.now() + backoff(1, rt.pace, rng)
            log.warning("story id=%d update failed (%s): retried later", update.story_id, exc)
            await rt.db(rt.store.story_retry, update.story_id, retry_at)
            continue
        except SlackPermanentError as exc:  # e.g. message_not_found: nothing left to update
            log.warning("story id=%d cannot be updated (%s)", update.story_id, exc.reason)
        else:
            updated += 1
            log.info(
                "story id=%d channel=%s updated: %d other sources",
                update.story_id,
                update.channel,
                update.sources,
            )
        await rt.db(rt.store.story_shown, update.story_id, update.sources, update.settled)
    return updated
