"""A Slack Web API test double on 127.0.0.1 (real HTTP, own thread) and its `slack_double` fixture.

Reach it with the real slack-sdk client: `base_url=double.base_url`. It answers
`chat.postMessage` (JSON or form body; `thread_ts` posts a reply in that message's thread),
`chat.update` (by channel ID and ts), `auth.test`, `conversations.history` (top-level messages
only, as Slack answers) and `conversations.replies` (a thread: its first message, then the
replies), records every request and accepted message (with its `metadata`, returned only when
`include_all_metadata` is set, as Slack does), checks Slack's Block Kit limits on posts and
updates, and injects faults on demand. Message `ts` values follow `double.clock` (real time
unless a test sets it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

TOKEN = "xoxb-double-token"
HTML_503 = (
    "<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>"
    "<body><h1>Service Unavailable</h1><p>upstream is down</p></body></html>"
)
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{8,}")
_TEXT_LIMIT = 40_000  # Slack truncates/refuses beyond this


@dataclass(frozen=True)
class Request:
    """One request as the double received it."""

    http_method: str
    method: str  # Web API method, e.g. "chat.postMessage"
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]  # JSON body, form fields or query parameters; form `blocks` decoded
    at: float = 0.0  # double.clock() when it arrived


@dataclass
class _Fault:
    kind: str  # "http" | "drop" | "delay"
    times: int | None  # None: every matching request
    method: str | None = None  # None: any method
    channel: str | None = None  # None: any channel
    status: int = 200
    body: str = ""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class SlackDouble:
    """A fake Slack Web API; thread-safe; `start()` then `stop()` (the fixture does both)."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[Request] = []
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._faults: list[_Fault] = []
        self._fair: tuple[float, float] | None = None
        self._buckets: dict[str, tuple[float, float]] = {}  # channel id: (tokens, at)
        self._limited = 0
        self.unanswered = 0  # answers the client was no longer there to read
        self._ts = 0.0
        self.clock: Callable[[], float] = time.time  # seconds since the epoch: `ts` and `at`
        self.history_error: str | None = None  # e.g. "missing_scope": history is refused
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.double = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    # -- lifecycle and inspection

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wakes delayed answers
        self._server.shutdown()
        self._server.server_close()  # joins handler threads
        self._thread.join(5)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def posts(self, channel: str | None = None) -> list[Request]:
        """Every chat.postMessage request, answered or not (optionally for one channel)."""
        return [
            r
            for r in self.requests
            if r.method == "chat.postMessage"
            and (
                channel is None
                or self.channel_id(str(r.body.get("channel"))) == self.channel_id(channel)
            )
        ]

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Accepted messages, oldest first (optionally for one channel)."""
        with self._lock:
            if channel is not None:
                return list(self._messages.get(self.channel_id(channel), []))
            return [m for ms in self._messages.values() for m in ms]

    def top_level(self, channel: str) -> list[dict[str, Any]]:
        """A channel's messages outside threads (a thread's first message included)."""
        return [m for m in self.messages(channel) if m.get("thread_ts", m["ts"]) == m["ts"]]

    def replies(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The replies in the thread of the message `ts`, oldest first."""
        return [m for m in self.messages(channel) if m.get("thread_ts") == ts and m["ts"] != ts]

    def updates(self) -> list[Request]:
        """Every chat.update request, answered or not."""
        return [r for r in self.requests if r.method == "chat.update"]

    @staticmethod
    def channel_id(name: str) -> str:
        """A stable fake ID per channel name; IDs stay as they are."""
        name = name.strip().lstrip("#")
        if _CHANNEL_ID.fullmatch(name):
            return name
        return "C" + hashlib.sha1(name.encode()).hexdigest()[:10].upper()

    # -- faults: each applies to the next `times` matching requests (None: all of them)

    def fail_http(
        self,
        status: int = 503,
        times: int | None = 1,
        body: str = HTML_503,
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
        method: str | None = "chat.postMessage",
    ) -> None:
        self._add(_Fault("http", times, method, None, status, body, content_type, headers or {}))

    def rate_limit(
        self, retry_after: str | None = "30", times: int | None = 1, channel: str | None = None
    ) -> None:
        """HTTP 429 `ratelimited`, with this Retry-After header value (None: no header)."""
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        body = json.dumps({"ok": False, "error": "ratelimited"})
        self._add(_Fault("http", times, "chat.postMessage", channel, 429, body, headers=headers))

    def rate_limit_fair(self, rate: float = 1.0, burst: int = 3) -> None:
        """Answer 429 (Retry-After: 1) to posts above `rate` per second per channel, after a
        `burst`, as Slack does: the test then sees the bot's pacing in `limited`."""
        with self._lock:
            self._fair = (rate, float(burst))

    @property
    def limited(self) -> int:
        """How many posts the fair limiter refused."""
        with self._lock:
            return self._limited

    def fail_with(
        self, error: str, channel: str | None = None, times: int | None = None, status: int = 200
    ) -> None:
        """`ok: false` with this error code (for one channel, or every channel)."""
        body = json.dumps({"ok": False, "error": error})
        self._add(_Fault("http", times, "chat.postMessage", channel, status, body))

    def drop_after_accept(self, times: int | None = 1, channel: str | None = None) -> None:
        """Accept the message, then close the connection without answering."""
        self._add(_Fault("drop", times, "chat.postMessage", channel))

    def delay(self, seconds: float, times: int | None = 1, channel: str | None = None) -> None:
        """Accept the message, then answer only after `seconds`."""
        self._add(_Fault("delay", times, "chat.postMessage", channel, delay=seconds))

    def clear_faults(self) -> None:
        """Slack works normally again."""
        with self._lock:
            self._faults.clear()

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _over_rate(self, body: dict[str, Any]) -> bool:
        if self._fair is None or not isinstance(body.get("channel"), str):
            return False
        rate, burst = self._fair
        cid, now = self.channel_id(body["channel"]), self.clock()
        tokens, at = self._buckets.get(cid, (burst, now))
        tokens = min(burst, tokens + max(now - at, 0.0) * rate)
        if tokens < 1.0:
            self._buckets[cid] = (tokens, now)
            return True
        self._buckets[cid] = (tokens - 1.0, now)
        return False

    def _take_fault(self, method: str, channel: object) -> _Fault | None:
        for fault in self._faults:
            if fault.times == 0 or fault.method not in (None, method):
                continue
            if fault.channel is not None and (
                not isinstance(channel, str)
                or self.channel_id(channel) != self.channel_id(fault.channel)
            ):
                continue
            if fault.times is not None:
                fault.times -= 1
            return fault
        return None

    # -- the API

    def handle(self, h: _Handler) -> None:
        url = urlsplit(h.path)
        method = url.path.rsplit("/", 1)[-1]
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        body = _parse_body(headers.get("content-type", ""), raw, url.query)
        with self._lock:
            self._requests.append(Request(h.command, method, headers, body, self.clock()))
            fault = self._take_fault(method, body.get("channel"))
            if fault is None and method == "chat.postMessage" and self._over_rate(body):
                self._limited += 1
                fault = _Fault("http", 1, status=429, headers={"Retry-After": "1"})
                fault.body = json.dumps({"ok": False, "error": "ratelimited"})
        if fault is not None and fault.kind == "http":
            h.answer(fault.status, fault.body, fault.content_type, fault.headers)
            return
        status, payload = self._dispatch(method, body, headers)
        if fault is not None and fault.kind == "drop":
            h.close_connection = True  # the socket closes with no response at all
            return
        if fault is not None and fault.kind == "delay":
            self._stopping.wait(fault.delay)
        h.answer(status, json.dumps(payload))

    def _dispatch(
        self, method: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        auth = headers.get("authorization", "")
        if not auth:
            return 200, {"ok": False, "error": "not_authed"}
        if auth != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "invalid_auth"}
        if method == "auth.test":
            return 200, {
                "ok": True,
                "url": "https://double.slack.example/",
                "team": "Double",
                "user": "newswatch",
                "team_id": "T0DOUBLE",
                "user_id": "U0DOUBLE",
                "bot_id": "B0DOUBLE",
            }
        if method == "chat.postMessage":
            return 200, self._post(body)
        if method == "conversations.history":
            return 200, self._history(body)
        if method == "conversations.replies":
            return 200, self._replies(body)
        if method == "chat.update":
            return 200, self._update(body)
        return 404, {"ok": False, "error": "unknown_method"}

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = body.get("channel")
        if not isinstance(channel, str) or not channel.strip():
            return {"ok": False, "error": "channel_not_found"}
        text, blocks = body.get("text"), body.get("blocks")
        if not text and not blocks:
            return {"ok": False, "error": "no_text"}
        if isinstance(text, str) and len(text) > _TEXT_LIMIT:
            return {"ok": False, "error": "msg_too_long"}
        if blocks is not None and not _valid_blocks(blocks):
            return {"ok": False, "error": "invalid_blocks"}
        cid = self.channel_id(channel)
        thread_ts = body.get("thread_ts") or None
        with self._lock:
            parent = None
            if thread_ts is not None:
                parent = next(
                    (m for m in self._messages.get(cid, []) if m["ts"] == str(thread_ts)), None
                )
                if parent is None or parent.get("thread_ts", parent["ts"]) != parent["ts"]:
                    return {"ok": False, "error": "thread_not_found"}  # stricter than Slack
            self._ts = max(self._ts + 0.000001, self.clock())
            ts = f"{self._ts:.6f}"
            message = {
                "type": "message",
                "user": "U0DOUBLE",
                "bot_id": "B0DOUBLE",
                "text": text or "",
                "blocks": blocks or [],
                "ts": ts,
            }
            if parent is not None:
                message["thread_ts"] = parent["ts"]
                parent["thread_ts"] = parent["ts"]
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = ts
            metadata = _metadata(body)
            if metadata is not None:
                message["metadata"] = metadata
            self._messages.setdefault(cid, []).append(message)
        return {"ok": True, "channel": cid, "ts": ts, "message": message}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        """chat.update: like Slack, by channel ID (a `#name` is not found) and `ts`."""
        channel, ts = body.get("channel"), body.get("ts")
        if not isinstance(channel, str) or not _CHANNEL_ID.fullmatch(channel):
            return {"ok": False, "error": "channel_not_found"}
        text, blocks = body.get("text"), body.get("blocks")
        if not text and not blocks:
            return {"ok": False, "error": "no_text"}
        if blocks is not None and not _valid_blocks(blocks):
            return {"ok": False, "error": "invalid_blocks"}
        with self._lock:
            message = next((m for m in self._messages.get(channel, []) if m["ts"] == ts), None)
            if message is None:
                return {"ok": False, "error": "message_not_found"}
            message["text"] = text or ""
            message["blocks"] = blocks or []
            message["edited"] = {"user": "U0DOUBLE", "ts": f"{self.clock():.6f}"}
            metadata = _metadata(body)
            if metadata is not None:
                message["metadata"] = metadata
            return {"ok": True, "channel": channel, "ts": ts, "text": message["text"]}

    def _replies(self, body: dict[str, Any]) -> dict[str, Any]:
        """conversations.replies: the thread's first message, then its replies, oldest first."""
        channel, ts = body.get("channel"), body.get("ts")
        if self.history_error:
            return {"ok": False, "error": self.history_error}
        if not isinstance(channel, str):
            return {"ok": False, "error": "channel_not_found"}
        messages = self.messages(channel)
        parent = next((m for m in messages if m["ts"] == ts), None)
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        oldest, latest = float(body.get("oldest") or 0), float(body.get("latest") or "inf")
        replies = [
            m
            for m in messages
            if m.get("thread_ts") == ts and m["ts"] != ts and oldest < float(m["ts"]) < latest
        ]
        found = [parent, *replies]
        if str(body.get("include_all_metadata")).lower() not in ("1", "true"):
            found = [{k: v for k, v in m.items() if k != "metadata"} for m in found]
        limit = int(body.get("limit") or 100)
        start = int(body.get("cursor") or 0)
        page = found[start : start + limit]
        more = len(found) > start + limit
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _history(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = body.get("channel")
        if self.history_error:
            return {"ok": False, "error": self.history_error}
        if not isinstance(channel, str):
            return {"ok": False, "error": "channel_not_found"}
        oldest, latest = float(body.get("oldest") or 0), float(body.get("latest") or "inf")
        limit = int(body.get("limit") or 100)
        start = int(body.get("cursor") or 0)
        found = [
            m
            for m in self.messages(channel)
            if oldest < float(m["ts"]) < latest and m.get("thread_ts", m["ts"]) == m["ts"]
        ]
        found.reverse()  # newest first, as Slack answers
        if str(body.get("include_all_metadata")).lower() not in ("1", "true"):
            found = [{k: v for k, v in m.items() if k != "metadata"} for m in found]
        page = found[start : start + limit]
        more = len(found) > start + limit
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }


