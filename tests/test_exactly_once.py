"""Delivery against the Slack double with a controlled clock: pacing, 429 storms, outages,
unknown outcomes reconciled through message metadata, parked alerts and their retry."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.clock import FixedClock
from bot.deliver import DeliveryReport, deliver_due
from bot.models import AlertTag
from bot.pacing import Pace
from bot.render import render_message
from bot.runtime import Runtime
from bot.slack import EVENT_TYPE, SlackSender, checked_blocks
from bot.store import ALERT_COLUMNS_V3, Store
from tests.factories import alert, article
from tests.slackdouble import TOKEN, SlackDouble

NOW = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)


@pytest.fixture
def double(slack_double: SlackDouble, clock: FixedClock) -> Iterator[SlackDouble]:
    """The double on the test's clock: message `ts` and request times follow it."""
    slack_double.clock = lambda: clock.now().timestamp()
    yield slack_double


def runtime(
    tmp_path: Path, double: SlackDouble, clock: FixedClock, timeout: float = 5.0
) -> Runtime:
    return Runtime(
        clock=clock,
        store=Store.open(tmp_path / "state.db"),
        sender=SlackSender(TOKEN, base_url=double.base_url, timeout=timeout),
        admin_channel="#ops",
        make_workers=lambda: ThreadPoolExecutor(1),
        pace=Pace(),
    )


def queue(rt: Runtime, channel: str, count: int, start: int = 0) -> None:
    """`count` alerts for `channel`, titled "<channel> <n>", in order."""
    pairs = []
    for n in range(start, start + count):
        key = f"url:https://wire.example/{channel}/{n}"
        content = alert(channel=channel, title=f"{channel} {n}", link=None)
        pairs.append((article(feed_key=key, cross_key=key), content))
    rt.store.record_poll(
        "wire", "u", [a for a, _ in pairs], pairs, etag=None, last_modified=None, now=rt.clock.now()
    )


def titles(double: SlackDouble, channel: str) -> list[str]:
    return [str(m["text"]).split(" · ")[0].strip("*") for m in double.messages(channel)]


def run(rt: Runtime, passes: int = 1, every: float = 1.0) -> list[DeliveryReport]:
    """`passes` delivery passes, the clock moving `every` seconds after each (as the bot ticks)."""
    rng = random.Random(7)

    async def main() -> list[DeliveryReport]:
        reports = []
        for _ in range(passes):
            reports.append(await deliver_due(rt, rng))
            rt.clock.advance(seconds=every)  # type: ignore[attr-defined]
        return reports

    return asyncio.run(main())


def close(rt: Runtime) -> None:
    asyncio.run(rt.close())


# -- rate limits and pacing


