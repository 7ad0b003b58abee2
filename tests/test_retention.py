"""Retention of the bot's state: seen keys kept while listed, delivered alerts and cleared
notices forgotten past `archive.retention`, waiting alerts never (case 36's bounded database)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FixedClock
from bot.store import Store
from bot.story import signature
from tests.e2e import Item, make_app, message_text, rss, write_config
from tests.factories import alert, article
from tests.feedserver import FeedServer
from tests.slackdouble import SlackDouble

pytestmark = pytest.mark.timeout(120)
NOW = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)
DAY = timedelta(days=1)
RULES = {"garrison": "#garrison", "drill": "#refused", "exercise": "#later"}


def setup(tmp_path: Path, feed_server: FeedServer) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    for word, channel in RULES.items():
        (rules / f"{word}.yaml").write_text(
            f'name: {word}\nchannel: "{channel}"\nquery: {word}\n', encoding="utf-8"
        )
    config = write_config(tmp_path, {"wire": feed_server.url("/wire.xml")}, rules=rules)
    with config.open("a", encoding="utf-8") as file:
        file.write("archive:\n  retention: 2d\n")
    return config


def item(guid: str, title: str) -> Item:
    return Item(guid, title, "Nothing else.", NOW - timedelta(hours=1))


A = item("a", "Garrison relocation planned")
B = item("b", "Garrison visit postponed")
C = item("c", "Garrison budget set")
OTHER = item("x", "Weather report")


def serve(feed_server: FeedServer, items: list[Item], *, full: bool = True) -> None:
    """The feed lists `items`; `full`: every poll gets a 200 (no validators), else 304s
    while it stays the same."""
    if full:
        feed_server.add("/wire.xml", rss(items), etag=None, last_modified=None)
    else:
        feed_server.add("/wire.xml", rss(items))


def rows(tmp_path: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(tmp_path / "state.db")) as conn:
        return conn.execute(query).fetchall()


def days(
    tmp_path: Path,
    feed_server: FeedServer,
    slack_double: SlackDouble,
    steps: list[Callable[[], None]],
) -> list[list[str]]:
    """Run the bot once a day (poll, deliver, prune), each day after its step changed the
    feed; the titles posted each day."""
    clock = FixedClock(NOW)
    posted: list[list[str]] = []

    async def scenario() -> None:
        app = make_app(setup(tmp_path, feed_server), slack_double, clock)
        try:
            for index, step in enumerate(steps):
                if index:
                    clock.advance(days=1)
                step()
                before = len(slack_double.posts())
                await app.run_once()
                titles = []
                for post in slack_double.posts()[before:]:
                    text = message_text(post.body)
                    titles += [i.title for i in (A, B, C, OTHER) if i.title in text]
                posted.append(titles)
        finally:
            await app.close()

    asyncio.run(scenario())
    return posted


def test_an_article_still_listed_past_the_retention_never_alerts_again(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble
) -> None:
    posted = days(
        tmp_path,
        feed_server,
        slack_double,
        [lambda: serve(feed_server, [A, B])] + [lambda: serve(feed_server, [A])] * 4,
    )
    assert posted == [[A.title, B.title], [], [], [], []]
    seen = rows(tmp_path, "SELECT feed_key, first_seen_at, last_seen_at FROM seen_articles")
    assert [(key, last[:10]) for key, _, last in seen] == [("a", "2025-08-04")]  # b went
    alerts = rows(tmp_path, "SELECT cross_key FROM alerts WHERE kind IS NULL")
    assert alerts == [("url:https://wire.example/a",)]  # the listed article's alert stays


def test_an_article_back_after_the_retention_alerts_as_new(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble
) -> None:
    posted = days(
        tmp_path,
        feed_server,
        slack_double,
        [
            lambda: serve(feed_server, [A, B]),
            lambda: serve(feed_server, [A]),  # b is gone ...
            lambda: serve(feed_server, [A]),
            lambda: serve(feed_server, [A]),  # ... for more than the retention: key forgotten
            lambda: serve(feed_server, [A]),  # past the story window too: its alert forgotten
            lambda: serve(feed_server, [A, B]),  # back: a new article
        ],
    )
    assert posted == [[A.title, B.title], [], [], [], [], [B.title]]


def test_an_article_back_while_its_alert_is_kept_does_not_alert_again(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble
) -> None:
    posted = days(
        tmp_path,
        feed_server,
        slack_double,
        [
            lambda: serve(feed_server, [A, B]),
            lambda: serve(feed_server, [A]),
            lambda: serve(feed_server, [A]),
            lambda: serve(feed_server, [A]),  # b's key is forgotten, its alert not yet
            lambda: serve(feed_server, [A, B]),  # the channel already has it: said once
        ],
    )
    assert posted == [[A.title, B.title], [], [], [], []]


def test_an_article_back_within_the_retention_does_not_alert_again(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble
) -> None:
    posted = days(
        tmp_path,
        feed_server,
        slack_double,
        [
            lambda: serve(feed_server, [A, B]),
            lambda: serve(feed_server, [A]),
            lambda: serve(feed_server, [A, B]),  # back after a day: still known
            lambda: serve(feed_server, [A]),
            lambda: serve(feed_server, [A]),
        ],
    )
    assert posted == [[A.title, B.title], [], [], [], []]
    keys = rows(tmp_path, "SELECT feed_key FROM seen_articles ORDER BY feed_key")
    assert keys == [("a",), ("b",)]  # b was listed two days ago: within the retention


def test_a_feed_answering_not_modified_past_the_retention_keeps_its_keys(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble
) -> None:
    same = [lambda: serve(feed_server, [A, B], full=False)]
    posted = days(
        tmp_path,
        feed_server,
        slack_double,
        same * 5 + [lambda: serve(feed_server, [C, A, B], full=False)],
    )
    conditional = ["if-none-match" in r.headers for r in feed_server.requests_for("/wire.xml")]
    assert conditional == [False] + [True] * 5  # answered 304 until the feed changed
    assert posted == [[A.title, B.title], [], [], [], [], [C.title]]  # a 304 listed them


def test_waiting_alerts_survive_pruning_and_delivered_ones_past_the_retention_go(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble
) -> None:
    slack_double.fail_with("channel_not_found", channel="#refused")  # parked
    slack_double.rate_limit("3600", times=None, channel="#later")  # pending, retrying
    first = [item("g", "Garrison moved"), item("d", "Drill held"), item("e", "Exercise set")]
    days(
        tmp_path,
        feed_server,
        slack_double,
        [lambda: serve(feed_server, first)] + [lambda: serve(feed_server, [OTHER])] * 4,
    )  # four days: past the retention (2 d) and the story window (72 h) that keeps alerts
    kept = rows(tmp_path, "SELECT channel, status FROM alerts ORDER BY channel")
    assert kept == [("#later", "pending"), ("#refused", "parked")]  # sent ones and notices went
    assert rows(tmp_path, "SELECT feed_key FROM seen_articles") == [("x",)]

    slack_double.clear_faults()
    clock = FixedClock(NOW + 5 * DAY)

    async def retry() -> None:
        app = make_app(tmp_path / "config.yaml", slack_double, clock)
        try:
            assert await app.rt.db(app.rt.store.unpark, clock.now()) == 1
            clock.advance(hours=2)  # past the rate limit's Retry-After
            await app.drain()
        finally:
            await app.close()

    asyncio.run(retry())
    assert len(slack_double.top_level("#refused")) == 1  # the parked alert, once
    assert len(slack_double.top_level("#later")) == 1
    assert rows(tmp_path, "SELECT DISTINCT status FROM alerts") == [("sent",)]


def test_cleared_notices_are_forgotten_past_the_retention_and_can_be_raised_again(
    tmp_path: Path,
) -> None:
    store = Store.open(tmp_path / "state.db")
    try:
        assert store.set_notice("feed:wire", True, "failing", NOW)
        assert store.set_notice("slack:#a", True, "refused", NOW)
        assert store.set_notice("feed:wire", False, "recovered", NOW + DAY)
        pruned = store.prune_kept(NOW + 4 * DAY, 2 * DAY)
        assert pruned.notices == 1  # the active one stays, however old
        assert store.active_notices() == [("slack:#a", "refused")]
        assert not store.set_notice("feed:wire", False, "recovered", NOW + 4 * DAY)  # no news
        assert store.set_notice("feed:wire", True, "failing again", NOW + 4 * DAY)
    finally:
        store.close()


def test_a_version_9_database_gains_last_listed_times_from_first_sightings(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    Store.open(path).close()  # every table at the latest version, taken back to 9 below
    with closing(sqlite3.connect(path)) as conn:  # seen_articles as version 9 made it
        conn.executescript(
            "DROP TABLE seen_articles;"
            "CREATE TABLE seen_articles (feed VARCHAR(64) NOT NULL, feed_key TEXT NOT NULL, "
            "cross_key TEXT NOT NULL, first_seen_at DATETIME NOT NULL, "
            "PRIMARY KEY (feed, feed_key));"
            "CREATE INDEX ix_seen_cross_key ON seen_articles (cross_key);"
            "INSERT INTO feeds (name, url) VALUES ('wire', 'u');"
            "INSERT INTO seen_articles VALUES ('wire', 'old', 'url:old', '2025-07-20 06:00:00');"
            "INSERT INTO seen_articles VALUES ('wire', 'new', 'url:new', '2025-07-30 06:00:00');"
            "DELETE FROM schema_version WHERE version >= 10;"
        )
    store = Store.open(path)
    try:
        found = rows(tmp_path, "SELECT feed_key, last_seen_at FROM seen_articles ORDER BY 1")
        assert found == [("new", "2025-07-30 06:00:00"), ("old", "2025-07-20 06:00:00")]
        index = rows(tmp_path, "SELECT name FROM sqlite_master WHERE name = 'ix_seen_last'")
        assert index == [("ix_seen_last",)]
        assert store.prune_kept(NOW, 2 * DAY).seen == 1  # gone before the latest sighting
        assert store.unseen("wire", ["old", "new"]) == {"old"}
        record = store.record_poll
        record("wire", "u", [], [], etag=None, last_modified=None, now=NOW, present=["new"])
        assert rows(tmp_path, "SELECT last_seen_at FROM seen_articles")[0][0].startswith(
            "2025-07-31"
        )
    finally:
        store.close()


def test_a_delivered_alert_stays_while_an_edit_of_it_waits_then_both_go(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    try:
        told, other = article(title="Troops moved"), article(feed_key="o", cross_key="url:o")
        record = store.record_poll
        record("wire", "u", [told], [(told, alert())], etag=None, last_modified=None, now=NOW)
        (queued,) = store.due_alerts(NOW)
        store.mark_sent(queued.id, "1.0", "C1", NOW)
        edited = replace(told, title="Troops moved south")
        assert store.queue_edits([(edited, signature(edited))], 0.5, NOW + DAY) == 1
        # the feed no longer lists the article: its key goes two days on
        later = NOW + DAY
        record("wire", "u", [other], [], etag=None, last_modified=None, now=later, present=["o"])
        pruned = store.prune_kept(NOW + 4 * DAY, 2 * DAY)
        assert (pruned.seen, pruned.alerts) == (1, 0)  # the edit waits to go into its thread
        assert store.edit_thread(queued.id) == "1.0"
        (edit,) = store.due_alerts(NOW + 4 * DAY)
        store.mark_sent(edit.id, "2.0", "C1", later)
        assert store.prune_kept(NOW + 4 * DAY, 2 * DAY).alerts == 2  # both delivered, unused
    finally:
        store.close()