def _metadata(body: dict[str, Any]) -> dict[str, Any] | None:
    metadata = body.get("metadata")
    if isinstance(metadata, str):  # form-encoded bodies carry it as JSON text
        with contextlib.suppress(ValueError):
            metadata = json.loads(metadata)
    return metadata if isinstance(metadata, dict) else None


def _parse_body(content_type: str, raw: bytes, query: str) -> dict[str, Any]:
    body: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query).items()}
    if content_type.startswith("application/json"):
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError:
            parsed = {"_invalid_json": raw.decode("utf-8", "replace")}
        body.update(parsed if isinstance(parsed, dict) else {"_json": parsed})
    elif raw:
        body.update({k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()})
        if isinstance(body.get("blocks"), str):
            with contextlib.suppress(ValueError):
                body["blocks"] = json.loads(body["blocks"])
    return body


def _valid_text(
    obj: Any, limit: int = 3000, kinds: tuple[str, ...] = ("mrkdwn", "plain_text")
) -> bool:
    return (
        isinstance(obj, dict)
        and obj.get("type") in kinds
        and isinstance(obj.get("text"), str)
        and 1 <= len(obj["text"]) <= limit
    )


def _valid_blocks(blocks: Any) -> bool:
    """Slack's documented limits for the block types we use."""
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return False
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "section":
            fields = block.get("fields", [])
            if "text" not in block and not fields:
                return False
            if "text" in block and not _valid_text(block["text"]):
                return False
            if len(fields) > 10 or not all(_valid_text(f, 2000) for f in fields):
                return False
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                return False
            if not all(_valid_text(e) for e in elements):
                return False
        elif kind == "header":
            if not _valid_text(block.get("text"), 150, ("plain_text",)):
                return False
        elif kind != "divider":
            return False
    return True


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() waits for every handler
    double: SlackDouble

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client killed mid-request resets its connection: expected here, not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.server.double.handle(self)

    do_GET = do_POST

    def answer(
        self,
        status: int,
        body: str,
        content_type: str = "application/json; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout) or died before we answered
            self.close_connection = True
            with self.server.double._lock:
                self.server.double.unanswered += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(name="slack_double")
def slack_double_fixture() -> Iterator[SlackDouble]:
    """A started double, stopped at teardown. Import this function to use `slack_double`."""
    double = SlackDouble()
    double.start()
    try:
        yield double
    finally:
        double.stop()