def test_429_with_retry_after_holds_that_channel_only_for_as_long_as_it_says(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#a", 2)
    queue(rt, "#b", 2)
    double.rate_limit("7", channel="#a")
    start = clock.now().timestamp()
    run(rt, passes=7)  # seven seconds
    assert [r.at - start for r in double.posts("#a")] == [0.0]  # nothing more inside the 7 s
    assert titles(double, "#b") == ["#b 0", "#b 1"]  # B went on meanwhile
    run(rt, passes=3)
    assert titles(double, "#a") == ["#a 0", "#a 1"]
    assert len(double.posts("#a")) == 3
    close(rt)


@pytest.mark.parametrize("header", [None, "abc", "Wed, 21 Oct 2015 07:28:00 GMT", "-1"])
def test_429_without_a_usable_retry_after_waits_a_bounded_default(
    tmp_path: Path, double: SlackDouble, clock: FixedClock, header: str | None
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#a", 1)
    double.rate_limit(header, channel="#a")
    run(rt, passes=29)
    assert len(double.posts("#a")) == 1  # not before the 30 s default
    run(rt, passes=8)  # 30 s plus at most 20 % jitter
    assert titles(double, "#a") == ["#a 0"] and len(double.posts("#a")) == 2
    close(rt)


def test_an_absurd_retry_after_is_capped_at_an_hour(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#a", 1)
    double.rate_limit("86400", channel="#a")
    run(rt)
    clock.advance(seconds=3600 + 2)
    run(rt)
    assert titles(double, "#a") == ["#a 0"]
    close(rt)


def test_a_429_storm_on_one_channel_costs_one_request_per_wait_and_loses_nothing(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#a", 5)
    queue(rt, "#b", 5)
    double.rate_limit(None, channel="#a", times=None)  # ten minutes of 429s, no Retry-After
    run(rt, passes=600)
    assert len(double.posts("#a")) <= 600 / 30 + 1  # one request per default wait, no storm
    assert titles(double, "#b") == [f"#b {n}" for n in range(5)]
    double.clear_faults()
    run(rt, passes=60)
    assert titles(double, "#a") == [f"#a {n}" for n in range(5)]
    close(rt)


def test_a_burst_is_paced_per_channel_and_no_channel_waits_for_another(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    others = [f"#c{k}" for k in range(5)]
    queue(rt, "#big", 120)
    for channel in others:
        queue(rt, channel, 20)
    double.rate_limit_fair(rate=1.0, burst=3)  # refuses anything faster than Slack allows
    run(rt, passes=25)
    for channel in others:  # done within 25 s while the big backlog is still going
        assert titles(double, channel) == [f"{channel} {n}" for n in range(20)]
    run(rt, passes=110)
    assert titles(double, "#big") == [f"#big {n}" for n in range(120)]
    assert double.limited == 0  # never over 1 message/s/channel beyond the burst
    times = [r.at for r in double.posts("#big")]
    for k in range(len(times) - 13):
        assert times[k + 13] - times[k] >= 10  # 13 posts take at least 10 s: 3 burst + 1/s
    close(rt)


# -- outages


def test_a_five_minute_html_503_outage_ends_in_exactly_one_message_each(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#a", 3)
    double.fail_http(503, times=None)
    run(rt, passes=60, every=5)
    assert len(double.posts()) <= 10  # backoff with jitter, not one request per pass
    double.clear_faults()
    run(rt, passes=120, every=5)  # the backoff reached minutes; wait it out
    assert titles(double, "#a") == ["#a 0", "#a 1", "#a 2"]
    assert rt.store.alert_counts().sent == 3
    close(rt)


def test_a_504_outage_may_have_posted_so_each_retry_looks_first(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#a", 1)
    double.fail_http(504, times=3)
    run(rt, passes=120, every=5)
    assert titles(double, "#a") == ["#a 0"]
    assert any(r.method == "conversations.history" for r in double.requests)
    close(rt)


# -- unknown outcomes


def test_a_connection_dropped_after_slack_accepted_is_found_and_not_posted_again(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#a", 2)
    double.drop_after_accept()
    run(rt)  # dropped: outcome unknown, #a waits
    assert len(double.messages("#a")) == 1
    reports = run(rt, passes=15)
    assert sum(r.reconciled for r in reports) == 1
    assert titles(double, "#a") == ["#a 0", "#a 1"]  # once each, in order
    assert len(double.posts("#a")) == 2
    history = [r for r in double.requests if r.method == "conversations.history"]
    assert len(history) == 1 and history[0].body["include_all_metadata"] in ("1", "true", True)
    tags = [m["metadata"] for m in double.messages("#a")]
    assert [t["event_type"] for t in tags] == [EVENT_TYPE, EVENT_TYPE]
    assert [t["event_payload"]["alert_id"] for t in tags] == [1, 2]
    close(rt)


def test_a_response_after_the_client_timeout_is_found_and_not_posted_again(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock, timeout=0.3)
    queue(rt, "#a", 1)
    double.delay(1.0)
    run(rt)
    assert rt.store.alert_counts().pending == 1
    run(rt, passes=15)
    assert titles(double, "#a") == ["#a 0"]
    assert len(double.posts("#a")) == 1
    assert rt.store.alert_counts().sent == 1
    close(rt)


def test_without_the_history_scope_an_unknown_outcome_costs_at_most_one_duplicate(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#a", 1)
    double.history_error = "missing_scope"
    double.drop_after_accept()
    run(rt, passes=15)
    assert titles(double, "#a") == ["#a 0", "#a 0"]  # posted again: never lost
    assert rt.sending_paused_until is None  # a history refusal is no credential problem
    notices = [str(m["text"]) for m in double.messages("#ops")]
    assert len(notices) == 1 and "channels:history" in notices[0]
    close(rt)


def test_an_alert_found_in_history_is_recorded_with_its_slack_ts(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#a", 1)
    double.drop_after_accept()
    run(rt, passes=15)
    ts = double.messages("#a")[0]["ts"]
    with rt.store.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT status, slack_ts FROM alerts").one()
    assert tuple(row) == ("sent", ts)
    close(rt)


# -- permanent and credential errors


@pytest.mark.parametrize("code", ["channel_not_found", "not_in_channel", "is_archived"])
def test_a_refused_channel_is_parked_after_one_attempt_and_retried_on_request(
    tmp_path: Path, double: SlackDouble, clock: FixedClock, code: str
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#gone", 3)
    queue(rt, "#b", 2)
    double.fail_with(code, channel="#gone")
    run(rt, passes=30, every=60)
    assert len(double.posts("#gone")) == 1  # one request for three alerts: no storm
    assert titles(double, "#b") == ["#b 0", "#b 1"]
    [group] = rt.store.parked()
    assert (group.channel, group.reason, group.scope, group.count) == ("#gone", code, "channel", 3)
    queue(rt, "#gone", 1, start=3)  # a newer alert waits behind the parked ones
    run(rt, passes=5)
    assert len(double.posts("#gone")) == 1
    notices = [str(m["text"]) for m in double.messages("#ops")]
    assert len(notices) == 1 and code in notices[0]

    double.clear_faults()  # the bot is invited, the channel restored
    assert rt.store.unpark(clock.now(), channel="#gone") == 3
    run(rt, passes=5)
    assert titles(double, "#gone") == [f"#gone {n}" for n in range(4)]  # in order
    assert "takes messages again" in str(double.messages("#ops")[-1]["text"])
    close(rt)


def test_parked_alerts_are_retried_when_the_configuration_changes(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    rt.config_fingerprint = "before"
    queue(rt, "#gone", 1)
    double.fail_with("channel_not_found", channel="#gone")
    run(rt)
    assert rt.store.unpark(clock.now(), unless_config="before") == 0  # same config: stays
    double.clear_faults()
    assert rt.store.unpark(clock.now(), unless_config="after") == 1
    run(rt)
    assert titles(double, "#gone") == ["#gone 0"]
    close(rt)


def test_invalid_blocks_get_exactly_one_plain_text_fallback(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#a", 1)
    double.fail_with("invalid_blocks", channel="#a", times=1)
    run(rt)
    [posted] = double.messages("#a")
    assert posted["blocks"] == [] and "#a 0" in posted["text"]
    assert len(double.posts("#a")) == 2
    close(rt)


@pytest.mark.parametrize("code", ["invalid_blocks", "msg_too_long"])
def test_a_message_refused_even_as_plain_text_is_parked_and_the_channel_goes_on(
    tmp_path: Path, double: SlackDouble, clock: FixedClock, code: str
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#a", 2)
    double.fail_with(code, channel="#a", times=2)
    run(rt, passes=5)
    assert len(double.posts("#a")) == 3  # blocks, one plain fallback, then the next alert
    assert titles(double, "#a") == ["#a 1"]
    [group] = rt.store.parked()
    assert (group.reason, group.scope, group.count) == (code, "message", 1)
    close(rt)


def test_a_rejected_token_stops_every_channel_and_says_so_once(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    for channel in ("#a", "#b", "#c"):
        queue(rt, channel, 3)
    double.fail_with("invalid_auth", times=None)
    run(rt, passes=240)  # four minutes: still inside the pause
    assert sum(len(double.posts(c)) for c in ("#a", "#b", "#c")) <= 3  # one per channel
    assert rt.store.alert_counts().pending == 9
    problems = dict(rt.store.active_notices())
    assert "all sending is stopped" in problems["slack:credentials"]
    double.clear_faults()
    run(rt, passes=120)
    for channel in ("#a", "#b", "#c"):
        assert titles(double, channel) == [f"{channel} {n}" for n in range(3)]
    assert "slack:credentials" not in dict(rt.store.active_notices())
    close(rt)


def test_the_channel_id_slack_returns_is_stored_and_used_for_history(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#a", 2)
    run(rt)
    assert rt.store.channel_ids() == {"#a": double.channel_id("#a")}
    queue(rt, "#a", 1, start=2)
    double.drop_after_accept()
    run(rt, passes=15)
    [history] = [r for r in double.requests if r.method == "conversations.history"]
    assert history.body["channel"] == double.channel_id("#a")
    assert titles(double, "#a") == ["#a 0", "#a 1", "#a 2"]
    close(rt)


def test_pending_alerts_keep_their_unknown_state_across_a_restart(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#a", 1)
    double.drop_after_accept()
    run(rt)
    close(rt)
    clock.advance(minutes=5)
    again = runtime(tmp_path, double, clock)
    run(again)
    assert titles(double, "#a") == ["#a 0"]
    assert again.store.alert_counts().sent == 1
    close(again)


# -- Block Kit through slack-sdk's models, the store's upgrade


def test_blocks_beyond_slacks_limits_are_never_posted_as_blocks() -> None:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "ok", "verbatim": True}}
    assert checked_blocks("#a", [section]) is not None
    too_long = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    context = {"type": "context", "elements": [{"type": "mrkdwn", "text": "x" * 3001}]}
    big = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2900}}
    assert checked_blocks("#a", [big] * 4) is not None
    for blocks in ([too_long], [context], [section] * 51, [big] * 5, []):
        assert checked_blocks("#a", blocks) is None


def test_an_oversize_alert_is_posted_as_its_escaped_text_alone(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    sender = SlackSender(TOKEN, base_url=double.base_url)
    huge = alert(channel="#a", rules=tuple(f"rule-{'x' * 90}-{n}" for n in range(200)))
    message = render_message(huge)
    assert checked_blocks("#a", message.blocks) is not None  # render keeps within limits
    ok = alert(channel="#a", title="<!channel> " + "word " * 3000)
    asyncio.run(sender.send(ok, AlertTag.of(1, "url:x")))
    [posted] = double.messages("#a")
    assert "<!channel>" not in posted["text"] and "&lt;!channel&gt;" in posted["text"]
    assert len(posted["text"]) <= 4000


def test_a_version_1_database_is_upgraded_keeping_its_alerts(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = Store.open(path)
    pairs = [(article(), alert())]
    store.record_poll("wire", "u", [pairs[0][0]], pairs, etag=None, last_modified=None, now=NOW)
    with store.engine.begin() as conn:  # what version 1 had: none of version 3's additions
        for column in ALERT_COLUMNS_V3:
            conn.exec_driver_sql(f"ALTER TABLE alerts DROP COLUMN {column}")
        conn.exec_driver_sql("DROP TABLE slack_channels")
        conn.exec_driver_sql("DELETE FROM schema_version WHERE version > 1")
    store.close()
    upgraded = Store.open(path)
    [due] = upgraded.due_alerts(NOW)
    assert due.unknown_since is None and due.content == alert()
    assert upgraded.begin_attempt(due.id, NOW) == NOW
    upgraded.mark_sent(due.id, "1.0", "C1", NOW)
    assert upgraded.channel_ids() == {"#news": "C1"}
    upgraded.close()


def test_a_notice_raised_while_slack_is_down_is_kept_and_posted_once_later(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    double.fail_http(503, times=None)
    asyncio.run(rt.notice("feed:wire", "feed wire has failed 3 polls in a row"))
    run(rt, passes=60, every=5)
    assert double.messages("#ops") == [] and len(double.posts("#ops")) >= 2
    assert rt.store.alert_counts().pending == 0  # a notice is not counted as an alert
    double.clear_faults()
    run(rt, passes=120, every=5)
    [notice] = double.messages("#ops")
    assert "Problem: feed wire has failed 3 polls in a row" in str(notice["text"])
    assert notice["metadata"]["event_type"] == EVENT_TYPE
    close(rt)


def test_another_bots_message_with_the_same_alert_id_is_not_taken_for_ours(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    foreign = SlackSender(TOKEN, base_url=double.base_url)  # e.g. a staging bot, same channel
    asyncio.run(
        foreign.send(
            alert(channel="#a", title="theirs", link=None), AlertTag(1, "0123456789abcdef")
        )
    )
    queue(rt, "#a", 1)
    double.fail_http(504, times=1)  # outcome unknown (it was not posted)
    run(rt, passes=15)
    assert titles(double, "#a") == ["theirs", "#a 0"]
    assert rt.store.alert_counts().sent == 1
    close(rt)


def test_a_backlog_larger_than_a_batch_does_not_crowd_out_another_channel(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    rt = runtime(tmp_path, double, clock)
    queue(rt, "#big", 700)  # more than one pass reads from the store
    queue(rt, "#small", 1)
    run(rt)
    assert titles(double, "#small") == ["#small 0"]
    assert titles(double, "#big") == ["#big 0", "#big 1", "#big 2"]  # its burst
    close(rt)
