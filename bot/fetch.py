"""Fetch one feed (HTTP(S) or a local file) within a total deadline, a size cap and SSRF rules."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import stat
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.clock import Clock, SystemClock
from bot.errors import FetchError, PageDeferred
from bot.models import FetchResult

USER_AGENT = "Newswatch/0.1 (+https://github.com/newswatch)"
DEFAULT_DEADLINE = 30.0  # seconds for a whole fetch: connect, every redirect and the whole body
CONNECT_TIMEOUT = 10.0
MAX_BODY_BYTES = 10 * 1024 * 1024  # decoded size; the bytes on the wire are capped the same
MAX_REDIRECTS = 5
MAX_CONCURRENT_FETCHES = 64  # fetches in flight at once, all feeds together
MAX_FETCHES_PER_HOST = 4  # fetches in flight at once to one host and port
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
ACCEPT_PAGE = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"  # an article's web page
PAGE_DEADLINE = 15.0  # seconds for one article page, whatever the feeds' deadline
PAGE_MAX_BYTES = 2 * 1024 * 1024  # an article page larger than this is not read
PAGE_INTERVAL = 1.0  # seconds between the starts of two page requests to one host
PAGE_BACKOFF = 60.0  # seconds a host answering 429 without Retry-After gets no page request
PAGE_BACKOFF_CAP = 3600.0  # the longest a page host's Retry-After is honoured
ACCEPT_ENCODING = "gzip, deflate"  # the two we decode ourselves, with a size cap
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
RETRY_AFTER_STATUSES = frozenset({429, 503})
READ_CHUNK = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_DELTA_SECONDS = re.compile(r"[0-9]{1,10}")


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for `host`."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0])) for info in infos]


@dataclass(frozen=True)
class FetchPolicy:
    """Limits for one fetch; `allow_private` lists networks redirects may lead into."""

    deadline: float = DEFAULT_DEADLINE
    max_bytes: int = MAX_BODY_BYTES
    max_redirects: int = MAX_REDIRECTS
    allow_private: tuple[IPNetwork, ...] = ()
    user_agent: str = USER_AGENT
    resolver: Resolver = field(default=system_resolver, compare=False, repr=False)
    max_concurrent: int = MAX_CONCURRENT_FETCHES
    max_per_host: int = MAX_FETCHES_PER_HOST
    page_interval: float = PAGE_INTERVAL  # seconds between page requests to one host


class _Refused(Exception):
    """A limit or policy stopped the fetch; becomes a FetchError with the feed attached."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def make_client(policy: FetchPolicy) -> httpx.AsyncClient:
    """An httpx client for `fetch`: no env proxies, no automatic redirects, our headers."""
    return httpx.AsyncClient(
        headers={"User-Agent": policy.user_agent, "Accept": ACCEPT},
        timeout=httpx.Timeout(policy.deadline, connect=min(CONNECT_TIMEOUT, policy.deadline)),
        limits=httpx.Limits(
            max_connections=policy.max_concurrent, max_keepalive_connections=policy.max_concurrent
        ),
        follow_redirects=False,
        trust_env=False,
    )


