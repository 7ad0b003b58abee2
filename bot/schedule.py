"""When a feed is polled next, and where from: pure rules over its outcome, hints and history."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

JITTER_FRACTION = 0.1  # each poll moves by up to ±10 % of its delay ...
MAX_JITTER = timedelta(seconds=60)  # ... and, on the normal interval, by at most a minute
BACKOFF_CAP = timedelta(hours=6)  # a failing feed is still tried at least this often
RETRY_AFTER_CAP = timedelta(hours=24)  # a server asking for longer is asked again after this
HINT_CAP = timedelta(hours=1)  # <ttl> / max-age lengthen the interval up to this, never more
MOVES_BEFORE_FOLLOWING = 3  # permanent redirects to one target, in a row, before it is adopted

# Why a feed's next poll is when it is; the first two hold even `run --once` back.
RETRY_AFTER = "retry-after"
BACKOFF = "backoff"
INTERVAL = "interval"
FEED_HINT = "feed hint"
HOLDS = frozenset({RETRY_AFTER, BACKOFF})

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?([0-9]{1,10})\"?", re.I)
_NO_CACHE = re.compile(r"(?:^|[,\s])(?:no-cache|no-store)\b", re.I)


@dataclass(frozen=True)
class SchedulePolicy:
    """The bounds within which a feed's schedule follows its failures and its own hints."""

    backoff_cap: timedelta = BACKOFF_CAP
    retry_after_cap: timedelta = RETRY_AFTER_CAP
    hint_cap: timedelta = HINT_CAP
    jitter_fraction: float = JITTER_FRACTION
    max_jitter: timedelta = MAX_JITTER


@dataclass(frozen=True)
class Polling:
    """What the bot has learned about how to poll one feed (reset when its config URL changes)."""

    effective_url: str | None = None  # adopted after permanent redirects; None: the config URL
    moved_to: str | None = None  # the target of the current run of permanent redirects
    moved_count: int = 0  # how many polls in a row were permanently redirected to `moved_to`
    next_poll_at: datetime | None = None
    next_poll_reason: str | None = None
    disabled_reason: str | None = None  # set on 410 Gone: not polled until the config changes
    last_new_at: datetime | None = None  # the last poll that brought new articles
    failing_since: datetime | None = None  # the first failure of the current run of failures

    @property
    def held(self) -> bool:
        """True while the server (Retry-After) or our backoff asks us to wait."""
        return self.next_poll_reason in HOLDS

    def due(self, now: datetime, *, ignore_interval: bool = False) -> bool:
        """Whether to poll at `now`; `ignore_interval` polls early unless held or disabled."""
        if self.disabled_reason is not None:
            return False
        if self.next_poll_at is None or self.next_poll_at <= now:
            return True
        return ignore_interval and not self.held


def jitter(delay: timedelta, policy: SchedulePolicy, rand: float, *, capped: bool) -> timedelta:
    """±`jitter_fraction` of `delay` (at most `max_jitter` when `capped`), `rand` in [0, 1)."""
    spread = delay * policy.jitter_fraction
    if capped:
        spread = min(spread, policy.max_jitter)
    return spread * (2 * rand - 1)


def feed_hint(ttl_minutes: int | None, cache_control: str | None) -> timedelta | None:
    """How long the feed says its content stays fresh: RSS `<ttl>` or `Cache-Control: max-age`."""
    hints = []
    if ttl_minutes is not None and ttl_minutes > 0:
        hints.append(timedelta(minutes=ttl_minutes))
    if cache_control and not _NO_CACHE.search(cache_control):
        found = _MAX_AGE.search(cache_control)
        if found and int(found.group(1)) > 0:
            hints.append(timedelta(seconds=int(found.group(1))))
    return max(hints) if hints else None


def after_success(
    polling: Polling,
    now: datetime,
    interval: timedelta,
    *,
    hint: timedelta | None,
    new_articles: bool,
    policy: SchedulePolicy,
    rand: float,
) -> Polling:
    """The next poll after a good response: the interval, lengthened by the feed's hint."""
    delay, reason = interval, INTERVAL
    if hint is not None and min(hint, policy.hint_cap) > interval:
        delay, reason = min(hint, policy.hint_cap), FEED_HINT
    return replace(
        polling,
        next_poll_at=now + delay + jitter(delay, policy, rand, capped=True),
        next_poll_reason=reason,
        last_new_at=now if new_articles else polling.last_new_at,
        failing_since=None,
    )


def after_failure(
    polling: Polling,
    now: datetime,
    interval: timedelta,
    *,
    failures: int,
    retry_after: float | None,
    policy: SchedulePolicy,
    rand: float,
) -> Polling:
    """The next poll after a failure: Retry-After (capped) if given, else exponential backoff."""
    failing_since = polling.failing_since or now
    if retry_after is not None:
        wait = min(timedelta(seconds=max(0.0, retry_after)), policy.retry_after_cap)
        delay = max(wait, interval)
        # Never earlier than asked: jitter only pushes the poll later.
        later = abs(jitter(delay, policy, rand, capped=True))
        return replace(
            polling,
            next_poll_at=now + delay + later,
            next_poll_reason=RETRY_AFTER,
            failing_since=failing_since,
        )
    exponent = min(max(failures - 1, 0), 32)
    delay = max(interval, min(interval * 2**exponent, policy.backoff_cap))
    return replace(
        polling,
        next_poll_at=now + delay + jitter(delay, policy, rand, capped=False),
        next_poll_reason=BACKOFF,
        failing_since=failing_since,
    )


def gone(polling: Polling, reason: str) -> Polling:
    """410 Gone: the feed is not polled again until its config entry changes."""
    return replace(polling, next_poll_at=None, next_poll_reason=None, disabled_reason=reason)


def after_redirects(polling: Polling, requested: str, permanent_url: str | None) -> Polling:
    """Count permanent redirects; the third in a row to one target makes it the feed's URL.

    A temporary redirect anywhere in the chain (302, 303, 307) breaks the run: such a chain
    says nothing about where the feed lives.
    """
    if permanent_url is None or permanent_url == requested:
        return replace(polling, moved_to=None, moved_count=0)
    count = polling.moved_count + 1 if polling.moved_to == permanent_url else 1
    if count >= MOVES_BEFORE_FOLLOWING:
        return replace(polling, effective_url=permanent_url, moved_to=None, moved_count=0)
    return replace(polling, moved_to=permanent_url, moved_count=count)


def silent_for(polling: Polling, now: datetime, first_polled_at: datetime | None) -> timedelta:
    """How long the feed has brought nothing new (since its first poll if never)."""
    since = polling.last_new_at or first_polled_at
    return timedelta(0) if since is None else max(timedelta(0), now - since)
