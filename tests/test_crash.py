"""SIGKILL the real bot at random points during delivery, restart it: every alert exactly once."""

from __future__ import annotations

from pathlib import Path

from tests.crash import run_crashes
from tests.slackdouble import SlackDouble


def test_killing_the_bot_mid_delivery_loses_and_duplicates_nothing(
    tmp_path: Path, slack_double: SlackDouble
) -> None:
    tally = run_crashes(tmp_path, slack_double, rounds=12, channels=3, per_channel=16, seed=1)
    assert tally.lost == 0, tally
    assert tally.duplicated == 0, tally
    assert tally.sent_once == tally.alerts
    assert tally.out_of_order == 0
    assert tally.kills >= 6  # the bot really was killed during delivery, several times
    assert tally.found_after_crash >= 1  # and at least once after Slack accepted a post


def test_killing_the_bot_while_it_threads_stories_loses_and_duplicates_nothing(
    tmp_path: Path, slack_double: SlackDouble
) -> None:
    tally = run_crashes(
        tmp_path, slack_double, rounds=8, channels=2, per_channel=12, seed=2, stories=True
    )
    assert tally.lost == 0, tally
    assert tally.duplicated == 0, tally
    assert tally.misthreaded == 0, tally  # every copy in its story's thread, every count right
    assert tally.out_of_order == 0
    assert tally.kills >= 4