class Fetcher:
    """One pooled client for every feed, fetching under the policy it was made with.

    At most `policy.max_concurrent` fetches run at once, and at most `policy.max_per_host` to
    one host (and port); the others wait their turn, and the deadline starts once one runs.
    Article pages are fetched politely: their requests to one host start at least
    `policy.page_interval` apart (waited on `clock`), and a host that answers a page with 429
    or 503 and Retry-After gets no page request until then.
    """

    def __init__(
        self,
        policy: FetchPolicy,
        client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.policy = policy
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._client = client if client is not None else make_client(policy)
        self._pages = PageHosts()
        self._all = asyncio.Semaphore(policy.max_concurrent)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._waiting: dict[str, int] = {}
        self.most_in_flight = 0  # the highest number of fetches seen running at once
        self._in_flight = 0

    async def fetch(
        self,
        feed_name: str,
        url: str,
        *,
        etag: str | None,
        last_modified: str | None,
        untrusted: bool = False,
    ) -> FetchResult:
        """A feed; `untrusted` for a URL that came from content (a page's feed link)."""
        return await self._limited(
            url,
            fetch(
                self._client,
                feed_name,
                url,
                etag=etag,
                last_modified=last_modified,
                policy=self.policy,
                untrusted=untrusted,
            ),
        )

    async def fetch_page(self, feed_name: str, url: str) -> FetchResult:
        """An article's web page: its link is untrusted, so every hop's address is checked
        (the first one too), under the page deadline and size cap, the per-host limit and the
        page politeness (PageDeferred while its host asked us to wait)."""
        policy = replace(
            self.policy,
            deadline=min(self.policy.deadline, PAGE_DEADLINE),
            max_bytes=min(self.policy.max_bytes, PAGE_MAX_BYTES),
        )
        name = page_host(url)

        async def turn() -> None:
            await self._pages.turn(name, self.policy.page_interval, self.clock, feed_name, url)

        try:
            return await self._limited(
                url,
                fetch(
                    self._client,
                    feed_name,
                    url,
                    etag=None,
                    last_modified=None,
                    policy=policy,
                    untrusted=True,
                    accept=ACCEPT_PAGE,
                ),
                turn,
            )
        except PageDeferred:
            raise
        except FetchError as exc:
            if exc.status in RETRY_AFTER_STATUSES:
                self._pages.back_off(name, exc.status, exc.retry_after, self.clock.now())
            raise

    async def _limited(
        self,
        url: str,
        work: Coroutine[Any, Any, FetchResult],
        turn: Callable[[], Awaitable[None]] | None = None,
    ) -> FetchResult:
        key = host_key(url)
        host = self._hosts.setdefault(key, asyncio.Semaphore(self.policy.max_per_host))
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with host:
                if turn is not None:  # a page's politeness wait, holding a per-host slot
                    await turn()
                async with self._all:
                    return await self._running(work)
        finally:
            work.close()  # never awaited if cancelled or deferred while waiting its turn
            self._waiting[key] -= 1
            if not self._waiting[key]:  # forget idle hosts: the table stays as small as the work
                del self._waiting[key]
                del self._hosts[key]

    async def _running(self, work: Coroutine[Any, Any, FetchResult]) -> FetchResult:
        self._in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self._in_flight)
        try:
            return await work
        finally:
            self._in_flight -= 1

    async def aclose(self) -> None:
        await self._client.aclose()


async def fetch(
    client: httpx.AsyncClient,
    feed_name: str,
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    policy: FetchPolicy,
    untrusted: bool = False,
    accept: str | None = None,
) -> FetchResult:
    """Fetch `url` (http(s) or an absolute local path); every failure is a FetchError.

    `untrusted`: the URL came from feed content (an article link): only http(s), and its own
    address is checked like every redirect's, not only the addresses it redirects to.
    """
    try:
        async with asyncio.timeout(policy.deadline):
            if url.startswith("/") and not url.startswith("//") and not untrusted:
                return await asyncio.to_thread(_read_file, url, policy.max_bytes)
            return await _fetch_http(client, url, etag, last_modified, policy, untrusted, accept)
    except TimeoutError:
        reason = f"no complete response within the {policy.deadline:g} s deadline"
        raise FetchError(feed_name, url, reason) from None
    except _Refused as e:
        raise FetchError(feed_name, url, e.reason, e.status, e.retry_after) from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError) as e:
        raise FetchError(feed_name, url, f"{type(e).__name__}: {e}") from e


def host_key(url: str) -> str:
    """What the per-host limit counts by: scheme, host and port (local files share one key)."""
    parts = urlsplit(url)
    if not parts.netloc:
        return "file"
    return f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2].lower()}"


