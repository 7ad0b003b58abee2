"""One poll of one feed: fetch → parse/normalize/match (worker) → dedup → store, one log line."""

from __future__ import annotations

import logging
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass

from bot.dedup import select
from bot.errors import FetchError, ParseError
from bot.fetch import Fetcher
from bot.models import FeedConfig
from bot.runtime import Runtime
from bot.work import process_body

log = logging.getLogger("newswatch.poll")

FAILURES_BEFORE_NOTICE = 3  # one blip is logged; a feed failing this many times in a row is told


@dataclass(frozen=True)
class PollOutcome:
    feed: str
    status: str  # "ok", "not-modified", "degraded" or "error"
    new: int = 0
    matched: int = 0
    queued: int = 0
    error: str | None = None


async def poll_feed(rt: Runtime, fetcher: Fetcher, feed: FeedConfig) -> PollOutcome:
    state = await rt.db(rt.store.feed_state, feed.name)
    first_poll = state is None or state.first_polled_at is None
    same_url = state is not None and state.url == feed.url  # validators belong to one URL
    try:
        fetched = await fetcher.fetch(
            feed.name,
            feed.url,
            etag=state.etag if state and same_url else None,
            last_modified=state.last_modified if state and same_url else None,
        )
        if fetched.not_modified:
            await rt.db(rt.store.record_not_modified, feed.name, feed.url, rt.clock.now())
            return await _done(rt, PollOutcome(feed.name, "not-modified"))
        now = rt.clock.now()
        processed = await rt.cpu(
            process_body, fetched.body, fetched.headers, feed.name, fetched.url, rt.rules.rules, now
        )
    except (FetchError, ParseError) as exc:
        return await _failed(rt, feed, exc.reason)
    except BrokenExecutor:
        return await _failed(rt, feed, "the worker process parsing this feed died")
    keys = [c.article.feed_key for c in processed.candidates]
    unseen = await rt.db(rt.store.unseen, feed.name, keys)
    chosen = select(
        processed.candidates, unseen, first_poll=first_poll, backlog=feed.backlog, now=now
    )
    queued = await rt.db(
        rt.store.record_poll,
        feed.name,
        feed.url,
        chosen.new_articles,
        chosen.alerts,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        now=now,
    )
    status = "degraded" if processed.bozo_reason else "ok"
    outcome = PollOutcome(
        feed.name,
        status,
        new=len(chosen.new_articles),
        matched=len({a.feed_key for a, _ in chosen.alerts}) + chosen.held_back,
        queued=queued,
        error=processed.bozo_reason,
    )
    return await _done(rt, outcome)


async def _done(rt: Runtime, outcome: PollOutcome) -> PollOutcome:
    log.info(
        "feed=%s status=%s new=%d matched=%d queued=%d%s",
        outcome.feed,
        outcome.status,
        outcome.new,
        outcome.matched,
        outcome.queued,
        f" warning={outcome.error!r}" if outcome.error else "",
    )
    await rt.resolve(f"feed:{outcome.feed}", f"feed {outcome.feed} is polling again")
    return outcome


async def _failed(rt: Runtime, feed: FeedConfig, reason: str) -> PollOutcome:
    failures = await rt.db(rt.store.record_failure, feed.name, feed.url, reason, rt.clock.now())
    log.warning("feed=%s status=error failures=%d error=%r", feed.name, failures, reason)
    if failures >= FAILURES_BEFORE_NOTICE:
        await rt.notice(
            f"feed:{feed.name}",
            f"feed {feed.name} has failed {failures} polls in a row: {reason}",
        )
    return PollOutcome(feed.name, "error", error=reason)
