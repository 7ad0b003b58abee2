"""Fetching against a real HTTP server on loopback: validators, redirects, SSRF, limits, files."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
import tracemalloc
import zlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from bot.errors import FetchError
from bot.fetch import (
    MAX_REDIRECTS,
    USER_AGENT,
    Fetcher,
    FetchPolicy,
    IPAddress,
    address_allowed,
    fetch,
    make_client,
    parse_retry_after,
)
from bot.models import FetchResult
from tests.feedserver import LAST_MODIFIED, FeedServer, gzip_bomb

LOOPBACK = (ip_network("127.0.0.0/8"),)
POLICY = FetchPolicy(deadline=2.0, allow_private=LOOPBACK)
STRICT = FetchPolicy(deadline=2.0)  # redirects may lead to public addresses only
FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'


def get(
    url: str,
    policy: FetchPolicy = POLICY,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FetchResult:
    async def go() -> FetchResult:
        async with make_client(policy) as client:
            return await fetch(
                client, "test-feed", url, etag=etag, last_modified=last_modified, policy=policy
            )

    return asyncio.run(go())


def refused(url: str, policy: FetchPolicy = POLICY) -> FetchError:
    with pytest.raises(FetchError) as caught:
        get(url, policy)
    assert caught.value.feed == "test-feed"
    assert caught.value.url == url
    return caught.value


# --- plain GET and conditional GET -------------------------------------------------------------


def test_fetch_returns_body_lowercased_headers_and_validators(feed_server: FeedServer) -> None:
    feed_server.add("/feed", FEED, headers={"X-Custom": "yes"}, etag='"v1"')
    result = get(feed_server.url("/feed"))
    assert (result.status, result.body, result.not_modified) == (200, FEED, False)
    assert result.url == feed_server.url("/feed")
    assert result.headers["x-custom"] == "yes"
    assert all(name == name.lower() for name in result.headers)
    assert (result.etag, result.last_modified) == ('"v1"', LAST_MODIFIED)


def test_requests_carry_our_user_agent_and_only_encodings_we_decode(
    feed_server: FeedServer,
) -> None:
    feed_server.add("/feed", FEED)
    get(feed_server.url("/feed"))
    (request,) = feed_server.requests_for("/feed")
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["accept-encoding"] == "gzip, deflate"


def test_second_poll_sends_stored_validators_byte_identical_and_304_means_not_modified(
    feed_server: FeedServer,
) -> None:
    feed_server.add("/feed", FEED, etag='W/"abc-123"')
    first = get(feed_server.url("/feed"))
    second = get(feed_server.url("/feed"), etag=first.etag, last_modified=first.last_modified)
    sent = feed_server.requests_for("/feed")[1].headers
    assert sent["if-none-match"] == 'W/"abc-123"'
    assert sent["if-modified-since"] == LAST_MODIFIED
    assert (second.status, second.not_modified, second.body) == (304, True, b"")
    assert (second.etag, second.last_modified) == ('W/"abc-123"', LAST_MODIFIED)


def test_first_poll_sends_no_validators(feed_server: FeedServer) -> None:
    feed_server.add("/feed", FEED)
    get(feed_server.url("/feed"))
    headers = feed_server.requests_for("/feed")[0].headers
    assert "if-none-match" not in headers and "if-modified-since" not in headers


def test_changed_etag_returns_the_full_body(feed_server: FeedServer) -> None:
    feed_server.add("/feed", FEED, etag='"new"')
    result = get(feed_server.url("/feed"), etag='"old"', last_modified=LAST_MODIFIED)
    assert (result.status, result.body, result.etag) == (200, FEED, '"new"')


def test_fetcher_wrapper_fetches_with_its_policy(feed_server: FeedServer) -> None:
    feed_server.add("/feed", FEED)

    async def go() -> FetchResult:
        fetcher = Fetcher(POLICY)
        try:
            return await fetcher.fetch("f", feed_server.url("/feed"), etag=None, last_modified=None)
        finally:
            await fetcher.aclose()

    assert asyncio.run(go()).body == FEED


# --- HTTP errors and Retry-After ---------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410, 500, 502])
def test_error_status_raises_fetch_error_with_the_status(
    feed_server: FeedServer, status: int
) -> None:
    feed_server.add_status("/feed", status, body=b"<html>oops</html>")
    error = refused(feed_server.url("/feed"))
    assert error.status == status
    assert f"HTTP {status}" in error.reason
    assert error.retry_after is None


def test_429_reports_retry_after_in_seconds(feed_server: FeedServer) -> None:
    feed_server.add_status("/feed", 429, headers={"Retry-After": "3600"})
    error = refused(feed_server.url("/feed"))
    assert (error.status, error.retry_after) == (429, 3600.0)


def test_503_reports_retry_after_given_as_an_http_date(feed_server: FeedServer) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    feed_server.add_status("/feed", 503, headers={"Retry-After": format_datetime(when, True)})
    error = refused(feed_server.url("/feed"))
    assert error.status == 503
    assert error.retry_after is not None and 3590 <= error.retry_after <= 3600


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("  7 ", 7.0),
        ("Thu, 31 Jul 2025 07:00:00 GMT", 3600.0),
        ("Thu, 31 Jul 2025 05:00:00 GMT", 0.0),  # in the past: retry now
        ("315360000", 315360000.0),  # ten years: reported as said; the scheduler caps it
        ("abc", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
        (None, None),
        ("9" * 40, None),
    ],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    now = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)
    assert parse_retry_after(value, now) == expected


# --- redirects ---------------------------------------------------------------------------------


def test_redirect_chain_is_followed_and_the_final_url_reported(feed_server: FeedServer) -> None:
    feed_server.add_redirect("/a", feed_server.url("/b"), 301)
    feed_server.add_redirect("/b", "/c", 307)  # relative Location
    feed_server.add_redirect("/c", feed_server.url("/feed"), 308)
    feed_server.add("/feed", FEED)
    result = get(feed_server.url("/a"))
    assert (result.status, result.body, result.url) == (200, FEED, feed_server.url("/feed"))


def test_conditional_headers_follow_the_redirect(feed_server: FeedServer) -> None:
    feed_server.add_redirect("/old", "/feed", 301)
    feed_server.add("/feed", FEED, etag='"v1"')
    result = get(feed_server.url("/old"), etag='"v1"')
    assert result.not_modified
    assert feed_server.requests_for("/feed")[0].headers["if-none-match"] == '"v1"'


def test_exactly_max_redirects_hops_are_allowed(feed_server: FeedServer) -> None:
    for hop in range(MAX_REDIRECTS):
        feed_server.add_redirect(f"/hop{hop}", f"/hop{hop + 1}")
    feed_server.add(f"/hop{MAX_REDIRECTS}", FEED)
    assert get(feed_server.url("/hop0")).body == FEED


def test_one_redirect_more_than_the_limit_is_an_error(feed_server: FeedServer) -> None:
    for hop in range(MAX_REDIRECTS + 1):
        feed_server.add_redirect(f"/hop{hop}", f"/hop{hop + 1}")
    feed_server.add(f"/hop{MAX_REDIRECTS + 1}", FEED)
    error = refused(feed_server.url("/hop0"))
    assert "more than 5 redirects" in error.reason
    assert not feed_server.requests_for(f"/hop{MAX_REDIRECTS + 1}")


def test_redirect_loop_is_an_error(feed_server: FeedServer) -> None:
    feed_server.add_redirect("/a", "/b")
    feed_server.add_redirect("/b", "/a")
    assert "loop" in refused(feed_server.url("/a")).reason
    assert len(feed_server.requests_for("/a")) == 1


def test_redirect_without_location_is_an_error(feed_server: FeedServer) -> None:
    feed_server.add_status("/feed", 302)
    error = refused(feed_server.url("/feed"))
    assert "Location" in error.reason and error.status == 302


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "ftp://example.com/feed", "gopher://example.com/", "data:,x"]
)
def test_redirect_to_a_non_http_scheme_is_refused(feed_server: FeedServer, target: str) -> None:
    feed_server.add_redirect("/feed", target)
    reason = refused(feed_server.url("/feed")).reason
    assert reason.startswith("redirect to") and "refused" in reason


# --- SSRF --------------------------------------------------------------------------------------


def test_configured_loopback_url_is_fetched_but_a_redirect_to_loopback_is_refused(
    feed_server: FeedServer,
) -> None:
    feed_server.add("/direct", FEED)
    feed_server.add_redirect("/jump", feed_server.url("/direct"))
    assert get(feed_server.url("/direct"), STRICT).body == FEED  # the operator's URL, as written
    error = refused(feed_server.url("/jump"), STRICT)
    assert "127.0.0.1 is not a public address" in error.reason
    assert len(feed_server.requests_for("/direct")) == 1  # no connection for the redirect


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:7f00:1::]",
        "[fe80::1]",
        "[fc00::1]",
        "224.0.0.1",
    ],
)
def test_redirect_to_a_private_address_is_refused_before_connecting(
    feed_server: FeedServer, host: str
) -> None:
    feed_server.add_redirect("/feed", f"http://{host}:{feed_server.port}/x")
    assert "is not a public address" in refused(feed_server.url("/feed"), STRICT).reason
    assert [r.path for r in feed_server.requests] == ["/feed"]


def test_redirect_to_a_name_with_any_private_address_is_refused(feed_server: FeedServer) -> None:
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [ip_address("93.184.216.34"), ip_address("10.0.0.1")]

    feed_server.add_redirect("/feed", "http://mixed.example/feed")
    error = refused(feed_server.url("/feed"), FetchPolicy(deadline=2.0, resolver=resolver))
    assert "resolves to 10.0.0.1" in error.reason and asked == ["mixed.example"]


def test_redirect_connects_to_the_address_that_was_checked(feed_server: FeedServer) -> None:
    """DNS rebinding: a second lookup would say 10.0.0.1, but only the checked answer is used."""
    answers = iter([[ip_address("127.0.0.1")]])

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        return next(answers, [ip_address("10.0.0.1")])

    feed_server.add_redirect("/feed", f"http://rebind.example:{feed_server.port}/target")
    feed_server.add("/target", FEED)
    result = get(feed_server.url("/feed"), FetchPolicy(allow_private=LOOPBACK, resolver=rebinding))
    assert result.body == FEED
    assert result.url == f"http://rebind.example:{feed_server.port}/target"
    target = feed_server.requests_for("/target")[0]
    assert target.headers["host"] == f"rebind.example:{feed_server.port}"


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("64:ff9b::5db8:d822", True),  # NAT64 of a public address
        ("2002:5db8:d822::", True),  # 6to4 of a public address
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("239.1.1.1", False),
        ("::", False),
        ("::1", False),
        ("::127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("2002:7f00:1::", False),
        ("fd00::1", False),
        ("fe80::1", False),
    ],
)
def test_only_global_unicast_addresses_are_allowed(address: str, allowed: bool) -> None:
    assert address_allowed(ip_address(address)) is allowed


def test_allow_private_admits_its_networks_in_every_form() -> None:
    allow = (ip_network("10.0.0.0/8"),)
    assert address_allowed(ip_address("10.1.2.3"), allow)
    assert address_allowed(ip_address("::ffff:10.1.2.3"), allow)
    assert not address_allowed(ip_address("192.168.0.1"), allow)


def test_environment_proxies_are_ignored(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    feed_server.add("/feed", FEED)
    assert get(feed_server.url("/feed")).body == FEED


# --- time and size limits ----------------------------------------------------------------------


def test_a_trickling_server_is_cut_off_at_the_total_deadline(feed_server: FeedServer) -> None:
    feed_server.add_trickle("/feed", FEED, interval=0.5)  # each byte well inside a read timeout
    started = time.monotonic()
    error = refused(feed_server.url("/feed"), FetchPolicy(deadline=1.0))
    assert "deadline" in error.reason
    assert time.monotonic() - started < 1.8


def test_a_server_that_never_answers_is_cut_off_at_the_deadline(feed_server: FeedServer) -> None:
    feed_server.add_hang("/feed")
    started = time.monotonic()
    assert "deadline" in refused(feed_server.url("/feed"), FetchPolicy(deadline=0.5)).reason
    assert time.monotonic() - started < 1.5


def test_an_endless_chunked_body_is_cut_at_the_size_cap(feed_server: FeedServer) -> None:
    feed_server.add_endless("/feed")
    error = refused(feed_server.url("/feed"), FetchPolicy(deadline=5.0, max_bytes=256 * 1024))
    assert "cap" in error.reason


def test_a_huge_content_length_is_refused_before_reading(feed_server: FeedServer) -> None:
    feed_server.add_huge_length("/feed", 10 * 1024**3)
    started = time.monotonic()
    error = refused(feed_server.url("/feed"))
    assert "Content-Length 10737418240 exceeds" in error.reason
    assert time.monotonic() - started < 1.0


def test_a_body_at_the_cap_is_accepted_and_one_byte_more_refused(feed_server: FeedServer) -> None:
    feed_server.add("/exact", b"x" * 1000)
    feed_server.add("/over", b"x" * 1001)
    policy = FetchPolicy(deadline=2.0, max_bytes=1000)
    assert len(get(feed_server.url("/exact"), policy).body) == 1000
    assert "cap" in refused(feed_server.url("/over"), policy).reason


def test_a_gzip_bomb_is_refused_without_inflating_it(feed_server: FeedServer) -> None:
    bomb = gzip_bomb(64 * 1024 * 1024)
    assert len(bomb) < 200 * 1024
    feed_server.add("/feed", bomb, headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        error = refused(feed_server.url("/feed"), FetchPolicy(deadline=5.0, max_bytes=1024**2))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "decoded body exceeds" in error.reason
    assert peak < 8 * 1024**2


@pytest.mark.parametrize(
    ("encoding", "packed"),
    [
        ("gzip", gzip.compress(FEED)),
        ("gzip", gzip.compress(FEED[:40]) + gzip.compress(FEED[40:])),  # two gzip members
        ("deflate", zlib.compress(FEED)),
        ("deflate", zlib.compress(FEED)[2:-4]),  # raw deflate, as some servers send it
        ("identity", FEED),
    ],
)
def test_compressed_bodies_are_decoded(
    feed_server: FeedServer, encoding: str, packed: bytes
) -> None:
    feed_server.add("/feed", packed, headers={"Content-Encoding": encoding})
    assert get(feed_server.url("/feed")).body == FEED


def test_corrupt_or_unknown_encodings_are_errors(feed_server: FeedServer) -> None:
    feed_server.add("/corrupt", b"\x1f\x8b\x08\x00garbage", headers={"Content-Encoding": "gzip"})
    feed_server.add("/unknown", FEED, headers={"Content-Encoding": "compress"})
    feed_server.add("/truncated", gzip.compress(FEED)[:-12], headers={"Content-Encoding": "gzip"})
    assert "corrupt gzip" in refused(feed_server.url("/corrupt")).reason
    assert "truncated" in refused(feed_server.url("/truncated")).reason
    assert "unsupported Content-Encoding" in refused(feed_server.url("/unknown")).reason


# --- network failures and odd URLs -------------------------------------------------------------


def test_connection_refused_is_a_fetch_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = refused(f"http://127.0.0.1:{port}/feed")
    assert "ConnectError" in error.reason and error.status is None


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/feed", "gopher://example.com/", "feeds/x.xml", ""],
)
def test_urls_that_are_neither_http_nor_absolute_paths_are_refused(url: str) -> None:
    assert refused(url).reason


# --- local files -------------------------------------------------------------------------------


def test_an_absolute_path_is_read_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED)
    result = get(str(path), etag='"ignored"')
    assert (result.status, result.body, result.url, result.etag) == (200, FEED, str(path), None)


def test_a_local_file_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b"x" * 2000)
    assert "cap" in refused(str(path), FetchPolicy(max_bytes=1000)).reason


def test_a_missing_or_special_local_file_is_a_fetch_error(tmp_path: Path) -> None:
    assert "FileNotFoundError" in refused(str(tmp_path / "missing.xml")).reason
    assert "not a regular file" in refused(str(tmp_path)).reason
