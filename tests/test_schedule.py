"""When a feed is polled next: interval, jitter, feed hints, Retry-After, backoff, moves, 410."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.schedule import (
    BACKOFF,
    BACKOFF_CAP,
    FEED_HINT,
    HINT_CAP,
    INTERVAL,
    MAX_JITTER,
    RETRY_AFTER,
    RETRY_AFTER_CAP,
    Polling,
    SchedulePolicy,
    after_failure,
    after_redirects,
    after_success,
    feed_hint,
    gone,
    silent_for,
)

NOW = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)
TEN_MIN = timedelta(minutes=10)
POLICY = SchedulePolicy()
MIDDLE = 0.5  # a random draw that gives no jitter at all


def success(
    interval: timedelta = TEN_MIN, hint: timedelta | None = None, rand: float = MIDDLE
) -> Polling:
    return after_success(
        Polling(), NOW, interval, hint=hint, new_articles=False, policy=POLICY, rand=rand
    )


def failure(failures: int, retry_after: float | None = None, rand: float = MIDDLE) -> Polling:
    return after_failure(
        Polling(),
        NOW,
        TEN_MIN,
        failures=failures,
        retry_after=retry_after,
        policy=POLICY,
        rand=rand,
    )


def test_a_good_poll_schedules_the_next_one_an_interval_later() -> None:
    polling = success()
    assert polling.next_poll_at == NOW + TEN_MIN and polling.next_poll_reason == INTERVAL


@pytest.mark.parametrize("rand", [0.0, 0.25, 0.999])
def test_jitter_is_a_tenth_of_the_interval_both_ways(rand: float) -> None:
    at = success(rand=rand).next_poll_at
    assert at is not None and abs(at - (NOW + TEN_MIN)) <= TEN_MIN / 10


def test_jitter_on_long_intervals_is_at_most_a_minute() -> None:
    early = success(timedelta(hours=6), rand=0.0).next_poll_at
    assert early == NOW + timedelta(hours=6) - MAX_JITTER


def test_a_feed_hint_longer_than_the_interval_is_honoured_up_to_its_cap() -> None:
    assert success(hint=timedelta(minutes=30)).next_poll_at == NOW + timedelta(minutes=30)
    assert success(hint=timedelta(minutes=30)).next_poll_reason == FEED_HINT
    assert success(hint=timedelta(days=1)).next_poll_at == NOW + HINT_CAP


def test_a_feed_hint_never_makes_us_poll_more_often_than_configured() -> None:
    assert success(hint=timedelta(minutes=1)).next_poll_at == NOW + TEN_MIN


@pytest.mark.parametrize(
    ("ttl", "cache_control", "expected"),
    [
        (None, None, None),
        (60, None, timedelta(hours=1)),
        (0, None, None),
        (None, "public, max-age=1800", timedelta(minutes=30)),
        (None, 'max-age="600"', timedelta(minutes=10)),
        (15, "max-age=3600", timedelta(hours=1)),  # the longer of the two
        (None, "no-cache, max-age=3600", None),
        (None, "s-maxage=900", None),
        (None, "max-age=abc", None),
    ],
)
def test_feed_hints_come_from_ttl_and_max_age(
    ttl: int | None, cache_control: str | None, expected: timedelta | None
) -> None:
    assert feed_hint(ttl, cache_control) == expected


def test_failures_back_off_exponentially_to_the_cap() -> None:
    delays = [failure(n).next_poll_at - NOW for n in range(1, 12)]  # type: ignore[operator]
    assert delays[:4] == [TEN_MIN, 2 * TEN_MIN, 4 * TEN_MIN, 8 * TEN_MIN]
    assert delays[-1] == BACKOFF_CAP and max(delays) == BACKOFF_CAP
    assert all(failure(n).next_poll_reason == BACKOFF for n in range(1, 12))


def test_backoff_jitter_spreads_feeds_failing_together() -> None:
    low, high = failure(20, rand=0.0).next_poll_at, failure(20, rand=0.999).next_poll_at
    assert low is not None and high is not None
    assert high - low > timedelta(hours=1)  # ±10 % of six hours, not ±1 minute


def test_retry_after_is_honoured_and_never_undercut_by_jitter() -> None:
    for rand in (0.0, 0.5, 0.999):
        polling = failure(1, retry_after=3600, rand=rand)
        assert polling.next_poll_at is not None
        assert NOW + timedelta(seconds=3600) <= polling.next_poll_at
        assert polling.next_poll_at <= NOW + timedelta(seconds=3600) + MAX_JITTER
        assert polling.next_poll_reason == RETRY_AFTER and polling.held


def test_an_absurd_retry_after_is_capped() -> None:
    polling = failure(1, retry_after=10 * 365 * 86400.0)
    assert polling.next_poll_at == NOW + RETRY_AFTER_CAP


def test_a_short_retry_after_still_waits_the_interval() -> None:
    assert failure(1, retry_after=5).next_poll_at == NOW + TEN_MIN


def test_the_failing_run_starts_at_the_first_failure_and_ends_at_a_success() -> None:
    first = failure(1)
    later = after_failure(
        first,
        NOW + timedelta(hours=2),
        TEN_MIN,
        failures=2,
        retry_after=None,
        policy=POLICY,
        rand=MIDDLE,
    )
    assert later.failing_since == NOW
    ok = after_success(
        later,
        NOW + timedelta(hours=3),
        TEN_MIN,
        hint=None,
        new_articles=True,
        policy=POLICY,
        rand=0,
    )
    assert ok.failing_since is None and ok.last_new_at == NOW + timedelta(hours=3)


def test_a_gone_feed_is_never_due() -> None:
    polling = gone(success(), "HTTP 410")
    assert polling.disabled_reason == "HTTP 410" and polling.next_poll_at is None
    assert not polling.due(NOW + timedelta(days=365))
    assert not polling.due(NOW, ignore_interval=True)


def test_due_ignores_the_interval_on_request_but_not_a_hold() -> None:
    waiting = success()
    assert not waiting.due(NOW) and waiting.due(NOW, ignore_interval=True)
    assert waiting.due(NOW + TEN_MIN)
    held = failure(3)
    assert not held.due(NOW, ignore_interval=True)
    assert Polling().due(NOW)  # never polled


def test_three_permanent_redirects_in_a_row_to_one_target_move_the_feed() -> None:
    old, new = "https://old.example/rss", "https://new.example/rss"
    polling = Polling()
    for _ in range(2):
        polling = after_redirects(polling, old, new)
        assert polling.effective_url is None
    polling = after_redirects(polling, old, new)
    assert polling.effective_url == new and polling.moved_count == 0


def test_a_temporary_redirect_or_another_target_breaks_the_run() -> None:
    old, new = "https://old.example/rss", "https://new.example/rss"
    polling = after_redirects(after_redirects(Polling(), old, new), old, new)
    assert after_redirects(polling, old, None).moved_count == 0  # a 302/307 poll
    other = after_redirects(polling, old, "https://other.example/rss")
    assert other.moved_count == 1 and other.moved_to == "https://other.example/rss"
    assert after_redirects(after_redirects(other, old, new), old, new).effective_url is None


def test_a_moved_feed_stays_moved_when_its_new_url_answers_directly() -> None:
    moved = Polling(effective_url="https://new.example/rss")
    assert after_redirects(moved, "https://new.example/rss", None).effective_url == (
        "https://new.example/rss"
    )


def test_silence_counts_from_the_last_new_article_else_the_first_poll() -> None:
    assert silent_for(Polling(), NOW, None) == timedelta(0)
    assert silent_for(Polling(), NOW, NOW - timedelta(days=1)) == timedelta(days=1)
    seen = replace(Polling(), last_new_at=NOW - timedelta(hours=5))
    assert silent_for(seen, NOW, NOW - timedelta(days=9)) == timedelta(hours=5)
