"""Pacing as pure logic: a token bucket per channel and the waits after failures, given `now`."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from bot.pacing import RETRY_AFTER_CAP, Bucket, Pace, rate_limited_delay

T0 = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)


def test_a_quiet_channel_gets_its_burst_then_one_message_a_second() -> None:
    pace = Pace(rate=1.0, burst=3)
    bucket: Bucket | None = Bucket.full(pace, T0)
    taken = 0
    while bucket is not None and (after := bucket.take(pace, T0)) is not None:
        bucket, taken = after, taken + 1
    assert taken == 3
    assert bucket is not None
    assert bucket.ready_at(pace, T0) == T0 + timedelta(seconds=1)
    assert bucket.take(pace, T0 + timedelta(milliseconds=999)) is None
    assert bucket.take(pace, T0 + timedelta(seconds=1)) is not None


def test_the_bucket_never_holds_more_than_the_burst_after_a_long_quiet() -> None:
    pace = Pace(rate=1.0, burst=3)
    quiet = Bucket(0.0, T0).refill(pace, T0 + timedelta(hours=5))
    assert quiet.tokens == 3.0


def test_a_clock_going_backwards_gives_no_extra_tokens() -> None:
    pace = Pace(rate=1.0, burst=3)
    bucket = Bucket(0.0, T0)
    assert bucket.take(pace, T0 - timedelta(minutes=10)) is None
    assert bucket.refill(pace, T0 - timedelta(minutes=10)).at == T0


def test_a_faster_rate_is_paced_accordingly() -> None:
    pace = Pace(rate=4.0, burst=1)
    bucket = Bucket(0.0, T0)
    assert bucket.ready_at(pace, T0) == T0 + timedelta(seconds=0.25)


def test_a_429_waits_retry_after_or_a_bounded_default_with_jitter() -> None:
    pace, rng = Pace(), random.Random(5)
    told = [rate_limited_delay(7, pace, rng) for _ in range(50)]
    assert all(timedelta(seconds=7) <= d <= timedelta(seconds=8) for d in told)
    default = [rate_limited_delay(None, pace, rng) for _ in range(50)]
    assert all(pace.rate_limit_default <= d <= pace.rate_limit_default * 1.2 for d in default)
    assert len(set(default)) > 1  # jittered: many channels do not come back at once
    assert rate_limited_delay(1e12, pace, rng) <= RETRY_AFTER_CAP + timedelta(seconds=1)
