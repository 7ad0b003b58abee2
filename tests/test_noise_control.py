"""Digests, hourly caps, quiet hours and mentions on real parts: loopback feed server → bot →
real slack-sdk → Slack double, with a FixedClock for the windows."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import App
from bot.clock import FixedClock
from bot.noise import Hold, Plan
from bot.store import Store
from tests.crash import REPO, prepare
from tests.e2e import Item, message_text, rss, with_app, write_config
from tests.factories import alert, write
from tests.feedserver import FeedServer
from tests.slackdouble import TOKEN, SlackDouble

pytestmark = pytest.mark.timeout(120)

KST = timedelta(hours=9)
START = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)  # 15:00 in Seoul
NINE_KST = datetime(2025, 8, 1, 0, 0, tzinfo=UTC)  # 09:00 on 1 August in Seoul
MENTION_TOKEN = re.compile(r"<[!@][^>]*>")  # every mention token Slack would act on


@pytest.fixture
def double(slack_double: SlackDouble, clock: FixedClock) -> Iterator[SlackDouble]:
    """The double on the test's clock, so the history look-up after a crash finds posts."""
    clock.set(START)
    slack_double.clock = lambda: clock.now().timestamp()
    yield slack_double


def setup(
    tmp_path: Path,
    feeds: FeedServer,
    rules: dict[str, str],
    channels: str = "",
    feed_lines: tuple[str, ...] = (),
) -> Path:
    """Rule files `rules` (name: YAML body), one feed /wire.xml, Seoul display time, notices
    to #ops."""
    folder = tmp_path / "rules"
    for name, body in rules.items():
        write(folder, f"{name}.yaml", f"name: {name}\n{body}")
    return write_config(
        tmp_path,
        {"wire": feeds.url("/wire.xml")},
        rules=folder,
        backlog="all",
        admin="#ops",
        feed_lines=feed_lines,
        extra=("display_timezone: Asia/Seoul", *([channels] if channels else [])),
    )


def item(guid: str, title: str, clock: FixedClock) -> Item:
    link = f"https://wire.example/{guid}"
    return Item(guid, title, "Officials spoke to reporters on Thursday.", clock.now(), link)


def titles(double: SlackDouble, channel: str) -> list[list[str]]:
    """For each message in `channel`, the headlines it shows (in its fallback text)."""
    found = []
    for message in double.messages(channel):
        found.append(re.findall(r"\|([^>]*)>", str(message["text"])))
    return found


DIGEST = (
    "channel: '#alliance'\nquery: USFK\ndelivery: {digest: '0 9 * * *', timezone: Asia/Seoul}\n"
)
NOW_RULE = "channel: '#alliance'\nquery: OPCON\nmention: here\n"


