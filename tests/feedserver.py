"""A real HTTP feed server on 127.0.0.1 for tests: routes, validators, misbehaviours, a log."""

from __future__ import annotations

import functools
import hashlib
import itertools
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

import pytest

LAST_MODIFIED = "Wed, 30 Jul 2025 06:00:00 GMT"
RSS_TYPE = "application/rss+xml; charset=utf-8"
MAX_ENDLESS_BYTES = 512 * 1024 * 1024  # the endless body gives up here if a client never stops
HANDLER_PATIENCE = 30.0  # seconds a hanging handler waits before giving up on its own


@dataclass(frozen=True)
class Request:
    """One request as the server saw it: header names lower-cased, values exactly as sent."""

    path: str
    headers: dict[str, str]


Route = Callable[["Handler"], None]


class FeedServer:
    """Serve registered routes on an ephemeral loopback port from a background thread."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()
        self.in_flight = 0  # requests being answered right now ...
        self.most_in_flight = 0  # ... and the most there ever were at once
        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="feedserver"
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release every handler, stop serving, and join all threads."""
        self.stopping.set()
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()  # joins the handler threads

    def requests_for(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def add_route(self, path: str, route: Route) -> None:
        with self._lock:
            self._routes[path] = route

    def add(
        self,
        path: str,
        body: bytes | str,
        *,
        headers: dict[str, str] | None = None,
        status: int = 200,
        etag: str | None = "auto",
        last_modified: str | None = LAST_MODIFIED,
    ) -> None:
        """A static response; ETag/Last-Modified set and honoured (304) unless passed as None."""
        route = feed_route(
            body, headers=headers, status=status, etag=etag, last_modified=last_modified
        )
        self.add_route(path, route)

    def add_file(self, path: str, file: Path, *, headers: dict[str, str] | None = None) -> None:
        """Serve a file read in place at request time (never copied)."""
        self.add_route(path, lambda h: self._serve_file(h, file, headers or {}))

    def _serve_file(self, handler: Handler, file: Path, headers: dict[str, str]) -> None:
        data = file.read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        _static(data, {"Content-Type": RSS_TYPE, **headers}, 200, etag, LAST_MODIFIED, handler)

    def add_redirect(self, path: str, location: str, status: int = 302) -> None:
        self.add_route(path, lambda h: h.respond(status, b"", {"Location": location}))

    def add_status(
        self, path: str, status: int, *, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        self.add_route(path, lambda h: h.respond(status, body, headers or {}))

    def add_trickle(self, path: str, body: bytes, interval: float) -> None:
        """Send the headers at once, then one byte of the body every `interval` seconds."""
        self.add_route(path, lambda h: h.trickle(body, interval))

    def add_endless(self, path: str) -> None:
        """A chunked body that never ends (until the client hangs up)."""
        self.add_route(path, Handler.endless)

    def add_huge_length(self, path: str, length: int) -> None:
        """Claim `length` bytes in Content-Length, then dribble filler until the client leaves."""
        self.add_route(path, lambda h: h.huge(length))

    def add_hang(self, path: str) -> None:
        """Read the request, never answer."""
        self.add_route(path, Handler.hang)

    def add_sequence(self, path: str, routes: list[Route]) -> None:
        """Answer the n-th request with the n-th route; the last one answers from then on."""
        calls = itertools.count()

        def route(handler: Handler) -> None:
            routes[min(next(calls), len(routes) - 1)](handler)

        self.add_route(path, route)

    def add_slow(self, path: str, body: bytes | str, delay: float) -> None:
        """Wait `delay` seconds (less if the server stops), then answer 200 with `body`."""
        data = body.encode("utf-8") if isinstance(body, str) else body

        def route(handler: Handler) -> None:
            self.stopping.wait(delay)
            handler.respond(200, data, {"Content-Type": RSS_TYPE})

        self.add_route(path, route)

    def _route(self, path: str) -> Route | None:
        with self._lock:
            return self._routes.get(path) or self._routes.get(path.split("?", 1)[0])

    def _record(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(Request(path, headers))


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    owner: FeedServer

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, OSError):  # a client hanging up is fine
            self.owner.errors.append(error)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # a connection that never sends a request does not pin a thread for long
    server: _Server

    def do_GET(self) -> None:
        owner = self.server.owner
        owner._record(self.path, {k.lower(): v for k, v in self.headers.items()})
        route = owner._route(self.path)
        with owner._lock:
            owner.in_flight += 1
            owner.most_in_flight = max(owner.most_in_flight, owner.in_flight)
        self._answering = True
        try:
            if route is None:
                self.respond(404, b"no such route", {"Content-Type": "text/plain"})
            else:
                route(self)
        finally:
            self._answered()

    def _answered(self) -> None:
        """The request is no longer in flight: said before its answer is written, since a
        client that has read the answer may send its next request before this thread runs on."""
        if getattr(self, "_answering", False):
            self._answering = False
            with self.server.owner._lock:
                self.server.owner.in_flight -= 1

    def log_message(self, format: str, *args: object) -> None:
        pass

    def respond(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self._answered()
        self.close_connection = True
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def trickle(self, body: bytes, interval: float) -> None:
        self._head({"Content-Type": RSS_TYPE, "Content-Length": str(len(body))})
        stopping = self.server.owner.stopping
        for byte in body:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            if stopping.wait(interval):
                return

    def endless(self) -> None:
        self._head({"Content-Type": RSS_TYPE, "Transfer-Encoding": "chunked"})
        chunk = b"<item><title>more</title></item>" * 2048
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        sent = 0
        while not self.server.owner.stopping.is_set() and sent < MAX_ENDLESS_BYTES:
            self.wfile.write(frame)
            sent += len(chunk)

    def hang(self) -> None:
        self.close_connection = True
        self.server.owner.stopping.wait(HANDLER_PATIENCE)

    def huge(self, length: int) -> None:
        self._head({"Content-Type": RSS_TYPE, "Content-Length": str(length)})
        stopping = self.server.owner.stopping
        while not stopping.wait(0.05):
            self.wfile.write(b" " * 4096)
            self.wfile.flush()

    def _head(self, headers: dict[str, str]) -> None:
        self.close_connection = True
        self.send_response(200)
        for name, value in {**headers, "Connection": "close"}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()


def feed_route(
    body: bytes | str,
    *,
    headers: dict[str, str] | None = None,
    status: int = 200,
    etag: str | None = "auto",
    last_modified: str | None = LAST_MODIFIED,
) -> Route:
    """A static response (for `add` and `add_sequence`), honouring conditional GET."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    if etag == "auto":
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
    extra = {"Content-Type": RSS_TYPE, **(headers or {})}
    return functools.partial(_static, data, extra, status, etag, last_modified)


def status_route(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Route:
    """A bare status (an error, a redirect with its Location, …) for `add_sequence`."""
    return lambda h: h.respond(status, body, headers or {})


def _static(
    body: bytes,
    headers: dict[str, str],
    status: int,
    etag: str | None,
    last_modified: str | None,
    handler: Handler,
) -> None:
    validators = {k: v for k, v in (("ETag", etag), ("Last-Modified", last_modified)) if v}
    inm, ims = handler.headers.get("If-None-Match"), handler.headers.get("If-Modified-Since")
    if status == 200 and _not_modified(inm, ims, etag, last_modified):
        handler.respond(304, b"", validators)
    else:
        handler.respond(status, body, {**validators, **headers})


def _not_modified(
    inm: str | None, ims: str | None, etag: str | None, last_modified: str | None
) -> bool:
    """RFC 9110 §13.2.2: If-None-Match (weak comparison) wins; else If-Modified-Since."""
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return etag is not None and ("*" in tags or etag.removeprefix("W/") in tags)
    if ims is None or last_modified is None:
        return False
    try:
        return parsedate_to_datetime(last_modified) <= parsedate_to_datetime(ims)
    except (TypeError, ValueError):
        return False


@functools.cache
def gzip_bomb(decoded_size: int) -> bytes:
    """A gzip body of `decoded_size` zero bytes, built without holding them in memory."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(decoded_size // len(block))]
    parts.append(packer.compress(bytes(decoded_size % len(block))))
    parts.append(packer.flush())
    return b"".join(parts)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A running FeedServer, shut down (threads joined) at teardown; server-side bugs fail."""
    with FeedServer() as server:
        yield server
    if server.errors:
        raise server.errors[0]
