"""Stories and noise control together: copies of a story against quiet hours, digests, hourly
caps and mentions, through the whole bot (loopback feeds → real slack-sdk → Slack double) on a
FixedClock."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import App
from bot.clock import FixedClock
from bot.noise import Hold, Plan
from bot.store import Store
from bot.story import StoryGrouping, StoryPolicy, signature
from tests.e2e import Item, message_text, rss, with_app, write_config
from tests.factories import alert, article, write
from tests.feedserver import FeedServer
from tests.slackdouble import SlackDouble
from tests.story_texts import LEAD, REWRITE

pytestmark = pytest.mark.timeout(120)

DAY = datetime(2025, 7, 31, 3, 0, tzinfo=UTC)  # 12:00 in Seoul
NIGHT = datetime(2025, 7, 31, 14, 0, tzinfo=UTC)  # 23:00 in Seoul
MORNING = datetime(2025, 7, 31, 22, 0, tzinfo=UTC)  # 07:00 in Seoul: quiet hours end
QUIET = "channels:\n  '#korea': {quiet_hours: '22:00-07:00', timezone: Asia/Seoul}"
MENTION_TOKEN = re.compile(r"<[!@][^>]*>")  # every mention token Slack would act on

OTHER = (
    "The Marine Corps will take back operational control of two divisions from the Army "
    "after fifty years, the defense ministry said, and plans a new squadron command led "
    "by a three-star general to oversee amphibious forces on the western islands."
)
FIRST_TITLE = "US Army deactivates helicopter squadron at Camp Humphreys"
COPY_TITLE = "US Army squadron at Camp Humphreys deactivated"
RULE = "channel: '#korea'\nquery: squadron\nmention: '<!subteam^S0KOREA>'\n"
FEEDS = ("one", "two", "three")


@pytest.fixture
def double(slack_double: SlackDouble, clock: FixedClock) -> Iterator[SlackDouble]:
    slack_double.clock = lambda: clock.now().timestamp()
    yield slack_double


def setup(tmp_path: Path, feeds: FeedServer, rules: dict[str, str], channels: str = "") -> Path:
    """Rule files `rules` (name: YAML body); feeds one, two and three (titled Wire One, …)."""
    folder = tmp_path / "rules"
    for name, body in rules.items():
        write(folder, f"{name}.yaml", f"name: {name}\n{body}")
    for name in FEEDS:
        feeds.add(f"/{name}.xml", rss([], title=f"Wire {name.title()}"))
    return write_config(
        tmp_path,
        {name: feeds.url(f"/{name}.xml") for name in FEEDS},
        rules=folder,
        backlog="all",
        extra=("display_timezone: Asia/Seoul", *([channels] if channels else [])),
    )


def publish(feeds: FeedServer, feed: str, guid: str, title: str, body: str, when: datetime) -> None:
    item = Item(guid, title, body, when, link=f"https://{feed}.example/{guid}")
    feeds.add(f"/{feed}.xml", rss([item], title=f"Wire {feed.title()}"))


async def arrive(app: App, feeds: FeedServer, feed: str, guid: str, title: str, body: str) -> None:
    """The article appears in its feed now, and the bot polls every feed once."""
    publish(feeds, feed, guid, title, body, app.rt.clock.now())
    await app.run_once()


def test_a_copy_arriving_in_quiet_hours_waits_for_their_end_then_goes_into_the_thread(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    config = setup(tmp_path, feed_server, {"squadron": RULE}, QUIET)

    async def body(app: App) -> None:
        clock.set(NIGHT - timedelta(hours=2))  # 21:00 in Seoul: the first report posts
        await arrive(app, feed_server, "one", "a1", FIRST_TITLE, LEAD)
        assert len(double.messages("#korea")) == 1
        clock.set(NIGHT)
        await arrive(app, feed_server, "two", "b1", COPY_TITLE, REWRITE)
        clock.set(MORNING - timedelta(seconds=1))
        await app.drain()
        assert len(double.messages("#korea")) == 1, "nothing at night, not even in the thread"
        assert double.updates() == []
        clock.set(MORNING)
        await app.drain()

    with_app(config, double, clock, body)
    top = double.top_level("#korea")
    assert len(top) == 1, "the copy is no quiet-hours batch of its own"
    (reply,) = double.replies("#korea", top[0]["ts"])
    assert "also reported by Wire Two" in reply["text"]
    assert float(reply["ts"]) >= MORNING.timestamp()
    assert not MENTION_TOKEN.search(message_text(reply)), "a reply never mentions anyone"
    assert "also reported by 1 other source" in message_text(double.messages("#korea")[0])


def test_a_story_held_in_quiet_hours_lists_its_night_copies_on_its_line_and_a_later_one_threads(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    """Held reports are not in Slack yet: a copy of one is held with it and named on its line
    of the morning message; a copy after that message went out starts a thread of its own
    (one batch message carries many stories, so it is no story's first post)."""
    config = setup(tmp_path, feed_server, {"squadron": RULE}, QUIET)

    async def body(app: App) -> None:
        clock.set(NIGHT)
        await arrive(app, feed_server, "one", "a1", FIRST_TITLE, LEAD)
        clock.advance(hours=1)
        await arrive(app, feed_server, "two", "b1", COPY_TITLE, REWRITE)
        assert double.messages("#korea") == []
        clock.set(MORNING)
        await app.drain()
        clock.advance(hours=1)
        await arrive(app, feed_server, "three", "c1", COPY_TITLE, REWRITE)
        clock.advance(minutes=10)
        await arrive(app, feed_server, "one", "a2", "Helicopter squadron deactivated", LEAD)

    with_app(config, double, clock, body)
    batch, morning = double.top_level("#korea")
    text = message_text(batch)
    assert "Held during quiet hours" in text and "1 match" in text
    assert FIRST_TITLE in text and "also reported by Wire Two" in text and COPY_TITLE not in text
    assert COPY_TITLE in message_text(morning) and "Wire Three" in message_text(morning)
    assert double.replies("#korea", batch["ts"]) == []
    (reply,) = double.replies("#korea", morning["ts"])
    assert "also reported by Wire One" in reply["text"]


def test_a_copy_of_a_posted_story_goes_into_its_thread_beyond_the_rules_hourly_cap(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    capped = RULE + "max_per_hour: 2\n"
    config = setup(tmp_path, feed_server, {"squadron": capped})

    async def body(app: App) -> None:
        clock.set(DAY)
        await arrive(app, feed_server, "one", "a1", FIRST_TITLE, LEAD)
        for minutes, feed in ((5, "two"), (5, "three")):
            clock.advance(minutes=minutes)
            await arrive(app, feed_server, feed, f"{feed}-copy", COPY_TITLE, REWRITE)
        clock.advance(minutes=5)
        await arrive(
            app, feed_server, "one", "d1", "Marines take back two divisions", OTHER
        )  # the cap's second place: the copies did not take it

    with_app(config, double, clock, body)
    first, other = double.top_level("#korea")
    assert FIRST_TITLE in message_text(first) and "Marines" in message_text(other)
    replies = double.replies("#korea", first["ts"])
    assert [r["text"].split(":")[0] for r in replies] == [
        "also reported by Wire Two",
        "also reported by Wire Three",
    ]
    assert not any("reached its limit" in message_text(m) for m in double.messages())
    assert "also reported by 2 other sources" in message_text(double.messages("#korea")[0])


def test_beyond_the_cap_a_new_story_still_rolls_over_while_a_copy_threads(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    capped = RULE + "max_per_hour: 1\n"
    config = setup(tmp_path, feed_server, {"squadron": capped})

    async def body(app: App) -> None:
        clock.set(DAY)
        await arrive(app, feed_server, "one", "a1", FIRST_TITLE, LEAD)
        clock.advance(minutes=5)
        await arrive(
            app, feed_server, "two", "d1", "Marines take back two divisions", OTHER
        )  # over the cap: held for the catch-up, with a note
        clock.advance(minutes=5)
        await arrive(
            app, feed_server, "three", "c1", COPY_TITLE, REWRITE
        )  # a copy: into the thread at once
        clock.set(DAY + timedelta(hours=1))
        await app.drain()

    with_app(config, double, clock, body)
    first, note, catch_up = double.top_level("#korea")
    assert "reached its limit" in message_text(note)
    assert "Marines" in message_text(catch_up) and COPY_TITLE not in message_text(catch_up)
    (reply,) = double.replies("#korea", first["ts"])
    assert "also reported by Wire Three" in reply["text"]


def test_in_a_channel_with_an_immediate_and_a_digest_rule_a_copy_threads_and_skips_the_digest(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    rules = {
        "squadron-now": "channel: '#korea'\nquery: squadron\nfeeds: [one]\n",
        "squadron-daily": (
            "channel: '#korea'\nquery: squadron\nfeeds: [two, three]\n"
            "delivery: {digest: '0 9 * * *', timezone: Asia/Seoul}\n"
        ),
    }
    config = setup(tmp_path, feed_server, rules)
    nine = datetime(2025, 8, 1, 0, 0, tzinfo=UTC)  # 09:00 on 1 August in Seoul

    async def body(app: App) -> None:
        clock.set(DAY)
        await arrive(app, feed_server, "one", "a1", FIRST_TITLE, LEAD)
        clock.advance(minutes=5)
        await arrive(
            app, feed_server, "two", "b1", COPY_TITLE, REWRITE
        )  # the digest rule's match, a copy of the posted story
        clock.advance(minutes=5)
        await arrive(
            app, feed_server, "three", "d1", "Marines take back two divisions", OTHER
        )  # the digest rule's match, a story of its own
        clock.set(nine)
        await app.drain()

    with_app(config, double, clock, body)
    first, digest = double.top_level("#korea")
    (reply,) = double.replies("#korea", first["ts"])
    assert "also reported by Wire Two" in reply["text"]
    text = message_text(digest)
    assert "Digest" in text and "Marines" in text and COPY_TITLE not in text


def test_feed_text_never_mentions_anyone_in_a_thread_reply(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    config = setup(tmp_path, feed_server, {"squadron": RULE})
    loud = f"<!channel> <@U123> <!subteam^S9> {COPY_TITLE} @here"
    body_text = f"<!everyone> {REWRITE} <!here|here>"

    async def body(app: App) -> None:
        clock.set(DAY)
        await arrive(app, feed_server, "one", "a1", FIRST_TITLE, LEAD)
        clock.advance(minutes=5)
        await arrive(app, feed_server, "two", "b1", loud, body_text)

    with_app(config, double, clock, body)
    (first,) = double.top_level("#korea")
    assert set(MENTION_TOKEN.findall(message_text(first))) == {"<!subteam^S0KOREA>"}
    (reply,) = double.replies("#korea", first["ts"])
    assert "also reported by Wire Two" in reply["text"]
    assert not MENTION_TOKEN.search(message_text(reply))
    for update in double.updates():
        assert set(MENTION_TOKEN.findall(str(update.body))) <= {"<!subteam^S0KOREA>"}


# -- pruning


def rows(database: Path) -> dict[str, int]:
    """How many rows each noise-control and story table holds (read with the stdlib driver)."""
    with closing(sqlite3.connect(database)) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("rule_posts", "cap_notes", "held_alerts", "story_members", "stories")
        }


def test_noise_control_and_story_rows_are_pruned_once_past_their_use(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    config = setup(tmp_path, feed_server, {"squadron": RULE + "max_per_hour: 1\n"}, QUIET)
    with config.open("a", encoding="utf-8") as file:
        file.write("archive:\n  retention: 4d\n")  # batched holds are kept as long
    database = tmp_path / "state.db"

    async def prune(app: App) -> dict[str, int]:
        await app.tick()  # the running bot prunes from its tick, once an hour
        await app.settle()
        return rows(database)

    async def body(app: App) -> None:
        clock.set(DAY)
        await arrive(app, feed_server, "one", "a1", FIRST_TITLE, LEAD)
        clock.advance(minutes=5)
        await arrive(
            app, feed_server, "two", "d1", "Marines take back two divisions", OTHER
        )  # over the cap: a hold for the catch-up and a cap note
        clock.advance(minutes=5)
        await arrive(app, feed_server, "three", "c1", COPY_TITLE, REWRITE)  # into the thread
        assert rows(database) == {
            "rule_posts": 1,
            "cap_notes": 1,
            "held_alerts": 1,
            "story_members": 2,
            "stories": 1,
        }
        clock.set(DAY + timedelta(hours=2))
        await app.drain()  # the catch-up goes out
        assert len(double.top_level("#korea")) == 3
        assert await prune(app) == {
            "rule_posts": 0,
            "cap_notes": 0,
            "held_alerts": 1,  # carried, and kept: the article stays out of the channel
            "story_members": 2,
            "stories": 1,
        }
        clock.set(DAY + timedelta(hours=71))
        assert (await prune(app))["story_members"] == 2, "inside the 72-hour window"
        clock.set(DAY + timedelta(hours=73))
        assert await prune(app) == {
            "rule_posts": 0,
            "cap_notes": 0,
            "held_alerts": 1,
            "story_members": 0,
            "stories": 0,
        }
        clock.set(NIGHT + timedelta(days=4))  # quiet hours, 4 days after the catch-up
        await arrive(
            app, feed_server, "one", "e1", "Squadron returns to Humphreys", OTHER
        )  # held for the end of the night
        assert (await prune(app))["held_alerts"] == 1
        assert app.rt.store.held_count() == 1, "what still waits is never pruned"
        clock.set(MORNING + timedelta(days=4))
        await app.drain()

    with_app(config, double, clock, body)
    messages = double.top_level("#korea")
    assert len(messages) == 4 and "Squadron returns" in message_text(messages[-1])


def test_pruning_keeps_a_story_whose_reply_or_count_is_still_to_be_delivered(
    tmp_path: Path,
) -> None:
    store = Store.open(tmp_path / "state.db")
    try:
        reports = [
            article(feed_key="a1", cross_key="url:a1", title=FIRST_TITLE, summary=LEAD),
            article(feed_key="b1", cross_key="url:b1", title=COPY_TITLE, summary=REWRITE),
        ]
        pairs = [(a, alert(channel="#korea", title=a.title, source=a.feed_key)) for a in reports]
        grouping = StoryGrouping(StoryPolicy(), {a.feed_key: signature(a) for a in reports})
        store.record_poll(
            "wire", "u", reports, pairs, etag=None, last_modified=None, now=DAY, stories=grouping
        )
        later = DAY + StoryPolicy().window + timedelta(hours=1)
        assert store.prune_stories(later, StoryPolicy().window) == 0, "both still pending"
        (head, _) = store.due_alerts(later)
        store.mark_sent(head.id, "1.0", "C1", later)
        assert store.prune_stories(later, StoryPolicy().window) == 0, "its count is to show"
        store.story_shown(head.id, 0, settled=True)
        assert store.prune_stories(later, StoryPolicy().window) == 1, "the head only"
        (reply,) = store.due_alerts(later)
        store.mark_sent(reply.id, "2.0", "C1", later)
        assert store.prune_stories(later, StoryPolicy().window) == 2, "the reply, the story"
    finally:
        store.close()


# -- edits at the source, told in the thread (stories: edits: thread)


def test_with_edits_thread_each_substantive_edit_is_told_once_in_the_alerts_thread(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    config = setup(tmp_path, feed_server, {"squadron": RULE})
    with config.open("a", encoding="utf-8") as file:
        file.write("stories:\n  edits: thread\n")
    versions = [
        (FIRST_TITLE, LEAD),
        (FIRST_TITLE, LEAD),  # polled again unchanged
        (f"UPDATED: {FIRST_TITLE}", LEAD),  # a new headline: told
        (f"UPDATED: {FIRST_TITLE}", LEAD),  # the same edit seen again: not told again
        (f"UPDATED: {FIRST_TITLE}", f"{LEAD} The Army declined to comment."),  # light: not told
        ("Army confirms squadron deactivation <!channel>", OTHER),  # a rewrite: told
    ]

    async def body(app: App) -> None:
        clock.set(DAY)
        for title, text in versions:
            publish(feed_server, "one", "a1", title, text, DAY)
            await app.run_once()
            clock.advance(minutes=10)

    with_app(config, double, clock, body)
    (first,) = double.top_level("#korea")
    replies = double.replies("#korea", first["ts"])
    assert [r["text"].split("|")[-1] for r in replies] == [
        f"UPDATED: {FIRST_TITLE}>",
        "Army confirms squadron deactivation &lt;!channel&gt;>",
    ]
    assert all(r["text"].startswith("updated: <https://one.example/a1|") for r in replies)
    assert not any(MENTION_TOKEN.search(message_text(r)) for r in replies)


def test_an_edit_of_a_threaded_copy_goes_into_its_storys_thread(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    config = setup(tmp_path, feed_server, {"squadron": RULE})
    with config.open("a", encoding="utf-8") as file:
        file.write("stories:\n  edits: thread\n")

    async def body(app: App) -> None:
        clock.set(DAY)
        await arrive(app, feed_server, "one", "a1", FIRST_TITLE, LEAD)
        clock.advance(minutes=5)
        publish(feed_server, "two", "b1", COPY_TITLE, REWRITE, DAY)
        await app.run_once()
        clock.advance(minutes=5)
        publish(feed_server, "two", "b1", f"{COPY_TITLE}, Army says", REWRITE, DAY)
        await app.run_once()

    with_app(config, double, clock, body)
    (first,) = double.top_level("#korea")
    copy, edit = double.replies("#korea", first["ts"])
    assert "also reported by Wire Two" in copy["text"]
    assert (
        edit["text"].startswith("updated: <https://two.example/b1|") and "Army says" in edit["text"]
    )


def test_an_edit_whose_answer_was_lost_is_found_in_the_thread_not_posted_again(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    config = setup(tmp_path, feed_server, {"squadron": RULE})
    with config.open("a", encoding="utf-8") as file:
        file.write("stories:\n  edits: thread\n")

    async def body(app: App) -> None:
        clock.set(DAY)
        publish(feed_server, "one", "a1", FIRST_TITLE, LEAD, DAY)
        await app.run_once()
        clock.advance(minutes=10)
        double.drop_after_accept(times=1)  # Slack takes the edit; the bot never hears so
        publish(feed_server, "one", "a1", f"UPDATED: {FIRST_TITLE}", LEAD, DAY)
        await app.run_once()
        clock.advance(minutes=20)
        await app.drain()

    with_app(config, double, clock, body)
    (first,) = double.top_level("#korea")
    (edit,) = double.replies("#korea", first["ts"])
    assert edit["text"].startswith("updated: ")
    assert any(r.method == "conversations.replies" for r in double.requests)


def test_an_edit_seen_in_quiet_hours_is_told_when_they_end(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    config = setup(tmp_path, feed_server, {"squadron": RULE}, QUIET)
    with config.open("a", encoding="utf-8") as file:
        file.write("stories:\n  edits: thread\n")

    async def body(app: App) -> None:
        clock.set(NIGHT - timedelta(hours=2))
        await arrive(app, feed_server, "one", "a1", FIRST_TITLE, LEAD)
        clock.set(NIGHT)
        publish(feed_server, "one", "a1", f"UPDATED: {FIRST_TITLE}", LEAD, NIGHT)
        await app.run_once()
        assert len(double.messages("#korea")) == 1, "nothing at night"
        clock.set(MORNING)
        await app.drain()

    with_app(config, double, clock, body)
    (first,) = double.top_level("#korea")
    (edit,) = double.replies("#korea", first["ts"])
    assert edit["text"].startswith("updated: ") and float(edit["ts"]) >= MORNING.timestamp()


def test_a_digest_rules_copy_of_a_story_whose_first_post_was_parked_waits_for_the_digest(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    rules = {
        "squadron-now": "channel: '#korea'\nquery: squadron\nfeeds: [one]\n",
        "squadron-daily": (
            "channel: '#korea'\nquery: squadron\nfeeds: [two]\n"
            "delivery: {digest: '0 9 * * *', timezone: Asia/Seoul}\n"
        ),
    }
    config = setup(tmp_path, feed_server, rules)
    nine = datetime(2025, 8, 1, 0, 0, tzinfo=UTC)

    async def body(app: App) -> None:
        clock.set(DAY)
        double.fail_with("msg_too_long", times=2)  # refused, plain text too: parked
        await arrive(app, feed_server, "one", "a1", FIRST_TITLE, LEAD)
        assert double.messages("#korea") == []
        clock.advance(minutes=5)
        await arrive(app, feed_server, "two", "b1", COPY_TITLE, REWRITE)
        assert double.messages("#korea") == [], "no thread to join: the digest takes it"
        clock.set(nine)
        await app.drain()

    with_app(config, double, clock, body)
    (digest,) = double.top_level("#korea")
    assert "Digest" in message_text(digest) and COPY_TITLE in message_text(digest)


def test_a_version_7_database_keeps_its_held_alerts_and_gains_their_signatures(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    Store.open(path).close()  # every table at the latest version, taken back to 7 below
    with closing(sqlite3.connect(path)) as conn:  # held_alerts as version 7 made it
        conn.executescript(
            "DROP TABLE held_alerts;"
            "CREATE TABLE held_alerts (id INTEGER PRIMARY KEY AUTOINCREMENT, kind VARCHAR(16) "
            "NOT NULL, channel VARCHAR(100) NOT NULL, rule VARCHAR(100) NOT NULL, cross_key TEXT "
            "NOT NULL, content TEXT NOT NULL, held_at DATETIME NOT NULL, release_at DATETIME "
            "NOT NULL, batch_id INTEGER, CONSTRAINT uq_held_alert UNIQUE (kind, channel, rule, "
            "cross_key));"
            "DELETE FROM schema_version WHERE version >= 8;"
        )
        columns = [r[1] for r in conn.execute("PRAGMA table_info(held_alerts)")]
        assert "signature" not in columns
    store = Store.open(path)
    try:
        held = alert(channel="#korea", title=FIRST_TITLE)
        sig = signature(article(title=FIRST_TITLE, summary=LEAD)).encode()
        hold = Hold("quiet", "#korea", "", "url:a1", held, DAY, sig)
        store.record_poll(
            "wire", "u", [], [], etag=None, last_modified=None, now=DAY, noise=Plan(holds=(hold,))
        )
        (row,) = store.due_holds(DAY)
        assert row.hold.signature == sig
    finally:
        store.close()
