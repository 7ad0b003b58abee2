"""The whole loop on real parts: loopback feed server → bot → real slack-sdk → Slack double."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import FixedClock
from tests.e2e import Item, make_app, message_text, rss, run_once, sample_item, write_config
from tests.feedserver import FeedServer
from tests.shared import SAMPLE_ARTICLE, need
from tests.slackdouble import SlackDouble

pytestmark = pytest.mark.timeout(120)

BOTH_RULES = ("usfk-troop-levels", "opcon-transfer")


@pytest.fixture
def feeds(feed_server: FeedServer) -> FeedServer:
    return feed_server


def unrelated(clock: FixedClock, guid: str = "old-1") -> Item:
    return Item(
        guid, "Rainy season arrives early in Jeju", "Farmers welcomed the rain.", clock.now()
    )


def test_a_feed_that_gains_the_sample_article_alerts_once_in_korea_security(
    tmp_path: Path, feeds: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    sample = need(SAMPLE_ARTICLE)
    feeds.add("/wire.xml", rss([unrelated(clock)]))
    config = write_config(tmp_path, {"wire": feeds.url("/wire.xml")})

    async def scenario() -> None:
        app = make_app(config, slack_double, clock)
        try:
            await app.run_once()  # first poll: the existing article is recorded as seen
            assert slack_double.messages() == []

            clock.advance(minutes=10)
            article = sample_item(sample, clock.now() - timedelta(minutes=5))
            feeds.add("/wire.xml", rss([article, unrelated(clock)]))
            await app.run_once()
            messages = slack_double.messages("#korea-security")
            assert len(messages) == 1, "one message naming both rules, not one per rule"
            text = message_text(messages[0])
            for rule in BOTH_RULES:
                assert rule in text
            assert slack_double.messages() == messages  # nothing anywhere else

            clock.advance(minutes=10)
            await app.run_once()  # unchanged feed: conditional GET, 304, nothing new
            assert len(slack_double.messages()) == 1
            last = feeds.requests_for("/wire.xml")[-1]
            assert "if-none-match" in last.headers or "if-modified-since" in last.headers
        finally:
            await app.close()

        restarted = make_app(config, slack_double, clock)
        try:
            feeds.add("/wire.xml", rss([article, unrelated(clock)]), etag='"changed"')
            await restarted.run_once()  # a fresh 200 with the same entries after a restart
            assert len(slack_double.messages()) == 1
        finally:
            await restarted.close()

    asyncio.run(scenario())


def test_mentions_in_a_title_are_escaped(
    tmp_path: Path, feeds: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    item = Item(
        "evil-1",
        "<!channel> USFK troop reduction <@U123> <https://evil.example|Official notice>",
        "The number of U.S. troops in South Korea, 28,500, will be cut, officials said.",
        clock.now(),
    )
    feeds.add("/wire.xml", rss([item]))
    config = write_config(tmp_path, {"wire": feeds.url("/wire.xml")})

    asyncio.run(run_once(config, slack_double, clock))
    messages = slack_double.messages("#korea-security")
    assert len(messages) == 1
    text = message_text(messages[0])
    assert "<!" not in text and "<@" not in text
    assert "<https://evil.example" not in text  # shown as text, never as a link
    assert "&lt;!channel&gt;" in text and "&lt;https://evil.example|Official notice&gt;" in text


def test_a_failed_post_is_delivered_on_a_later_pass_exactly_once(
    tmp_path: Path, feeds: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    item = Item(
        "troops-1",
        "Pentagon weighs cut to USFK troop levels",
        "Washington is weighing a reduction of the 28,500 American troops in South Korea.",
        clock.now(),
    )
    feeds.add("/wire.xml", rss([item]))
    config = write_config(tmp_path, {"wire": feeds.url("/wire.xml")})
    slack_double.fail_http(503, times=1)

    async def scenario() -> None:
        app = make_app(config, slack_double, clock)
        try:
            await app.run_once()
            assert slack_double.messages() == []  # the post failed; the alert stays pending
            assert (await app.deliver()).sent == 0  # not due yet: backoff
            clock.advance(minutes=1)
            assert (await app.deliver()).sent == 1
            clock.advance(minutes=30)
            assert (await app.deliver()).sent == 0
        finally:
            await app.close()

    asyncio.run(scenario())
    assert len(slack_double.messages("#korea-security")) == 1
    assert len(slack_double.posts()) == 2  # one failed attempt, one success


def test_a_broken_feed_does_not_stop_the_others(
    tmp_path: Path, feeds: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    item = Item(
        "opcon-1",
        "Seoul and Washington discuss wartime operational control transfer",
        "The allies reviewed the conditions for the OPCON transition.",
        clock.now(),
    )
    feeds.add("/good.xml", rss([item]))
    feeds.add_status("/broken.xml", 500, body=b"oops")
    feeds.add("/garbage.xml", "<html><body>not a feed</body></html>")
    config = write_config(
        tmp_path,
        {
            "broken": feeds.url("/broken.xml"),
            "garbage": feeds.url("/garbage.xml"),
            "good": feeds.url("/good.xml"),
            "nowhere": feeds.url("/missing.xml").replace(str(feeds.port), "1"),
        },
    )

    statuses = asyncio.run(run_once(config, slack_double, clock))
    assert statuses == ["error", "error", "ok", "error"]
    assert len(slack_double.messages("#korea-security")) == 1


def test_the_same_article_in_two_feeds_alerts_once_per_channel(
    tmp_path: Path, feeds: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    body = "Wartime operational control will pass to Seoul, the ministry said."
    one = Item("a-1", "OPCON handover date set", body, clock.now(), "https://news.example/opcon")
    two = Item(
        "b-77",
        "OPCON handover date set",
        body,
        clock.now(),
        "https://news.example/opcon?utm_source=feed&utm_medium=rss#top",
    )
    feeds.add("/a.xml", rss([one]))
    feeds.add("/b.xml", rss([two]))
    config = write_config(tmp_path, {"a": feeds.url("/a.xml"), "b": feeds.url("/b.xml")})

    asyncio.run(run_once(config, slack_double, clock))
    assert len(slack_double.messages("#korea-security")) == 1


def test_a_broken_rule_is_reported_and_the_others_keep_working(
    tmp_path: Path, feeds: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "good.yaml").write_text(
        'name: good\nchannel: "#korea-security"\nquery: USFK\n', encoding="utf-8"
    )
    (rules / "broken.yaml").write_text("name: broken\nquery: (USFK\n", encoding="utf-8")
    feeds.add("/wire.xml", rss([Item("u-1", "USFK commander speaks", "USFK said.", clock.now())]))
    config = write_config(tmp_path, {"wire": feeds.url("/wire.xml")}, rules=rules, admin=True)

    asyncio.run(run_once(config, slack_double, clock))
    assert len(slack_double.messages("#korea-security")) == 1
    notices = slack_double.messages("#newswatch-ops")
    assert len(notices) == 1
    assert "broken.yaml:2" in message_text(notices[0])


def test_a_new_feed_alerts_only_within_its_backlog_window(
    tmp_path: Path, feeds: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    old = Item(
        "old",
        "USFK troop levels debated",
        "28,500 U.S. troops in Korea.",
        clock.now() - timedelta(days=3),
    )
    new = Item(
        "new", "USFK troop levels debated again", "28,500 U.S. troops in Korea.", clock.now()
    )
    feeds.add("/wire.xml", rss([new, old]))
    config = write_config(tmp_path, {"wire": feeds.url("/wire.xml")}, backlog="24h")

    asyncio.run(run_once(config, slack_double, clock))
    messages = slack_double.messages("#korea-security")
    assert len(messages) == 1
    assert "again" in message_text(messages[0])


def _die(*_: object) -> None:
    import os

    os._exit(9)  # a worker killed mid-parse (e.g. by the OOM killer)


def test_a_dead_worker_fails_one_poll_and_the_next_poll_works(
    tmp_path: Path, feeds: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    item = Item("u-1", "USFK troop cut", "A cut to the 28,500 U.S. troops in Korea.", clock.now())
    feeds.add("/wire.xml", rss([item]))
    config = write_config(tmp_path, {"wire": feeds.url("/wire.xml")})

    async def scenario() -> list[str]:
        app = make_app(config, slack_double, clock)
        statuses = []
        try:
            broken = await asyncio.gather(app.rt.cpu(_die), return_exceptions=True)
            assert type(broken[0]).__name__ == "BrokenProcessPool"
            statuses += [o.status for o in await app.run_once()]
        finally:
            await app.close()
        return statuses

    assert asyncio.run(scenario()) == ["ok"]
    assert len(slack_double.messages("#korea-security")) == 1


def test_pending_alerts_survive_a_restart_and_are_sent_once(
    tmp_path: Path, feeds: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    item = Item(
        "t-1", "USFK troop cut ordered", "28,500 U.S. troops in Korea will shrink.", clock.now()
    )
    feeds.add("/wire.xml", rss([item]))
    config = write_config(tmp_path, {"wire": feeds.url("/wire.xml")})
    slack_double.fail_http(503, times=None)  # Slack is down for the whole first run

    asyncio.run(run_once(config, slack_double, clock))
    assert slack_double.messages() == []
    slack_double.clear_faults()
    clock.advance(minutes=5)
    asyncio.run(run_once(config, slack_double, clock))
    assert len(slack_double.messages("#korea-security")) == 1


def test_a_feed_whose_url_changes_is_fetched_without_the_old_validators(
    tmp_path: Path, feeds: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    feeds.add("/old.xml", rss([Item("o-1", "Jeju weather", "Rain.", clock.now())]))
    feeds.add("/new.xml", rss([Item("n-1", "Jeju weather", "Sun.", clock.now())]))
    asyncio.run(
        run_once(write_config(tmp_path, {"wire": feeds.url("/old.xml")}), slack_double, clock)
    )
    asyncio.run(
        run_once(write_config(tmp_path, {"wire": feeds.url("/new.xml")}), slack_double, clock)
    )
    (request,) = feeds.requests_for("/new.xml")
    assert "if-none-match" not in request.headers and "if-modified-since" not in request.headers
