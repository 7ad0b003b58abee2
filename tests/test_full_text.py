"""Full text for teaser feeds, end to end: the article page is fetched once, its main text
matched and quoted; failures fall back to the feed's text and show in the feed's health."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.clock import FixedClock
from bot.store import Store
from tests.e2e import Item, make_app, message_text, rss, sample_item, write_config
from tests.factories import write
from tests.feedserver import FeedServer
from tests.pages import HTML, article_page, page_without_text
from tests.shared import SAMPLE_ARTICLE, need
from tests.slackdouble import SlackDouble

pytestmark = pytest.mark.timeout(120)

KEY_SENTENCE = "The brigade stationed at Camp Humphreys will rotate home next spring."
TEASER = "Allies met in Seoul for annual security talks."
RULE = """name: humphreys
channel: "#korea-security"
query: '"Camp Humphreys"'
"""
TEASER_RULE = """name: talks
channel: "#korea-security"
query: '"security talks"'
"""


def rules(tmp_path: Path, *texts: str) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    for n, text in enumerate(texts):
        write(folder, f"rule{n}.yaml", text)
    return folder


def full_text_config(
    tmp_path: Path, feeds: dict[str, str], *, full_text: bool = True, private: bool = True
) -> Path:
    config = write_config(
        tmp_path,
        feeds,
        rules=rules(tmp_path, RULE, TEASER_RULE),
        feed_lines=(f"full_text: {'true' if full_text else 'false'}",),
    )
    if not private:  # feeds are configured URLs; article links get no loopback exception
        text = config.read_text(encoding="utf-8").replace("[127.0.0.0/8]", "[]")
        config.write_text(text, encoding="utf-8")
    return config


def teaser(clock: FixedClock, guid: str, link: str, title: str = "Allies hold talks") -> Item:
    return Item(guid, title, TEASER, clock.now() - timedelta(minutes=5), link=link)


def run_polls(config: Path, slack: SlackDouble, clock: FixedClock, polls: int = 1) -> None:
    async def go() -> None:
        app = make_app(config, slack, clock)
        try:
            for _ in range(polls):
                await app.run_once()
                await app.drain()
                clock.advance(minutes=2)
        finally:
            await app.close()

    asyncio.run(go())


@pytest.mark.parametrize("full_text", [True, False])
def test_a_rule_matching_only_the_pages_paragraph_alerts_only_with_full_text(
    tmp_path: Path,
    feed_server: FeedServer,
    slack_double: SlackDouble,
    clock: FixedClock,
    full_text: bool,
) -> None:
    feed_server.add("/story/1", article_page("Allies hold talks", KEY_SENTENCE), headers=HTML)
    feed_server.add("/wire.xml", rss([teaser(clock, "t-1", feed_server.url("/story/1"))]))
    config = full_text_config(tmp_path, {"wire": feed_server.url("/wire.xml")}, full_text=full_text)
    run_polls(config, slack_double, clock)
    texts = [message_text(m) for m in slack_double.messages("#korea-security")]
    assert len(texts) == 1  # one message for the article, naming the rules that matched
    if full_text:
        assert "humphreys" in texts[0] and "talks" in texts[0]
        assert "brigade stationed at" in texts[0]  # the summary quotes the page's sentence
        assert len(feed_server.requests_for("/story/1")) == 1
    else:
        assert "humphreys" not in texts[0]
        assert feed_server.requests_for("/story/1") == []


def test_each_article_page_is_fetched_once_only_for_new_articles_and_across_feeds(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    for n in (1, 2):
        feed_server.add(f"/story/{n}", article_page(f"Story {n}", KEY_SENTENCE), headers=HTML)
    first = teaser(clock, "t-1", feed_server.url("/story/1"))
    feed_server.add("/a.xml", rss([first]))
    feed_server.add("/b.xml", rss([first]))  # the same article in a second feed
    config = full_text_config(
        tmp_path, {"a": feed_server.url("/a.xml"), "b": feed_server.url("/b.xml")}
    )
    run_polls(config, slack_double, clock, polls=2)
    assert len(feed_server.requests_for("/story/1")) == 1  # the second feed used the stored page
    second = teaser(clock, "t-2", feed_server.url("/story/2"), "Second story")
    feed_server.add("/a.xml", rss([second, first]), etag='"new"')  # a 200 with a seen article
    run_polls(config, slack_double, clock)
    assert len(feed_server.requests_for("/story/1")) == 1
    assert len(feed_server.requests_for("/story/2")) == 1
    assert len(slack_double.messages("#korea-security")) == 2  # one per article, not per feed


def test_a_story_twice_in_one_feed_is_fetched_once_and_both_entries_are_seen(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    feed_server.add("/story/1", article_page("Allies hold talks", KEY_SENTENCE), headers=HTML)
    link = feed_server.url("/story/1")
    feed_server.add("/wire.xml", rss([teaser(clock, "t-1", link), teaser(clock, "t-1b", link)]))
    config = full_text_config(tmp_path, {"wire": feed_server.url("/wire.xml")})
    run_polls(config, slack_double, clock)
    store = Store.open(tmp_path / "state.db")
    try:
        assert store.unseen("wire", ["t-1", "t-1b"]) == set()  # both, in the first poll
    finally:
        store.close()
    feed_server.add(
        "/wire.xml", rss([teaser(clock, "t-1", link), teaser(clock, "t-1b", link)]), etag='"again"'
    )
    run_polls(config, slack_double, clock)
    assert len(feed_server.requests_for("/story/1")) == 1
    messages = slack_double.messages("#korea-security")
    assert len(messages) == 1 and "humphreys" in message_text(messages[0])


def test_on_a_first_poll_articles_before_the_backlog_window_get_no_page(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    old = Item("old", "Old talks", TEASER, clock.now() - timedelta(days=3), feed_server.url("/o"))
    feed_server.add("/o", article_page("Old talks", KEY_SENTENCE), headers=HTML)
    feed_server.add("/wire.xml", rss([old]))
    run_polls(
        full_text_config(tmp_path, {"wire": feed_server.url("/wire.xml")}), slack_double, clock
    )
    assert feed_server.requests_for("/o") == []
    assert slack_double.messages() == []


def counts(tmp_path: Path) -> dict[str, tuple[int, int, str | None]]:
    store = Store.open(tmp_path / "state.db")
    try:
        return {f: (c.fetched, c.failed, c.last_error) for f, c in store.page_counts().items()}
    finally:
        store.close()


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ("no-text", "the page has no main text"),
        ("missing", "HTTP 404"),
        ("pdf", "not a web page (Content-Type application/pdf)"),
        ("slow", "deadline"),
    ],
)
def test_a_page_that_fails_falls_back_to_the_feeds_text_and_is_counted(
    tmp_path: Path,
    feed_server: FeedServer,
    slack_double: SlackDouble,
    clock: FixedClock,
    route: str,
    reason: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    feed_server.add("/no-text", page_without_text(), headers=HTML)
    feed_server.add("/pdf", b"%PDF-1.7 " + b"x" * 4000, headers={"Content-Type": "application/pdf"})
    feed_server.add_slow("/slow", article_page("Late", KEY_SENTENCE), 3.0)
    feed_server.add("/wire.xml", rss([teaser(clock, "t-1", feed_server.url(f"/{route}"))]))
    config = write_config(
        tmp_path,
        {"wire": feed_server.url("/wire.xml")},
        rules=rules(tmp_path, RULE, TEASER_RULE),
        deadline="1s",
        feed_lines=("full_text: true",),
    )
    run_polls(config, slack_double, clock)
    texts = [message_text(m) for m in slack_double.messages("#korea-security")]
    assert len(texts) == 1 and "talks" in texts[0] and "humphreys" not in texts[0]
    assert "Allies met in Seoul" in texts[0]  # the feed's own text is the summary
    fetched, failed, last = counts(tmp_path)["wire"]
    assert (fetched, failed) == (1, 1) and reason in (last or "")
    if route == "no-text":  # the operator sees it in both commands
        assert main(["--config", str(config), "feeds"]) == 0
        assert (
            f"full text: 1 of 1 pages failed in 14 days (last: {last})" in capsys.readouterr().out
        )
        assert main(["--config", str(config), "status"]) == 0
        assert "full text: 1 of 1 pages failed" in capsys.readouterr().out


def test_a_link_to_a_private_address_is_never_fetched(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    """The feed itself is on loopback (a configured URL is trusted as written), but without
    allow_private its article links to loopback, or redirects there, are refused."""
    feed_server.add("/story/1", article_page("Allies hold talks", KEY_SENTENCE), headers=HTML)
    items = [
        teaser(clock, "t-1", feed_server.url("/story/1")),
        teaser(clock, "t-2", "http://169.254.169.254/latest/meta-data/", "Metadata"),
        teaser(clock, "t-3", f"http://[::ffff:127.0.0.1]:{feed_server.port}/story/1", "Mapped"),
    ]
    feed_server.add("/wire.xml", rss(items))
    config = full_text_config(tmp_path, {"wire": feed_server.url("/wire.xml")}, private=False)
    run_polls(config, slack_double, clock)
    assert feed_server.requests_for("/story/1") == []
    fetched, failed, last = counts(tmp_path)["wire"]
    assert (fetched, failed) == (3, 3) and "is not a public address" in (last or "")
    texts = [message_text(m) for m in slack_double.messages("#korea-security")]
    assert len(texts) == 3 and not any("humphreys" in t for t in texts)


@pytest.mark.parametrize("full_text", [True, False])
def test_the_real_sample_article_behind_a_headline_only_feed_alerts_with_full_text(
    tmp_path: Path,
    feed_server: FeedServer,
    slack_double: SlackDouble,
    clock: FixedClock,
    full_text: bool,
) -> None:
    """The shipped rules on the real sample article (read in place), served as a web page;
    the feed gives its headline only."""
    sample = sample_item(need(SAMPLE_ARTICLE), clock.now() - timedelta(minutes=5))
    sentences = [s.strip() + "." for s in sample.body.split(". ") if s.strip()]
    feed_server.add("/story", article_page(sample.title, *sentences, filler=False), headers=HTML)
    headline = Item("s-1", sample.title, "", sample.published, link=feed_server.url("/story"))
    feed_server.add("/wire.xml", rss([headline]))
    config = write_config(
        tmp_path,
        {"wire": feed_server.url("/wire.xml")},
        feed_lines=(f"full_text: {'true' if full_text else 'false'}",),
    )
    run_polls(config, slack_double, clock)
    messages = slack_double.messages("#korea-security")
    if full_text:
        assert len(messages) == 1
        text = message_text(messages[0])
        assert "usfk-troop-levels" in text and "opcon-transfer" in text
    else:
        assert messages == []
