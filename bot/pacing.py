"""Pure pacing and backoff: a token bucket per channel and retry delays, all given `now`."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

RATE = 1.0  # messages per second per channel (Slack allows about one)
BURST = 3  # messages a quiet channel may send at once
RETRY_BASE = timedelta(seconds=5)
RETRY_CAP = timedelta(minutes=15)
RETRY_AFTER_CAP = timedelta(hours=1)  # a Retry-After beyond this is not believed
RATE_LIMIT_DEFAULT = timedelta(seconds=30)  # a 429 without a usable Retry-After waits this
CREDENTIAL_PAUSE = timedelta(minutes=5)  # a rejected token is tried again this much later


@dataclass(frozen=True)
class Pace:
    """How fast one channel is posted to and how failures are spaced."""

    rate: float = RATE
    burst: int = BURST
    retry_base: timedelta = RETRY_BASE
    retry_cap: timedelta = RETRY_CAP
    rate_limit_default: timedelta = RATE_LIMIT_DEFAULT
    credential_pause: timedelta = CREDENTIAL_PAUSE


@dataclass(frozen=True)
class Bucket:
    """A token bucket: `tokens` available at `at`; refills at `rate` per second up to `burst`."""

    tokens: float
    at: datetime

    @classmethod
    def full(cls, pace: Pace, now: datetime) -> Bucket:
        return cls(float(pace.burst), now)

    def refill(self, pace: Pace, now: datetime) -> Bucket:
        elapsed = max((now - self.at).total_seconds(), 0.0)
        return Bucket(min(float(pace.burst), self.tokens + elapsed * pace.rate), max(now, self.at))

    def take(self, pace: Pace, now: datetime) -> Bucket | None:
        """The bucket after spending one token now, or None when none is available yet."""
        bucket = self.refill(pace, now)
        if bucket.tokens < 1.0:
            return None
        return replace(bucket, tokens=bucket.tokens - 1.0)

    def ready_at(self, pace: Pace, now: datetime) -> datetime:
        """When the next token is available (now, if one is)."""
        bucket = self.refill(pace, now)
        if bucket.tokens >= 1.0:
            return now
        return now + timedelta(seconds=(1.0 - bucket.tokens) / pace.rate)


def backoff(attempts: int, pace: Pace, rng: random.Random) -> timedelta:
    """Capped exponential backoff with ±20 % jitter; doubles per attempt already made."""
    delay = min(pace.retry_base * (1 << min(attempts, 20)), pace.retry_cap)
    return delay * rng.uniform(0.8, 1.2)


def rate_limited_delay(retry_after: float | None, pace: Pace, rng: random.Random) -> timedelta:
    """After a 429: Slack's Retry-After (capped, never undercut, up to 1 s jitter on top), or a
    bounded default with up to 20 % jitter when the header is missing or unusable."""
    if retry_after is not None and retry_after > 0:
        told = min(timedelta(seconds=retry_after), RETRY_AFTER_CAP)
        return told + timedelta(seconds=rng.uniform(0, 1))
    return pace.rate_limit_default * rng.uniform(1.0, 1.2)


def retry_delay(
    attempts: int, retry_after: float | None, rng: random.Random, pace: Pace | None = None
) -> timedelta:
    """When to try again after a transient failure: Retry-After when given, else backoff."""
    pace = pace or Pace()
    if retry_after is not None and retry_after > 0:
        return rate_limited_delay(retry_after, pace, rng)
    return backoff(attempts, pace, rng)
