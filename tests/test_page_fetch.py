"""Fetching article pages, whose links come from feed content: every address is checked,
the first one too, within the page deadline, size cap and per-host limit."""

from __future__ import annotations

import asyncio
import time
from ipaddress import ip_address, ip_network

import pytest

from bot.errors import FetchError
from bot.fetch import ACCEPT_PAGE, PAGE_MAX_BYTES, Fetcher, FetchPolicy, IPAddress
from bot.models import FetchResult
from tests.feedserver import FeedServer

LOOPBACK = (ip_network("127.0.0.0/8"),)
HTML = {"Content-Type": "text/html; charset=utf-8"}
PAGE = b"<html><body><article><p>The page.</p></article></body></html>"


def page(url: str, policy: FetchPolicy) -> FetchResult:
    async def go() -> FetchResult:
        fetcher = Fetcher(policy)
        try:
            return await fetcher.fetch_page("wire", url)
        finally:
            await fetcher.aclose()

    return asyncio.run(go())


def page_refused(url: str, policy: FetchPolicy) -> FetchError:
    with pytest.raises(FetchError) as caught:
        page(url, policy)
    assert caught.value.feed == "wire" and caught.value.url == url
    return caught.value


def resolving_to(address: str, asked: list[str] | None = None) -> FetchPolicy:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        if asked is not None:
            asked.append(host)
        return [ip_address(address)]

    return FetchPolicy(deadline=2.0, resolver=resolver)


def test_a_link_to_loopback_is_fetched_only_when_allow_private_admits_it(
    feed_server: FeedServer,
) -> None:
    feed_server.add("/story", PAGE, headers=HTML)
    error = page_refused(feed_server.url("/story"), FetchPolicy(deadline=2.0))
    assert "link to" in error.reason and "127.0.0.1 is not a public address" in error.reason
    assert feed_server.requests == []  # refused before connecting
    allowed = page(feed_server.url("/story"), FetchPolicy(deadline=2.0, allow_private=LOOPBACK))
    assert allowed.body == PAGE
    assert feed_server.requests_for("/story")[0].headers["accept"] == ACCEPT_PAGE


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:7f00:1::]",
        "[fd00::1]",
    ],
)
def test_a_link_to_a_private_address_is_refused_before_connecting(host: str) -> None:
    error = page_refused(f"http://{host}/latest/meta-data/", FetchPolicy(deadline=2.0))
    assert "is not a public address" in error.reason


@pytest.mark.parametrize("address", ["10.1.2.3", "127.0.0.1", "100.100.1.1", "169.254.169.254"])
def test_a_link_whose_name_resolves_to_a_private_address_is_refused(address: str) -> None:
    asked: list[str] = []
    error = page_refused("http://news.example/story", resolving_to(address, asked))
    assert f"news.example resolves to {address}" in error.reason
    assert asked == ["news.example"]


def test_a_link_by_name_connects_to_the_checked_address(feed_server: FeedServer) -> None:
    """The name is resolved once and the checked address is the one connected to (no second
    lookup that DNS rebinding could answer differently); the Host header keeps the name."""
    feed_server.add("/story", PAGE, headers=HTML)
    answers = iter([[ip_address("127.0.0.1")]])

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        return next(answers, [ip_address("10.0.0.1")])

    policy = FetchPolicy(deadline=2.0, allow_private=LOOPBACK, resolver=rebinding)
    result = page(f"http://news.example:{feed_server.port}/story", policy)
    assert result.body == PAGE
    assert feed_server.requests_for("/story")[0].headers["host"] == (
        f"news.example:{feed_server.port}"
    )


def test_a_page_redirecting_to_a_private_address_is_refused(feed_server: FeedServer) -> None:
    """allow_private admits loopback only; the hop to the cloud metadata address is refused."""
    feed_server.add_redirect("/story", "http://169.254.169.254/latest/meta-data/")
    policy = FetchPolicy(deadline=2.0, allow_private=LOOPBACK)
    error = page_refused(feed_server.url("/story"), policy)
    assert "redirect to" in error.reason and "169.254.169.254 is not a public address" in (
        error.reason
    )


def test_a_redirect_to_a_name_resolving_privately_is_refused_on_that_hop(
    feed_server: FeedServer,
) -> None:
    feed_server.add_redirect("/story", f"http://intranet.example:{feed_server.port}/admin")
    feed_server.add("/admin", PAGE, headers=HTML)

    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ip_address("127.0.0.1")] if host == "127.0.0.1" else [ip_address("10.0.0.7")]

    policy = FetchPolicy(deadline=2.0, allow_private=LOOPBACK, resolver=resolver)
    error = page_refused(feed_server.url("/story"), policy)
    assert "intranet.example resolves to 10.0.0.7" in error.reason
    assert feed_server.requests_for("/admin") == []


@pytest.mark.parametrize(
    "url", ["/etc/passwd", "file:///etc/passwd", "ftp://news.example/a", "gopher://news.example/"]
)
def test_a_link_that_is_not_http_is_refused(url: str) -> None:
    assert "not an http(s) URL" in page_refused(url, FetchPolicy(deadline=2.0)).reason


def test_a_page_over_the_size_cap_is_refused(feed_server: FeedServer) -> None:
    feed_server.add("/big", b"x" * (PAGE_MAX_BYTES + 1), headers=HTML)
    feed_server.add("/small", b"x" * 5000, headers=HTML)
    policy = FetchPolicy(deadline=5.0, allow_private=LOOPBACK)  # feeds may be 10 MiB
    assert "cap" in page_refused(feed_server.url("/big"), policy).reason
    tight = FetchPolicy(deadline=2.0, max_bytes=4096, allow_private=LOOPBACK)
    assert "cap" in page_refused(feed_server.url("/small"), tight).reason  # the lower cap wins


def test_a_page_that_never_answers_is_cut_off_at_the_deadline(feed_server: FeedServer) -> None:
    feed_server.add_hang("/story")
    started = time.monotonic()
    error = page_refused(feed_server.url("/story"), FetchPolicy(0.5, allow_private=LOOPBACK))
    assert "deadline" in error.reason
    assert time.monotonic() - started < 1.5


def test_pages_of_one_host_are_fetched_within_the_per_host_limit(feed_server: FeedServer) -> None:
    for n in range(6):
        feed_server.add_slow(f"/story/{n}", PAGE, 0.1)
    policy = FetchPolicy(deadline=5.0, allow_private=LOOPBACK, max_per_host=2, page_interval=0)

    async def go() -> list[FetchResult]:
        fetcher = Fetcher(policy)
        try:
            urls = [feed_server.url(f"/story/{n}") for n in range(6)]
            return await asyncio.gather(*(fetcher.fetch_page("wire", u) for u in urls))
        finally:
            await fetcher.aclose()

    assert [r.body for r in asyncio.run(go())] == [PAGE] * 6
    assert feed_server.most_in_flight == 2
