"""One poll of one feed: fetch → parse/normalize/match (worker) → dedup → store, one log line."""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from bot.dedup import select
from bot.errors import FetchError, ParseError
from bot.fetch import Fetcher
from bot.fulltext import fill_full_text
from bot.hold import plan_poll
from bot.models import FeedConfig, FetchResult
from bot.noise import quiet_until
from bot.runtime import Runtime
from bot.schedule import (
    MOVES_BEFORE_FOLLOWING,
    Polling,
    SchedulePolicy,
    after_failure,
    after_redirects,
    after_success,
    feed_hint,
    gone,
    silent_for,
)
from bot.store import FeedState, NotModified
from bot.story import StoryGrouping
from bot.work import Processed, process_body

log = logging.getLogger("newswatch.poll")

GONE = 410


class FromStore(enum.Enum):
    FROM_STORE = enum.auto()


FROM_STORE = FromStore.FROM_STORE  # poll_feed reads the feed's state itself


@dataclass(frozen=True)
class PollOutcome:
    feed: str
    status: str  # "ok", "not-modified", "degraded", "error", or not polled: "disabled", "held"
    new: int = 0
    matched: int = 0
    queued: int = 0
    error: str | None = None
    next_poll: datetime | None = None  # None: not polled again until the config changes
    failing_since: datetime | None = None  # set while the feed is failing


def current_polling(feed: FeedConfig, state: FeedState | None) -> Polling:
    """What the store knows about polling `feed`; nothing once its configured URL changed."""
    if state is None or state.url != feed.url:
        return Polling()
    return state.polling


async def poll_feed(
    rt: Runtime,
    fetcher: Fetcher,
    feed: FeedConfig,
    *,
    policy: SchedulePolicy | None = None,
    rand: Callable[[], float] = random.random,
    state: FeedState | FromStore | None = FROM_STORE,
) -> PollOutcome:
    """Poll `feed` once; `state` may be passed when the caller has just read it."""
    policy = policy or SchedulePolicy()
    if isinstance(state, FromStore):
        state = await rt.db(rt.store.feed_state, feed.name)
    first_poll = state is None or state.first_polled_at is None
    same_url = state is not None and state.url == feed.url  # validators belong to one URL
    if state is not None and not same_url:
        await _config_url_changed(rt, feed, state)
    polling = current_polling(feed, state)
    stored = state.polling if state is not None else None  # what the store holds now
    if polling.disabled_reason is not None:
        return PollOutcome(feed.name, "disabled", error=polling.disabled_reason)
    url = polling.effective_url or feed.url
    try:
        fetched = await fetcher.fetch(
            feed.name,
            url,
            etag=state.etag if state and same_url else None,
            last_modified=state.last_modified if state and same_url else None,
        )
        polling = await _follow_moves(rt, feed, polling, url, fetched)
        if fetched.not_modified:
            now = rt.clock.now()
            hint = feed_hint(None, fetched.headers.get("cache-control"))
            polling = _succeeded(feed, polling, now, hint, False, policy, rand)
            record = NotModified(feed.name, feed.url, now, polling, stored)
            await rt.db_grouped(rt.store.record_not_modified_many, record)
            await _recovered(rt, feed, state, polling, now)
            return await _done(rt, PollOutcome(feed.name, "not-modified"), polling)
        now = rt.clock.now()
        processed = await _process(rt, feed.name, fetched, now)
    except FetchError as exc:
        if exc.status == GONE:
            return await _gone(rt, feed, state, polling, exc.reason)
        return await _failed(rt, feed, state, polling, exc.reason, exc.retry_after, policy, rand)
    except ParseError as exc:
        return await _failed(rt, feed, state, polling, exc.reason, None, policy, rand)
    except BrokenExecutor:
        reason = "the worker process parsing this feed died"
        return await _failed(rt, feed, state, polling, reason, None, policy, rand)
    keys = [c.article.feed_key for c in processed.candidates]
    unseen = await rt.db(rt.store.unseen, feed.name, keys)
    if feed.full_text:  # new articles' pages, before dedup picks what alerts
        processed = await fill_full_text(
            rt, fetcher, feed, processed, unseen, first_poll=first_poll, now=now
        )
    chosen = select(
        processed.candidates, unseen, first_poll=first_poll, backlog=feed.backlog, now=now
    )
    async with rt.noise_lock:  # digests, caps and quiet hours hold some alerts back
        signatures = processed.signatures if rt.stories.enabled else None
        plan = await plan_poll(rt, chosen.alerts, signatures)
        queued = await rt.db(
            rt.store.record_poll,
            feed.name,
            feed.url,
            chosen.new_articles,
            plan.immediate,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            now=now,
            noise=plan,
            stories=StoryGrouping(rt.stories, processed.signatures) if rt.stories.enabled else None,
            present=keys,
        )
    if rt.stories.edits == "thread":  # articles seen before, edited at their source since
        edited = [
            (c.article, sig)
            for c in processed.candidates
            if c.article.feed_key not in unseen
            and (sig := processed.signatures.get(c.article.feed_key)) is not None
        ]
        quiet = {
            channel: end
            for channel, hours in rt.noise.quiet_hours.items()
            if (end := quiet_until(hours, now)) is not None
        }  # an edit waits for the end of its channel's quiet hours, like a copy
        queued += await rt.db(rt.store.queue_edits, edited, rt.stories.threshold, now, quiet)
    hint = feed_hint(processed.ttl_minutes, fetched.headers.get("cache-control"))
    polling = _succeeded(feed, polling, now, hint, bool(chosen.new_articles), policy, rand)
    await rt.db(rt.store.save_polling, feed.name, feed.url, polling, stored)
    await _recovered(rt, feed, state, polling, now)
    status = "degraded" if processed.bozo_reason else "ok"
    outcome = PollOutcome(
        feed.name,
        status,
        new=len(chosen.new_articles),
        matched=len({a.feed_key for a, _ in chosen.alerts}) + chosen.held_back,
        queued=queued,
        error=processed.bozo_reason,
    )
    return await _done(rt, outcome, polling)


