"""Delivery through the real slack-sdk client: refused channels, bad tokens, notices, order."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.clock import FixedClock
from tests.e2e import Item, make_app, message_text, rss, run_once, write_config
from tests.feedserver import FeedServer
from tests.slackdouble import TOKEN, SlackDouble

RULES = {
    "usfk.yaml": 'name: usfk\nchannel: "#korea-security"\nquery: USFK\n',
    "opcon.yaml": 'name: opcon\nchannel: "#opcon-desk"\nquery: OPCON\n',
}


def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    for name, text in RULES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def items(clock: FixedClock) -> list[Item]:
    return [
        Item("u-1", "USFK commander visits Pyeongtaek", "USFK said.", clock.now()),
        Item("o-1", "OPCON talks resume", "OPCON was discussed.", clock.now()),
        Item("u-2", "USFK drill ends", "USFK confirmed.", clock.now()),
    ]


def test_a_refused_channel_does_not_hold_up_others_and_is_told_once(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    feed_server.add("/wire.xml", rss(items(clock)))
    config = write_config(
        tmp_path, {"wire": feed_server.url("/wire.xml")}, rules=rules_dir(tmp_path), admin=True
    )
    slack_double.fail_with("channel_not_found", channel="#korea-security")

    async def scenario() -> None:
        app = make_app(config, slack_double, clock)
        try:
            await app.run_once()
            clock.advance(minutes=20)
            await app.deliver()  # parked: not tried again, not told twice
        finally:
            await app.close()

    asyncio.run(scenario())
    assert len(slack_double.messages("#opcon-desk")) == 1
    assert slack_double.messages("#korea-security") == []
    # one attempt for the oldest alert parks the whole channel: no retry storm
    assert len(slack_double.posts("#korea-security")) == 1
    notices = slack_double.messages("#newswatch-ops")
    assert len(notices) == 1 and "channel_not_found" in message_text(notices[0])


def test_a_revoked_token_stops_sending_and_keeps_every_alert_for_after_the_fix(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    feed_server.add("/wire.xml", rss(items(clock)))
    config = write_config(
        tmp_path, {"wire": feed_server.url("/wire.xml")}, rules=rules_dir(tmp_path)
    )
    slack_double.fail_with("token_revoked")

    asyncio.run(run_once(config, slack_double, clock))
    # channels post concurrently: at most the one request in flight per channel is refused
    assert len(slack_double.posts("#korea-security")) == 1
    assert len(slack_double.posts("#opcon-desk")) <= 1
    assert slack_double.messages() == []

    slack_double.clear_faults()  # a new token is installed and the bot restarted
    clock.advance(minutes=20)
    asyncio.run(run_once(config, slack_double, clock))
    assert len(slack_double.messages("#korea-security")) == 2
    assert len(slack_double.messages("#opcon-desk")) == 1
    order = [m["text"] for m in slack_double.messages("#korea-security")]
    assert "Pyeongtaek" in order[0] and "drill" in order[1]


def test_a_feed_failing_past_its_threshold_is_told_once_and_its_recovery_once(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    feed_server.add_status("/wire.xml", 500)
    config = write_config(
        tmp_path,
        {"wire": feed_server.url("/wire.xml")},
        admin=True,
        feed_lines=("failing_after: 2h",),
    )

    async def scenario() -> None:
        env_app = make_app(config, slack_double, clock)
        try:
            for _ in range(4):
                await env_app.run_once()
                clock.advance(hours=1)  # past the feed's backoff
            feed_server.add("/wire.xml", rss([]))
            await env_app.run_once()
            await env_app.run_once()
        finally:
            await env_app.close()

    asyncio.run(scenario())
    notices = [message_text(m) for m in slack_double.messages("#newswatch-ops")]
    assert len(notices) == 2
    assert "wire has been failing for 2 h (3 polls in a row): HTTP 500" in notices[0]
    assert "wire is polling again" in notices[1]
    assert TOKEN  # the double saw our token on every request


def test_parked_alerts_wait_across_restarts_and_go_out_when_the_rules_change(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    feed_server.add("/wire.xml", rss(items(clock)))
    folder = rules_dir(tmp_path)
    config = write_config(tmp_path, {"wire": feed_server.url("/wire.xml")}, rules=folder)
    slack_double.fail_with("not_in_channel", channel="#korea-security")
    asyncio.run(run_once(config, slack_double, clock))
    slack_double.clear_faults()  # the bot is invited; nothing tells it so yet
    clock.advance(minutes=5)
    asyncio.run(run_once(config, slack_double, clock))  # same configuration: still parked
    assert slack_double.messages("#korea-security") == []
    assert len(slack_double.posts("#korea-security")) == 1

    (folder / "usfk.yaml").write_text(  # an edit: parked alerts are tried again
        'name: usfk\nchannel: "#korea-security"\nquery: USFK  # edited\n', encoding="utf-8"
    )
    asyncio.run(run_once(config, slack_double, clock))
    order = [str(m["text"]) for m in slack_double.messages("#korea-security")]
    assert len(order) == 2 and "Pyeongtaek" in order[0] and "drill" in order[1]