def page_host(url: str) -> str:
    """What page politeness counts by: the host name alone (any scheme or port)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


class PageHosts:
    """Page politeness per host: when its next page request may start, and how long it asked
    us to wait (Retry-After). Entries in the past are dropped once there are many."""

    FORGET_ABOVE = 256  # hosts remembered before those in the past are dropped

    def __init__(self) -> None:
        self._next: dict[str, datetime] = {}  # the earliest start of the next page request
        self._until: dict[str, tuple[datetime, str]] = {}  # backing off: until when, why

    async def turn(
        self, host: str, interval: float, clock: Clock, feed_name: str, url: str
    ) -> None:
        """Take the next start for a page request to `host` and wait for it; raise
        PageDeferred while the host asked us to wait. Starts are handed out in order, each
        `interval` after the one before (taking one does not await, so none is given twice)."""
        now = clock.now()
        self._deferred(host, now, feed_name, url)
        start = max(now, self._next.get(host, now))
        self._next[host] = start + timedelta(seconds=interval)
        self._forget(now)
        wait = (start - now).total_seconds()
        if wait > 0:
            await clock.sleep(wait)
            self._deferred(host, clock.now(), feed_name, url)  # a 429 came while we waited

    def back_off(
        self, host: str, status: int | None, retry_after: float | None, now: datetime
    ) -> None:
        """The host answered a page with 429 or 503: no page request to it until Retry-After
        has passed (capped), or PAGE_BACKOFF for a 429 without one."""
        seconds = (
            retry_after if retry_after is not None else (PAGE_BACKOFF if status == 429 else None)
        )
        if seconds is None:
            return
        until = now + timedelta(seconds=min(seconds, PAGE_BACKOFF_CAP))
        current = self._until.get(host)
        if current is None or current[0] < until:
            self._until[host] = (until, f"HTTP {status}")

    def _deferred(self, host: str, now: datetime, feed_name: str, url: str) -> None:
        current = self._until.get(host)
        if current is not None and current[0] > now:
            until, why = current
            reason = f"{host} answered {why}: no page request before {until:%Y-%m-%d %H:%M:%S} UTC"
            raise PageDeferred(feed_name, url, reason)

    def _forget(self, now: datetime) -> None:
        if len(self._next) + len(self._until) <= self.FORGET_ABOVE:
            return
        for host in [h for h, at in self._next.items() if at <= now]:
            del self._next[host]
        for host in [h for h, (at, _) in self._until.items() if at <= now]:
            del self._until[host]


def _read_file(path: str, max_bytes: int) -> FetchResult:
    """A local feed file from config.yaml, with the same size cap (no conditional GET)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block us
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _Refused(f"{path} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        body = f.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise _Refused(f"file is larger than the {max_bytes}-byte cap")
    return FetchResult(path, 200, body, {}, None, None)


async def _fetch_http(
    client: httpx.AsyncClient,
    url: str,
    etag: str | None,
    last_modified: str | None,
    policy: FetchPolicy,
    untrusted: bool = False,
    accept: str | None = None,
) -> FetchResult:
    current = httpx.URL(url)
    if current.scheme not in ("http", "https") or not current.host:
        raise _Refused(f"not an http(s) URL or an absolute file path: {url!r}")
    headers = {"User-Agent": policy.user_agent, "Accept-Encoding": ACCEPT_ENCODING}
    if accept is not None:
        headers["Accept"] = accept
    if etag is not None:
        headers["If-None-Match"] = etag  # byte-identical, quotes and W/ kept
    if last_modified is not None:
        headers["If-Modified-Since"] = last_modified
    seen = {str(current.copy_with(fragment=None))}
    hops = 0
    permanent = True  # every redirect so far was 301 or 308
    while True:
        target = current
        extra: dict[str, str] = {}
        extensions: dict[str, object] = {}
        if hops or untrusted:  # a configured URL is trusted as written; where it leads is not
            what = "redirect to" if hops else "link to"
            target, extra, extensions = await _pin_public(current, policy, what)
        request = client.build_request(
            "GET", target, headers={**headers, **extra}, extensions=extensions
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.InvalidURL as e:  # httpx parses Location even when not following it
            raise _Refused(f"redirect to an unusable URL refused ({e})") from None
        try:
            status = response.status_code
            found = {k.lower(): v for k, v in response.headers.items()}
            if status in REDIRECT_STATUSES:
                current = _redirect_target(current, found.get("location"), status)
                hops += 1
                permanent = permanent and status in PERMANENT_REDIRECTS
                if hops > policy.max_redirects:
                    raise _Refused(f"more than {policy.max_redirects} redirects (at {current})")
                key = str(current.copy_with(fragment=None))
                if key in seen:
                    raise _Refused(f"redirect loop back to {current}", status)
                seen.add(key)
                continue
            moved = str(current) if hops and permanent else None
            if status == 304:
                new_etag = found.get("etag", etag)
                new_modified = found.get("last-modified", last_modified)
                return FetchResult(
                    str(current), 304, b"", found, new_etag, new_modified, True, moved
                )
            if not 200 <= status < 300:
                raise _http_error(status, found, current, url)
            body = await _read_body(response.aiter_raw(READ_CHUNK), found, policy.max_bytes)
            return FetchResult(
                str(current),
                status,
                body,
                found,
                found.get("etag"),
                found.get("last-modified"),
                permanent_url=moved,
            )
        finally:
            await response.aclose()


def _redirect_target(current: httpx.URL, location: str | None, status: int) -> httpx.URL:
    if not location or not location.strip():
        raise _Refused(f"HTTP {status} redirect without a Location header", status)
    try:
        target = current.join(location.strip())
    except httpx.InvalidURL:
        target = None
    if target is None or target.scheme not in ("http", "https") or not target.host:
        raise _Refused(f"redirect to a non-http(s) URL refused: {location.strip()!r}", status)
    return target


def _http_error(status: int, headers: dict[str, str], current: httpx.URL, url: str) -> _Refused:
    where = "" if str(current) == url else f" at {current}"
    retry_after = None
    if status in RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(headers.get("retry-after"), datetime.now(UTC))
    return _Refused(f"HTTP {status}{where}", status, retry_after)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait per a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


async def _pin_public(
    url: httpx.URL, policy: FetchPolicy, what: str = "redirect to"
) -> tuple[httpx.URL, dict[str, str], dict[str, object]]:
    """Resolve a redirect target (or an untrusted link) once, check every address, and
    connect to the checked one."""
    host = url.host
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if not address_allowed(literal, policy.allow_private):
            raise _Refused(f"{what} {url} refused: {literal} is not a public address")
        return url, {}, {}
    name = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = await policy.resolver(name, port)
    except OSError as e:
        raise _Refused(f"{what} {name}: the name does not resolve: {e}") from None
    if not addresses:
        raise _Refused(f"{what} {name}: the name has no addresses")
    for address in addresses:
        if not address_allowed(address, policy.allow_private):
            raise _Refused(f"{what} {url} refused: {name} resolves to {address}")
    # Connecting to the address we checked (Host header and SNI keep the name) defeats DNS
    # rebinding between our check and httpx's own lookup.
    extensions: dict[str, object] = {"sni_hostname": name} if url.scheme == "https" else {}
    pinned = url.copy_with(host=str(addresses[0]))
    return pinned, {"Host": url.netloc.decode("ascii")}, extensions


def address_allowed(address: IPAddress, allow: tuple[IPNetwork, ...] = ()) -> bool:
    """True for a global unicast address, or one inside `allow` (IPv4 embedded in IPv6 too)."""
    inner = _embedded_ipv4(address)
    forms: tuple[IPAddress, ...] = (address,) if inner is None else (address, inner)
    for form in forms:
        if any(form.version == net.version and form in net for net in allow):
            return True
    checked = address if inner is None else inner
    return checked.is_global and not checked.is_multicast


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries: mapped, 6to4, NAT64 or IPv4-compatible."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


async def _read_body(chunks: AsyncIterator[bytes], headers: dict[str, str], limit: int) -> bytes:
    """Read and decode the body, refusing as soon as wire or decoded size passes `limit`."""
    length = headers.get("content-length", "").strip()
    if length.isdigit() and int(length) > limit:
        raise _Refused(f"Content-Length {length} exceeds the {limit}-byte cap")
    decoder = _Decoder(headers.get("content-encoding", ""))
    body = bytearray()
    wire = 0
    async for chunk in chunks:
        wire += len(chunk)
        if wire > limit:
            raise _Refused(f"body exceeds the {limit}-byte cap")
        body += decoder.decode(chunk, limit - len(body))
    decoder.finish()
    return bytes(body)


class _Decoder:
    """gzip / deflate / identity decoding that never produces more than it is allowed to."""

    def __init__(self, content_encoding: str) -> None:
        name = content_encoding.strip().lower()
        gzip = 16 + zlib.MAX_WBITS
        wbits = {"gzip": gzip, "x-gzip": gzip, "deflate": zlib.MAX_WBITS}
        if name not in ("", "identity", *wbits):
            raise _Refused(f"unsupported Content-Encoding {content_encoding!r}")
        self._name = name
        self._wbits = wbits.get(name, 0)
        self._z = zlib.decompressobj(self._wbits) if self._wbits else None
        self._started = False  # some input went into the current stream
        self._done = False

    def decode(self, data: bytes, room: int) -> bytes:
        if self._z is None:
            if len(data) > room:
                raise _Refused("body exceeds the size cap")
            return data
        out = bytearray()
        while data and not self._done:
            try:
                # max_length bounds memory: a bomb stops at room + 1 bytes, whatever it holds.
                out += self._z.decompress(data, room - len(out) + 1)
            except zlib.error as e:
                if self._name == "deflate" and not self._started:  # raw deflate, no zlib header
                    self._started = True
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise _Refused(f"corrupt {self._name} body: {e}") from None
            self._started = True
            if len(out) > room:
                raise _Refused("decoded body exceeds the size cap")
            data = self._z.unconsumed_tail
            if self._z.eof:
                if self._name == "deflate":
                    self._done = True  # one stream only; anything after it is ignored
                    break
                data = self._z.unused_data.lstrip(b"\0")
                self._z = zlib.decompressobj(self._wbits)  # the next gzip member, if any
                self._started = False
        return bytes(out)

    def finish(self) -> None:
        if self._z is not None and self._started and not self._z.eof and not self._done:
            raise _Refused(f"truncated or corrupt {self._name} body")