def _succeeded(
    feed: FeedConfig,
    polling: Polling,
    now: datetime,
    hint: timedelta | None,
    new_articles: bool,
    policy: SchedulePolicy,
    rand: Callable[[], float],
) -> Polling:
    return after_success(
        polling,
        now,
        feed.interval,
        hint=hint,
        new_articles=new_articles,
        policy=policy,
        rand=rand(),
    )


async def _follow_moves(
    rt: Runtime, feed: FeedConfig, polling: Polling, url: str, fetched: FetchResult
) -> Polling:
    """Adopt a permanent redirect seen on enough polls in a row, and say so once."""
    moved = after_redirects(polling, url, fetched.permanent_url)
    if moved.effective_url != polling.effective_url:
        log.warning("feed=%s moved permanently to %s", feed.name, moved.effective_url)
        await rt.notice(
            f"moved:{feed.name}",
            f"feed {feed.name} has moved permanently to {moved.effective_url} "
            f"({MOVES_BEFORE_FOLLOWING} polls in a row); it is polled there from now on. "
            "Update its url in config.yaml.",
        )
    return moved


async def _config_url_changed(rt: Runtime, feed: FeedConfig, state: FeedState) -> None:
    """A new URL in the config starts the feed afresh: no longer gone, moved or held."""
    if state.polling.disabled_reason is not None:
        await rt.resolve(f"gone:{feed.name}", f"feed {feed.name} has a new url and is polled")
    if state.polling.effective_url is not None:
        await rt.resolve(f"moved:{feed.name}", f"feed {feed.name} has its new url in the config")


async def _recovered(
    rt: Runtime, feed: FeedConfig, state: FeedState | None, polling: Polling, now: datetime
) -> None:
    """Clear the failing notice after a success, and raise or clear the silence notice."""
    if state is not None and state.consecutive_failures:
        await rt.resolve(f"feed:{feed.name}", f"feed {feed.name} is polling again")
    if feed.silent_after is None:
        return
    key = f"silent:{feed.name}"
    if polling.last_new_at == now:  # new articles: was it silent until now?
        if state is not None:
            quiet = silent_for(state.polling, now, state.first_polled_at)
            if quiet >= feed.silent_after:
                await rt.resolve(key, f"feed {feed.name} has new articles again")
        return
    first = state.first_polled_at if state is not None else now
    quiet = silent_for(polling, now, first)
    if quiet >= feed.silent_after:
        since = polling.last_new_at or first
        when = local_time(since, rt) if since else "its first poll"
        await rt.notice(
            key,
            f"feed {feed.name} answers but has had no new articles for {_span(quiet)} "
            f"(since {when})",
        )