def test_the_9am_seoul_digest_holds_exactly_the_matches_since_the_last_one_and_none_posted_at_once(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    config = setup(tmp_path, feed_server, {"usfk-digest": DIGEST, "opcon-now": NOW_RULE})
    items = [
        item("a", "USFK troop levels under review", clock),
        item("b", "OPCON transfer talks name USFK role", clock),  # both rules: posts at once
        item("c", "Rainy season in Jeju", clock),
    ]

    async def body(app: App) -> None:
        feed_server.add("/wire.xml", rss(items))
        await app.run_once()
        assert titles(double, "#alliance") == [["OPCON transfer talks name USFK role"]]
        clock.set(NINE_KST - timedelta(minutes=30))
        items.append(item("d", "USFK commander visits Pyeongtaek", clock))
        feed_server.add("/wire.xml", rss(items))
        await app.run_once()
        clock.set(NINE_KST - timedelta(seconds=1))
        await app.drain()
        assert len(double.messages("#alliance")) == 1  # not yet
        clock.set(NINE_KST)
        await app.drain()
        digest = double.messages("#alliance")[1]
        assert titles(double, "#alliance")[1] == [
            "USFK troop levels under review",
            "USFK commander visits Pyeongtaek",
        ]  # b was posted at once in this channel: not repeated
        text = message_text(digest)
        assert "Digest" in text and "usfk-digest" in text and "2 matches" in text
        assert "2025-07-31 15:00 KST" in text and "2025-08-01 08:30 KST" in text  # Seoul time
        clock.advance(hours=2)
        items.append(item("e", "USFK budget hearing", clock))
        feed_server.add("/wire.xml", rss(items))
        await app.run_once()
        clock.set(NINE_KST + timedelta(days=1))
        await app.drain()
        assert titles(double, "#alliance")[2:] == [["USFK budget hearing"]]
        clock.advance(days=1)
        await app.drain()
        assert len(double.messages("#alliance")) == 3  # nothing new: no empty digest

    with_app(config, double, clock, body)


def test_feed_text_never_mentions_anyone_while_the_rules_mention_is_there(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    digest = DIGEST + "mention: '<!subteam^S0ALLY>'\n"
    config = setup(tmp_path, feed_server, {"usfk-digest": digest, "opcon-now": NOW_RULE})
    evil = [
        item("x", "<!channel> OPCON @here <@U0BOSS> update", clock),
        item("y", "<!channel> USFK @channel <!subteam^S0EVIL> news", clock),
    ]

    async def body(app: App) -> None:
        feed_server.add("/wire.xml", rss(evil))
        await app.run_once()
        clock.set(NINE_KST)
        await app.drain()

    with_app(config, double, clock, body)
    immediate, digest_message = double.messages("#alliance")
    for message, mention in ((immediate, "<!here>"), (digest_message, "<!subteam^S0ALLY>")):
        text = message_text(message)
        assert set(MENTION_TOKEN.findall(text)) == {mention}
        assert "&lt;!channel&gt;" in text and "＠" in text  # the feed's attempts, inert


def test_a_capped_rule_rolls_its_overflow_into_its_digest_with_one_note(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    rule = DIGEST + "max_per_hour: 2\n"
    config = setup(tmp_path, feed_server, {"usfk": rule})
    items = [item(f"t{n}", f"USFK story {n}", clock) for n in range(5)]

    async def body(app: App) -> None:
        feed_server.add("/wire.xml", rss(items))
        await app.run_once()
        clock.advance(minutes=10)
        items.extend(item(f"t{n}", f"USFK story {n}", clock) for n in range(5, 7))
        feed_server.add("/wire.xml", rss(items))
        await app.run_once()
        clock.set(NINE_KST)
        await app.drain()

    with_app(config, double, clock, body)
    messages = double.messages("#alliance")
    notes = [m for m in messages if "reached its limit" in str(m["text"])]
    assert len(notes) == 1, "one note, not one per held alert"
    assert "limit of 2 alerts an hour" in notes[0]["text"]
    assert "next digest at 2025-08-01 09:00 KST" in notes[0]["text"]
    assert titles(double, "#alliance") == [
        ["USFK story 0"],
        ["USFK story 1"],
        [],  # the note
        [f"USFK story {n}" for n in range(2, 7)],  # the digest: both polls' overflow
    ]


def test_a_capped_rule_without_a_digest_sends_one_catch_up_when_its_hour_reopens(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    config = setup(
        tmp_path, feed_server, {"usfk": "channel: '#troops'\nquery: USFK\nmax_per_hour: 1\n"}
    )
    items = [item(f"t{n}", f"USFK story {n}", clock) for n in range(3)]
    first = clock.now()

    async def body(app: App) -> None:
        feed_server.add("/wire.xml", rss(items))
        await app.run_once()
        assert len(double.messages("#troops")) == 2  # one alert, one note
        clock.set(first + timedelta(minutes=59, seconds=59))
        await app.drain()
        assert len(double.messages("#troops")) == 2
        clock.set(first + timedelta(hours=1))
        await app.drain()
        clock.advance(minutes=5)
        items.append(item("t3", "USFK story 3", clock))  # the window is open again
        feed_server.add("/wire.xml", rss(items))
        await app.run_once()

    with_app(config, double, clock, body)
    texts = [str(m["text"]) for m in double.messages("#troops")]
    assert "reached its limit of 1 alert an hour" in texts[1]
    assert "one catch-up message at 2025-07-31 16:00 KST" in texts[1]
    assert texts[2].startswith("*Catch-up* · usfk · 2 matches")
    assert titles(double, "#troops")[2] == ["USFK story 1", "USFK story 2"]
    assert titles(double, "#troops")[3] == ["USFK story 3"]
    assert len(texts) == 4


def test_alerts_during_quiet_hours_arrive_as_one_message_when_they_end(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    channels = "channels:\n  '#alliance': {quiet_hours: '22:00-07:00', timezone: Asia/Seoul}"
    rule = "channel: '#alliance'\nquery: USFK\nmention: '<!subteam^S0ALLY>'\n"
    config = setup(tmp_path, feed_server, {"usfk": rule}, channels)
    night = datetime(2025, 7, 31, 14, 0, tzinfo=UTC)  # 23:00 in Seoul
    end = datetime(2025, 7, 31, 22, 0, tzinfo=UTC)  # 07:00 in Seoul

    async def body(app: App) -> None:
        clock.set(night)
        items = [item("q1", "USFK night story one", clock)]
        feed_server.add("/wire.xml", rss(items))
        await app.run_once()
        clock.set(night + timedelta(hours=3))  # 02:00, past midnight
        items += [item("q2", "USFK night story two", clock), item("q3", "USFK three", clock)]
        feed_server.add("/wire.xml", rss(items))
        await app.run_once()
        clock.set(end - timedelta(seconds=1))
        await app.drain()
        assert double.messages("#alliance") == []
        clock.set(end)
        await app.drain()
        clock.advance(minutes=1)
        again = Item("q1-copy", "USFK night story one", "A copy.", clock.now(), items[0].link)
        items.append(again)  # the same article (same link) again: already in the batch
        items.append(item("q4", "USFK morning story", clock))
        feed_server.add("/wire.xml", rss(items))
        await app.run_once()

    with_app(config, double, clock, body)
    held, _ = double.messages("#alliance")
    text = message_text(held)
    assert text.startswith("<!subteam^S0ALLY> *Held during quiet hours* · 3 matches")
    assert titles(double, "#alliance")[0] == [
        "USFK night story one",
        "USFK night story two",
        "USFK three",
    ]
    assert "2025-07-31 23:00 KST" in text and "2025-08-01 02:00 KST" in text
    assert titles(double, "#alliance")[1] == ["USFK morning story"]  # posts at once again


def test_a_digest_missed_while_the_bot_was_down_is_sent_at_start_up_once(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    config = setup(tmp_path, feed_server, {"usfk-digest": DIGEST})
    feed_server.add("/wire.xml", rss([item("a", "USFK troop levels under review", clock)]))

    async def before(app: App) -> None:
        await app.run_once()

    with_app(config, double, clock, before)
    assert double.messages() == []
    clock.set(NINE_KST + timedelta(days=2, hours=3))  # down through two digest times

    async def after(app: App) -> None:
        await app.drain()  # start-up's first delivery pass

    with_app(config, double, clock, after)
    with_app(config, double, clock, after)  # and once more: nothing is sent twice
    assert titles(double, "#alliance") == [["USFK troop levels under review"]]
    assert str(double.messages("#alliance")[0]["text"]).startswith("*Digest* · usfk-digest")


def test_a_digest_at_a_wall_time_repeated_in_autumn_goes_out_once_that_night(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    """2 November 2025 in New York: 01:30 comes twice (05:30 UTC in EDT, 06:30 UTC in EST).
    The digest goes out at the first; a match between the two waits for the next day's."""
    rule = (
        "channel: '#alliance'\nquery: USFK\n"
        "delivery: {digest: '30 1 * * *', timezone: America/New_York}\n"
    )
    config = setup(tmp_path, feed_server, {"usfk-digest": rule})
    first = datetime(2025, 11, 2, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second = datetime(2025, 11, 2, 6, 30, tzinfo=UTC)  # 01:30 EST, the same wall time
    items: list[Item] = []

    async def body(app: App) -> None:
        clock.set(first - timedelta(hours=1))
        items.append(item("a", "USFK story before the first 01:30", clock))
        feed_server.add("/wire.xml", rss(items))
        await app.run_once()
        clock.set(first)
        await app.drain()
        clock.set(first + timedelta(minutes=15))
        items.append(item("b", "USFK story between the two", clock))
        feed_server.add("/wire.xml", rss(items))
        await app.run_once()
        clock.set(second)
        await app.drain()
        assert len(double.messages("#alliance")) == 1, "01:30 went out already tonight"
        clock.set(second + timedelta(days=1))  # 01:30 EST on 3 November
        await app.drain()

    with_app(config, double, clock, body)
    assert titles(double, "#alliance") == [
        ["USFK story before the first 01:30"],
        ["USFK story between the two"],
    ]
    assert [m["ts"] for m in double.messages("#alliance")] == [
        f"{first.timestamp():.6f}",
        f"{(second + timedelta(days=1)).timestamp():.6f}",
    ]


@pytest.mark.parametrize("fault", ["outage", "lost-answer"])
def test_a_digest_survives_an_outage_or_a_crash_between_post_and_mark(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock, fault: str
) -> None:
    config = setup(tmp_path, feed_server, {"usfk-digest": DIGEST})
    feed_server.add("/wire.xml", rss([item("a", "USFK troop levels under review", clock)]))

    async def hold(app: App) -> None:
        await app.run_once()
        clock.set(NINE_KST)
        if fault == "outage":
            double.fail_http(503, times=None)
        else:
            double.drop_after_accept(times=1)  # Slack takes it; the answer never arrives
        await app.deliver()

    with_app(config, double, clock, hold)  # then the bot stops, as after a crash
    assert len(double.messages("#alliance")) == (0 if fault == "outage" else 1)
    double.clear_faults()
    clock.advance(minutes=20)

    async def restart(app: App) -> None:
        await app.drain()

    with_app(config, double, clock, restart)
    assert titles(double, "#alliance") == [["USFK troop levels under review"]]  # exactly once
    assert str(double.messages("#alliance")[0]["text"]).startswith("*Digest* · usfk-digest")
    if fault == "lost-answer":
        assert len(double.posts("#alliance")) == 1  # found by its tag, not posted again


def test_a_digest_of_200_long_matches_is_one_message_the_double_accepts_with_blocks(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    config = setup(tmp_path, feed_server, {"usfk-digest": DIGEST})
    long = [item(f"n{n}", f"USFK {n} " + "troop levels " * 900, clock) for n in range(200)]
    feed_server.add("/wire.xml", rss(long))

    async def body(app: App) -> None:
        await app.run_once()
        clock.set(NINE_KST)
        await app.drain()

    with_app(config, double, clock, body)
    (digest,) = double.messages("#alliance")
    (post,) = double.posts("#alliance")
    assert post.body.get("blocks"), "blocks within limits, not the plain fallback"
    assert len(str(digest["text"])) <= 4000
    assert "200 matches" in str(digest["text"])
    listed = sum(str(b["text"]["text"]).count("• ") for b in digest["blocks"] if "text" in b)
    assert f"and {200 - listed} more" in message_text(digest)


def test_operational_notices_show_times_in_the_display_timezone(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    config = setup(tmp_path, feed_server, {"usfk": DIGEST}, feed_lines=("failing_after: 0",))
    feed_server.add_status("/wire.xml", 500)

    async def body(app: App) -> None:
        await app.run_once()

    with_app(config, double, clock, body)
    (notice,) = double.messages("#ops")
    assert "failing since 2025-07-31 15:00 KST" in str(notice["text"])


def test_two_feeds_polled_at_once_never_both_take_a_caps_last_place(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    rule = "channel: '#troops'\nquery: USFK\nmax_per_hour: 1\n"
    config = setup(tmp_path, feed_server, {"usfk": rule})
    text = config.read_text(encoding="utf-8")
    second = f"  - name: wire2\n    url: {feed_server.url('/wire2.xml')}\n    backlog: all\n"
    config.write_text(text + second, encoding="utf-8")
    feed_server.add("/wire.xml", rss([item("a", "USFK story a", clock)]))
    feed_server.add("/wire2.xml", rss([item("b", "USFK story b", clock)]))

    async def body(app: App) -> None:
        await app.run_once()  # both feeds polled concurrently

    with_app(config, double, clock, body)
    shown = titles(double, "#troops")
    assert len(shown) == 2 and len(shown[0]) == 1 and shown[1] == []  # one alert, one note


def test_killing_the_bot_while_it_sends_digests_loses_and_duplicates_none(
    tmp_path: Path, slack_double: SlackDouble
) -> None:
    """The real bot, SIGKILLed (its whole process group) around its digest posts, restarted."""
    config = prepare(tmp_path, channels=0, per_channel=0)
    channels = [f"#digest-{c}" for c in range(6)]
    now = datetime.now(UTC)
    holds = tuple(
        Hold("digest", ch, "r", f"url:{ch}/{n}", alert(channel=ch, title=f"{ch} {n}"), now)
        for ch in channels
        for n in range(5)
    )
    store = Store.open(tmp_path / "state.db")
    store.record_poll(
        "w", "u", [], [], etag=None, last_modified=None, now=now, noise=Plan(holds=holds)
    )
    store.close()
    slack_double.delay(0.1, times=None)  # kills land between Slack's accepting and the answer
    log = tmp_path / "bot.log"
    for pause in (0.05, 0.15):  # after Slack took the posts, before the answers; then later
        if not outstanding(tmp_path / "state.db"):
            break
        before = len(slack_double.requests)
        process = start_bot(config, slack_double, log)
        try:
            deadline = time.monotonic() + 15
            while len(slack_double.requests) == before and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(pause)
        finally:
            kill_bot(process)
    process = start_bot(config, slack_double, log)
    try:
        deadline = time.monotonic() + 60
        while outstanding(tmp_path / "state.db") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        kill_bot(process)
    assert "(found ts=" in log.read_text(errors="replace")  # a kill fell after Slack took one
    for ch in channels:
        (digest,) = slack_double.messages(ch)  # exactly once each
        assert str(digest["text"]).startswith("*Digest* · r · 5 matches")


def outstanding(database: Path) -> int:
    """Alerts still held, and outbox rows of any kind not yet sent."""
    store = Store.open(database)
    try:
        later = datetime.now(UTC) + timedelta(days=1)
        return store.held_count() + len(store.due_alerts(later))
    finally:
        store.close()


def start_bot(config: Path, double: SlackDouble, log: Path) -> subprocess.Popen[bytes]:
    """`newswatch run` in its own process group (so a kill takes its worker too)."""
    env = dict(os.environ, SLACK_BOT_TOKEN=TOKEN, SLACK_API_URL=double.base_url)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(config), "run"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


def kill_bot(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
