"""A scaled-down soak (case 36): changing feeds through simulated time, the real bot and Slack.

20 feeds of 20 entries gain two entries a minute each, one in 20 matches one of four channels'
rules; the bot polls them every minute for six simulated minutes, then the clock jumps past
the archive retention (and the shorter story window) for one more minute, twice.
benchmarks/soak.py runs the same at full scale.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.soak import FeedPlan, Soak, run_soak, thirds

PLAN = FeedPlan(feeds=20, items=20, channels=4, interval=timedelta(minutes=1))
DURATION = timedelta(minutes=6)


@pytest.fixture(scope="module", name="soak")
def soak_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Soak]:
    folder: Path = tmp_path_factory.mktemp("soak")
    yield run_soak(
        PLAN, folder, duration=DURATION, hosts=4, workers=1, start_spread=timedelta(0), jumps=2
    )


def test_every_matching_article_is_posted_exactly_once_in_its_channel(soak: Soak) -> None:
    assert len(soak.expected) > 30  # the feeds did match, in every channel
    assert len({channel for channel, _, _ in soak.expected}) == PLAN.channels
    assert set(soak.per_article) == soak.expected  # none lost, none elsewhere
    assert set(soak.per_article.values()) == {1}  # none twice
    assert soak.untitled == 0  # no notice: nothing went wrong
    assert soak.pending == 0


def test_no_channel_gets_more_than_one_message_a_second_after_its_burst(soak: Soak) -> None:
    assert soak.limited == 0  # the double's limiter: 1/s per channel after a burst of 3
    assert soak.most_in_one_second <= 3
    assert soak.most_per_minute <= 3 + 60


def test_every_feed_keeps_its_interval_and_each_interval_finishes(soak: Soak) -> None:
    minutes = int(DURATION / PLAN.interval)
    assert len(soak.cycles) == minutes
    low, high = soak.polls_per_feed
    assert minutes - 1 <= low <= high <= minutes + 2  # jitter moves a poll by seconds
    for cycle in soak.cycles:
        assert cycle.polls > 0
        # a generous guard: the work of a simulated minute takes seconds on loopback
        assert cycle.wall < PLAN.interval.total_seconds()


def test_memory_does_not_grow_across_intervals(soak: Soak) -> None:
    steady = soak.cycles[1:]  # the first interval holds every feed's first poll
    first, last = thirds([c.traced_mb for c in steady])
    assert last < first * 1.2 + 0.5, (first, last)
    first, last = thirds([c.rss_mb for c in steady])
    assert last < first * 1.2 + 10, (first, last)


def test_pruning_keeps_only_the_articles_first_seen_within_the_retention(soak: Soak) -> None:
    end = soak.cycles[-1]
    for pruned in soak.pruned:
        assert 0 < pruned.rows["archive"] < end.rows["archive"]  # polled since; the rest went
        assert pruned.rows["rule_posts"] <= pruned.rows["archive"]  # the cap ledger keeps an hour


def test_seen_keys_are_kept_while_listed_and_forgotten_once_gone_past_the_retention(
    soak: Soak,
) -> None:
    for pruned in soak.pruned:
        # the keys the last poll before the jump listed, and the ones polled since: every key
        # gone from its feed for longer than the retention went
        assert pruned.rows["seen_articles"] == PLAN.feeds * PLAN.items + pruned.rows["archive"]


def test_database_rows_stay_bounded_across_jumps_past_the_retention(soak: Soak) -> None:
    first, second = soak.pruned
    # without pruning, seen keys and alerts would grow by half again with each jump
    for table in ("seen_articles", "alerts", "story_members", "stories", "archive"):
        assert second.rows[table] <= first.rows[table] * 1.2 + 2, table
