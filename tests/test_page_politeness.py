"""Politeness toward the sites article pages come from: requests to one host spaced by
fetch.page_interval, a host's 429/503 Retry-After honoured, at most full_text_max pages a poll.
Waits run on the injected clock (FixedClock moves at once), so nothing here sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import TypeVar

import pytest

from bot.clock import FixedClock
from bot.errors import FetchError, PageDeferred
from bot.fetch import PAGE_BACKOFF, Fetcher, FetchPolicy, IPAddress
from bot.store import Store
from tests.e2e import Item, make_app, message_text, rss, write_config
from tests.factories import write
from tests.feedserver import FeedServer
from tests.pages import HTML, article_page
from tests.slackdouble import SlackDouble

pytestmark = pytest.mark.timeout(120)

T = TypeVar("T")
LOOPBACK = (ip_network("127.0.0.0/8"),)
PAGE = b"<html><body><article><p>The page.</p></article></body></html>"
KEY_SENTENCE = "The brigade stationed at Camp Humphreys will rotate home next spring."
TEASER = "Allies met in Seoul for annual security talks."
RULE = """name: humphreys
channel: "#korea-security"
query: '"Camp Humphreys" OR "security talks"'
"""


async def to_loopback(host: str, port: int) -> list[IPAddress]:
    """Every name is this machine: two names, two hosts, one test server."""
    return [ip_address("127.0.0.1")]


def policy(interval: float = 1.0) -> FetchPolicy:
    return FetchPolicy(
        deadline=5.0, allow_private=LOOPBACK, resolver=to_loopback, page_interval=interval
    )


def with_fetcher(
    clock: FixedClock, go: Callable[[Fetcher], Awaitable[T]], interval: float = 1.0
) -> T:
    async def run() -> T:
        fetcher = Fetcher(policy(interval), clock=clock)
        try:
            return await go(fetcher)
        finally:
            await fetcher.aclose()

    return asyncio.run(run())


def test_page_requests_to_one_host_start_the_interval_apart(
    feed_server: FeedServer, clock: FixedClock
) -> None:
    for n in range(3):
        feed_server.add(f"/story/{n}", PAGE, headers=HTML)
    start = clock.now()
    urls = [f"http://news.example:{feed_server.port}/story/{n}" for n in range(3)]

    async def go(fetcher: Fetcher) -> list[bytes]:
        results = await asyncio.gather(*(fetcher.fetch_page("wire", u) for u in urls))
        return [r.body for r in results]

    assert with_fetcher(clock, go, interval=1.5) == [PAGE] * 3
    assert clock.now() - start == timedelta(seconds=3)  # two waits of 1.5 s, not three
    assert len(feed_server.requests) == 3


def test_pages_of_other_hosts_do_not_wait_for_each_other(
    feed_server: FeedServer, clock: FixedClock
) -> None:
    feed_server.add("/story", PAGE, headers=HTML)
    start = clock.now()
    hosts = ["a.example", "b.example", "c.example", "a.example"]

    async def go(fetcher: Fetcher) -> None:
        for host in hosts:  # one after another: only the second a.example waits
            await fetcher.fetch_page("wire", f"http://{host}:{feed_server.port}/story")
            clock.advance(seconds=0.25)

    with_fetcher(clock, go)
    # a at 0; b, c at 0.25, 0.5; a again due at 1.0, asked at 0.75: waits 0.25 s
    assert clock.now() - start == timedelta(seconds=1.25)
    assert len(feed_server.requests_for("/story")) == 4


def test_an_interval_of_zero_never_waits(feed_server: FeedServer, clock: FixedClock) -> None:
    feed_server.add("/story", PAGE, headers=HTML)
    start = clock.now()

    async def go(fetcher: Fetcher) -> None:
        for _ in range(3):
            await fetcher.fetch_page("wire", feed_server.url("/story"))

    with_fetcher(clock, go, interval=0.0)
    assert clock.now() == start


@pytest.mark.parametrize(
    ("status", "retry_after", "backoff"),
    [
        (429, "120", 120.0),
        (503, "300", 300.0),
        (429, None, PAGE_BACKOFF),
        (429, "Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date already past: no wait
        (503, "in an hour", 3600.0),  # the HTTP-date form, an hour from now
        (503, None, 0.0),  # 503 without Retry-After: a failure, not a request to wait
    ],
)
def test_a_hosts_429_or_503_retry_after_stops_its_page_requests_until_then(
    feed_server: FeedServer,
    clock: FixedClock,
    status: int,
    retry_after: str | None,
    backoff: float,
) -> None:
    if retry_after == "in an hour":  # Retry-After dates are read against the real time
        retry_after = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    feed_server.add_status("/busy", status, headers=headers)
    feed_server.add("/story", PAGE, headers=HTML)
    busy = f"http://news.example:{feed_server.port}/busy"
    story = f"http://news.example:{feed_server.port}/story"
    other = f"http://other.example:{feed_server.port}/story"

    async def go(fetcher: Fetcher) -> list[str]:
        seen: list[str] = []
        with pytest.raises(FetchError) as failed:
            await fetcher.fetch_page("wire", busy)
        assert failed.value.status == status and not isinstance(failed.value, PageDeferred)
        clock.advance(seconds=5)  # past the page interval
        for url in (story, other):
            try:
                await fetcher.fetch_page("wire", url)
                seen.append("fetched")
            except PageDeferred as deferred:
                assert deferred.feed == "wire" and deferred.url == url
                assert f"answered HTTP {status}" in deferred.reason
                seen.append("deferred")
        clock.advance(seconds=backoff)  # 5 s past the wait the host asked for
        await fetcher.fetch_page("wire", story)
        return seen

    seen = with_fetcher(clock, go)
    assert seen == (["deferred", "fetched"] if backoff > 5 else ["fetched", "fetched"])
    story_requests = [
        r for r in feed_server.requests_for("/story") if "news.example" in r.headers["host"]
    ]
    assert len(story_requests) == (1 if backoff > 5 else 2)


def test_an_absurd_retry_after_is_cut_to_an_hour(
    feed_server: FeedServer, clock: FixedClock
) -> None:
    ten_years = str(10 * 365 * 86400)
    feed_server.add_status("/busy", 429, headers={"Retry-After": ten_years})
    feed_server.add("/story", PAGE, headers=HTML)

    async def go(fetcher: Fetcher) -> None:
        with pytest.raises(FetchError):
            await fetcher.fetch_page("wire", feed_server.url("/busy"))
        clock.advance(minutes=59)
        with pytest.raises(PageDeferred):
            await fetcher.fetch_page("wire", feed_server.url("/story"))
        clock.advance(minutes=2)
        await fetcher.fetch_page("wire", feed_server.url("/story"))

    with_fetcher(clock, go)
    assert len(feed_server.requests_for("/story")) == 1


# Through the whole bot: the cap and a host's 429, counted in the feed's health or not.


def teasers(clock: FixedClock, server: FeedServer, numbers: range, prefix: str = "t") -> list[Item]:
    """Teaser items, the lowest number newest, each linking its own page on the server."""
    return [
        Item(
            f"{prefix}-{n}",
            f"Allies hold talks, part {n}",
            TEASER,
            clock.now() - timedelta(minutes=5 + n),
            link=server.url(f"/{prefix}/{n}"),
        )
        for n in numbers
    ]


TOPICS = ("harbor dredging", "rice harvest", "museum opening", "subway fares", "bridge repairs")


def distinct_page(n: int) -> str:
    """A page whose text shares nothing with the others but the key sentence (no story)."""
    topic = TOPICS[n]
    lines = [
        f"Officials in district {n} said on Monday that the {topic} plan went ahead on schedule.",
        f"Residents asked how long the {topic} work would take and who would pay for it.",
        f"A council hearing on the {topic} budget is set for the first week of next month.",
    ]
    return article_page(f"Part {n}", *lines, f"{KEY_SENTENCE} ({topic})", filler=False)


def config_for(tmp_path: Path, server: FeedServer, *lines: str) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    write(folder, "rule.yaml", RULE)
    config = write_config(
        tmp_path,
        {"wire": server.url("/wire.xml")},
        rules=folder,
        feed_lines=("full_text: true", *lines),
    )
    with config.open("a", encoding="utf-8") as f:
        f.write("stories:\n  enabled: false\n")  # each article its own message
    return config


def poll(config: Path, slack: SlackDouble, clock: FixedClock) -> None:
    async def go() -> None:
        app = make_app(config, slack, clock)
        try:
            await app.run_once()
            await app.drain()
        finally:
            await app.close()

    asyncio.run(go())
    clock.advance(minutes=2)


def page_counts(tmp_path: Path) -> tuple[int, int, str | None]:
    store = Store.open(tmp_path / "state.db")
    try:
        counts = store.page_counts().get("wire")
    finally:
        store.close()
    return (counts.fetched, counts.failed, counts.last_error) if counts else (0, 0, None)


def test_a_poll_fetches_at_most_full_text_max_pages_the_newest_and_the_rest_are_no_failures(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    items = teasers(clock, feed_server, range(5))
    for n in range(5):
        feed_server.add(f"/t/{n}", distinct_page(n), headers=HTML)
    feed_server.add("/wire.xml", rss(list(reversed(items))))  # oldest first in the feed
    config = config_for(tmp_path, feed_server, "full_text_max: 2")
    poll(config, slack_double, clock)
    fetched = [n for n in range(5) if feed_server.requests_for(f"/t/{n}")]
    assert fetched == [0, 1]  # the two newest
    assert page_counts(tmp_path) == (2, 0, None)
    texts = [message_text(m) for m in slack_double.messages("#korea-security")]
    assert len(texts) == 5  # every article alerts, the others on the feed's own text
    assert sum("brigade stationed at" in t for t in texts) == 2
    feed_server.add("/wire.xml", rss(items), etag='"again"')
    poll(config, slack_double, clock)
    assert [n for n in range(5) if feed_server.requests_for(f"/t/{n}")] == [0, 1]  # seen: no retry
    assert len(slack_double.messages("#korea-security")) == 5


def test_a_page_hosts_429_is_one_failure_and_its_later_pages_wait_without_failing(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    first = teasers(clock, feed_server, range(1), prefix="a")
    feed_server.add_status("/a/0", 429, headers={"Retry-After": "3600"})
    feed_server.add("/wire.xml", rss(first))
    config = config_for(tmp_path, feed_server)

    async def two_polls() -> None:  # one bot, so the fetcher remembers the host's request
        app = make_app(config, slack_double, clock)
        try:
            await app.run_once()
            await app.drain()
            clock.advance(minutes=2)
            later = teasers(clock, feed_server, range(2), prefix="b")
            for n in range(2):
                feed_server.add(f"/b/{n}", article_page(f"B {n}", KEY_SENTENCE), headers=HTML)
            feed_server.add("/wire.xml", rss(later + first), etag='"later"')
            await app.run_once()
            await app.drain()
        finally:
            await app.close()

    asyncio.run(two_polls())
    assert len(feed_server.requests_for("/a/0")) == 1
    assert feed_server.requests_for("/b/0") == [] and feed_server.requests_for("/b/1") == []
    assert page_counts(tmp_path) == (1, 1, "HTTP 429")
    texts = [message_text(m) for m in slack_double.messages("#korea-security")]
    assert len(texts) == 3 and not any("brigade stationed at" in t for t in texts)
