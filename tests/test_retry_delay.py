"""Backoff for failed posts: Retry-After honoured (capped), else capped exponential with jitter."""

from __future__ import annotations

import random
from datetime import timedelta

from bot.pacing import RETRY_AFTER_CAP, RETRY_BASE, RETRY_CAP, retry_delay


def test_retry_after_is_never_undercut() -> None:
    rng = random.Random(1)
    for _ in range(50):
        delay = retry_delay(0, 7, rng)
        assert timedelta(seconds=7) <= delay <= timedelta(seconds=8)


def test_absurd_retry_after_is_capped() -> None:
    assert retry_delay(0, 10 * 365 * 86400, random.Random(1)) <= RETRY_AFTER_CAP + timedelta(
        seconds=1
    )


def test_backoff_grows_then_stops_at_the_cap() -> None:
    rng = random.Random(2)
    first = retry_delay(0, None, rng)
    later = retry_delay(3, None, rng)
    assert RETRY_BASE * 0.8 <= first <= RETRY_BASE * 1.2
    assert later > first
    assert retry_delay(50, None, rng) <= RETRY_CAP * 1.2


def test_zero_or_missing_retry_after_falls_back_to_backoff() -> None:
    delay = retry_delay(0, 0, random.Random(3))
    assert RETRY_BASE * 0.8 <= delay <= RETRY_BASE * 1.2