async def _process(rt: Runtime, feed: str, fetched: FetchResult, now: datetime) -> Processed:
    """Parse and match in a worker, with the rule index in force."""
    args = (fetched.body, fetched.headers, feed, fetched.url)
    return await rt.cpu_matching(process_body, *args, now=now)


async def _done(rt: Runtime, outcome: PollOutcome, polling: Polling) -> PollOutcome:
    log.info(
        "feed=%s status=%s new=%d matched=%d queued=%d next=%s%s",
        outcome.feed,
        outcome.status,
        outcome.new,
        outcome.matched,
        outcome.queued,
        f"{polling.next_poll_at:%H:%M:%S}" if polling.next_poll_at else "-",
        f" warning={outcome.error!r}" if outcome.error else "",
    )
    return replace(outcome, next_poll=polling.next_poll_at)


async def _gone(
    rt: Runtime, feed: FeedConfig, state: FeedState | None, polling: Polling, reason: str
) -> PollOutcome:
    now = rt.clock.now()
    polling = gone(polling, f"{reason} (since {now:%Y-%m-%d %H:%M} UTC)")
    stored = state.polling if state is not None else None
    await rt.db(rt.store.record_failure, feed.name, feed.url, reason, now, polling, stored)
    log.warning("feed=%s status=disabled error=%r", feed.name, reason)
    await rt.notice(
        f"gone:{feed.name}",
        f"feed {feed.name} is gone ({reason}); it is not polled again until its url in "
        "config.yaml changes",
    )
    return PollOutcome(feed.name, "disabled", error=polling.disabled_reason)


async def _failed(
    rt: Runtime,
    feed: FeedConfig,
    state: FeedState | None,
    polling: Polling,
    reason: str,
    retry_after: float | None,
    policy: SchedulePolicy,
    rand: Callable[[], float],
) -> PollOutcome:
    now = rt.clock.now()
    failures = (state.consecutive_failures if state is not None else 0) + 1
    polling = after_failure(
        polling,
        now,
        feed.interval,
        failures=failures,
        retry_after=retry_after,
        policy=policy,
        rand=rand(),
    )
    stored = state.polling if state is not None else None
    failures = await rt.db(
        rt.store.record_failure, feed.name, feed.url, reason, now, polling, stored
    )
    log.warning(
        "feed=%s status=error failures=%d next=%s error=%r",
        feed.name,
        failures,
        f"{polling.next_poll_at:%H:%M:%S}" if polling.next_poll_at else "-",
        reason,
    )
    since = polling.failing_since or now
    if now - since >= feed.failing_after:
        await rt.notice(
            f"feed:{feed.name}", failing_message(feed, failures, reason, since, now, _tz(rt))
        )
    return PollOutcome(
        feed.name,
        "error",
        error=reason,
        next_poll=polling.next_poll_at,
        failing_since=polling.failing_since,
    )


def failing_message(
    feed: FeedConfig,
    failures: int,
    reason: str,
    since: datetime,
    now: datetime,
    tz: tzinfo = UTC,
) -> str:
    return (
        f"feed {feed.name} has been failing for {_span(now - since)} "
        f"({failures} {'poll' if failures == 1 else 'polls'} in a row): {reason} "
        f"(failing since {since.astimezone(tz):%Y-%m-%d %H:%M %Z})"
    )


def local_time(moment: datetime, rt: Runtime) -> str:
    """A time in a notice, as every message shows it: in the display timezone."""
    return f"{moment.astimezone(_tz(rt)):%Y-%m-%d %H:%M %Z}"


def _tz(rt: Runtime) -> tzinfo:
    return ZoneInfo(rt.noise.display_timezone)


async def tell_if_failing_too_long(rt: Runtime, feed: FeedConfig, now: datetime) -> bool:
    """Raise the failing notice of a feed whose next poll is still far away (a backoff or a
    Retry-After) once it has failed for longer than its `failing_after`; True if it has."""
    state = await rt.db(rt.store.feed_state, feed.name)
    if state is None or state.url != feed.url or not state.consecutive_failures:
        return False
    since = state.polling.failing_since
    if since is None or now - since < feed.failing_after:
        return False
    message = failing_message(
        feed, state.consecutive_failures, state.last_error or "", since, now, _tz(rt)
    )
    when = state.polling.next_poll_at
    if when is not None:
        message += f"; next try at {local_time(when, rt)}"
    await rt.notice(f"feed:{feed.name}", message)
    return True


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    if hours >= 24:
        return f"{hours // 24} days {hours % 24} h"
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
