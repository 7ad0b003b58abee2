"""Parse feed bytes with feedparser, after defusing DTDs and fixing legacy Korean encodings."""

from __future__ import annotations

import codecs
import html
import io
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

import feedparser

from bot.errors import ParseError
from bot.models import ParsedFeed, RawEntry

KST = timezone(timedelta(hours=9), "KST")
ZONE_ABBREVIATIONS = {"KST": "+0900", "JST": "+0900", "HKT": "+0800", "SGT": "+0800"}
HANGUL_RATIO_FOR_CP949 = 0.8  # undeclared non-UTF-8 bodies: decode as cp949 only if this Hangul
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

_KOREAN_CODECS = frozenset({"euc_kr", "cp949"})  # euc-kr is decoded as cp949, its superset
_XML_DECL = re.compile(rb"^(\s*<\?xml[^>]*?encoding\s*=\s*[\"'])([A-Za-z0-9._:-]+)([\"'])", re.I)
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.I)
_KOREAN_DATE = re.compile(
    r"(\d{4})\s*년\s*(\d{1,2})\s*월\s*(\d{1,2})\s*일"
    r"(?:\s*(?:(오전|오후)\s*)?(\d{1,2})\s*(?:시|:)\s*(\d{1,2})?(?:\s*분|:(\d{1,2}))?)?"
)
_ZONE_AT_END = re.compile(r"\b(" + "|".join(ZONE_ABBREVIATIONS) + r")\s*$")
_NAME_START = re.compile(rb"<\w")


def parse_feed(body: bytes, headers: dict[str, str], *, feed: str, url: str) -> ParsedFeed:
    """Parse a fetched body; a body that is not a feed raises ParseError naming the feed."""
    if not body.strip():
        raise ParseError(feed, url, "empty body: the server sent nothing to parse")
    lowered = {k.lower(): v for k, v in headers.items()}
    body, lowered = _transcode(body, lowered)
    body = strip_doctype(body)
    # No base URL for feedparser: it would resolve permalink guids too, and keys would then
    # change whenever a feed moves. Only links are resolved, below.
    base = urljoin(url, lowered.pop("content-location", "")) if _is_http(url) else ""
    try:
        # A stream, never bytes or str: feedparser would treat those as a URL or a file name.
        # Its HTML sanitizer and relative-URI rewriting are off: normalize.py reduces every
        # HTML field to text (script and style dropped) and render.py escapes it for Slack, and
        # together they cost over a third of feedparser's time on the corpus feeds.
        result = feedparser.parse(
            io.BytesIO(body),
            response_headers=lowered,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as e:  # feedparser's own failure on hostile input is a bad feed, not a bug
        raise ParseError(feed, url, f"feedparser failed: {type(e).__name__}: {e}") from e
    reason = _bozo_reason(result)
    offset = KST if _is_korean_language(result, lowered) else UTC
    raw = (_raw_entry(item, base, offset) for item in result.entries)
    entries = tuple(entry for entry in raw if _usable(entry))
    if not entries:
        if not result.get("version"):
            raise ParseError(feed, url, _not_a_feed(body, reason))
        if reason is not None and not _soft_bozo(result):
            raise ParseError(feed, url, f"broken feed with no readable entries ({reason})")
    feed_info = result.feed
    return ParsedFeed(
        title=_as_html(feed_info.get("title"), feed_info.get("title_detail")),
        link=_resolve(base, feed_info.get("link")),
        entries=entries,
        bozo=reason is not None,
        bozo_reason=reason,
        ttl_minutes=_ttl_minutes(feed_info.get("ttl")),
    )


def _ttl_minutes(value: object) -> int | None:
    """The RSS channel's `<ttl>` (minutes the feed may be cached), when it is a sane number."""
    text = str(value or "").strip()
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) < 10**7 else None


def strip_doctype(body: bytes) -> bytes:
    """Drop every DOCTYPE and markup declaration before the root element: no entities survive."""
    out = bytearray()
    keep_from = pos = 0
    while (lt := body.find(b"<", pos)) >= 0:
        if body.startswith(b"<?", lt):
            pos = _skip_past(body, lt + 2, b"?>")
        elif body.startswith(b"<!--", lt):
            pos = _skip_past(body, lt + 4, b"-->")
        elif body.startswith(b"<!", lt) and not body.startswith(b"<![CDATA[", lt):
            out += body[keep_from:lt]  # <!DOCTYPE ...[...]>, or a stray <!ENTITY ...>
            keep_from = pos = _declaration_end(body, lt + 2)
        elif _NAME_START.match(body, lt):
            break  # the root element: DTDs cannot follow it
        else:
            pos = lt + 1
    return bytes(out + body[keep_from:])


def _skip_past(body: bytes, start: int, end: bytes) -> int:
    found = body.find(end, start)
    return len(body) if found < 0 else found + len(end)


def _declaration_end(body: bytes, pos: int) -> int:
    """Index after the `>` closing a declaration, honouring quotes, comments and `[...]`."""
    depth = 0
    while pos < len(body):
        c = body[pos : pos + 1]
        if c in (b'"', b"'"):
            pos = _skip_past(body, pos + 1, c)
            continue
        if body.startswith(b"<!--", pos):
            pos = _skip_past(body, pos + 4, b"-->")
            continue
        if body.startswith(b"<?", pos):
            pos = _skip_past(body, pos + 2, b"?>")
            continue
        if c == b"[":
            depth += 1
        elif c == b"]":
            depth = max(0, depth - 1)
        elif c == b">" and depth == 0:
            return pos + 1
        pos += 1
    return len(body)


def _transcode(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """Re-encode UTF-16/32 and Korean legacy bodies as UTF-8; feedparser handles the rest."""
    wide = _wide_encoding(body)
    if wide is not None:
        return _as_utf8(body.decode(wide, errors="replace").lstrip("\ufeff"), headers)
    http_charset = _codec(_header_charset(headers))
    match = _XML_DECL.match(body)
    declared = _codec(match.group(2).decode("ascii") if match else None)
    named = [c for c in (http_charset, declared) if c is not None]
    if any(c in _KOREAN_CODECS for c in named):
        # Valid UTF-8 is near-proof of UTF-8; then cp949; a Latin-1 server default comes last.
        others = [c for c in named if c not in _KOREAN_CODECS and c != "utf-8"]
        for codec in ["utf-8", "cp949", *others]:
            try:
                return _as_utf8(body.decode(codec), headers)
            except UnicodeDecodeError:
                continue
    elif all(c == "utf-8" for c in named) and not _is_utf8(body):
        text = _cp949_if_hangul(body)
        if text is not None:
            return _as_utf8(text, headers)
    return body, headers


def _wide_encoding(body: bytes) -> str | None:
    for bom, name in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if body.startswith(bom):
            return name
    for prefix, name in ((b"<\0\0\0", "utf-32-le"), (b"\0\0\0<", "utf-32-be")):
        if body.startswith(prefix):
            return name
    for prefix, name in ((b"<\0?\0", "utf-16-le"), (b"\0<\0?", "utf-16-be")):
        if body.startswith(prefix):
            return name
    return None


def _header_charset(headers: dict[str, str]) -> str | None:
    found = _CHARSET.search(headers.get("content-type", ""))
    return found.group(1) if found else None


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _cp949_if_hangul(body: bytes) -> str | None:
    """Undeclared Korean: accept a cp949 reading only when nearly all non-ASCII text is Hangul."""
    try:
        text = body.decode("cp949")
    except UnicodeDecodeError:
        return None
    wide = [c for c in text if ord(c) > 0x7F]
    hangul = sum(1 for c in wide if "\uac00" <= c <= "\ud7a3" or "\u3131" <= c <= "\u318e")
    return text if wide and hangul / len(wide) >= HANGUL_RATIO_FOR_CP949 else None


def _as_utf8(text: str, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    body = _XML_DECL.sub(rb"\g<1>utf-8\g<3>", text.encode("utf-8"), count=1)
    fixed = dict(headers)
    if "content-type" in fixed:
        fixed["content-type"] = _CHARSET.sub("charset=utf-8", fixed["content-type"])
    return body, fixed


def _bozo_reason(result: Any) -> str | None:
    """What was wrong with the feed; a missing or odd Content-Type alone is not worth a word."""
    error = result.get("bozo_exception")
    if not result.get("bozo") or isinstance(error, feedparser.NonXMLContentType):
        return None
    return f"{type(error).__name__}: {error}" if error is not None else "malformed feed"


def _soft_bozo(result: Any) -> bool:
    """Encoding and content-type complaints: the XML itself was fine."""
    return isinstance(result.get("bozo_exception"), feedparser.ThingsNobodyCaresAboutButMe)


def _not_a_feed(body: bytes, reason: str | None) -> str:
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    if head.startswith((b"{", b"[")):
        return "not a feed: the body is JSON, not RSS or Atom"
    if b"<html" in head or b"<!doctype html" in head or b"<body" in head:
        return "not a feed: the body is an HTML page"
    if not head.startswith(b"<"):
        return "not a feed: the body is not XML"
    return "not a feed: no RSS or Atom root element" + (f" ({reason})" if reason else "")


def _is_korean_language(result: Any, headers: dict[str, str]) -> bool:
    language = str(result.feed.get("language") or headers.get("content-language") or "")
    return language.strip().lower().startswith("ko")


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _resolve(base: str, link: object) -> str | None:
    if not isinstance(link, str) or not link.strip():
        return None
    return urljoin(base, link.strip()) if base else link.strip()


def _raw_entry(entry: Any, base: str, offset: timezone) -> RawEntry:
    parts = [_as_html(part.get("value"), part) for part in entry.get("content") or () if part]
    summary = _as_html(entry.get("summary"), entry.get("summary_detail"))
    if summary in parts:  # feedparser copies atom:content into summary when there is none
        summary = ""
    # dict.get: FeedParserDict.get warns when `updated` falls back to `published`
    raw_date = dict.get(entry, "published") or dict.get(entry, "updated")
    parsed = dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")
    guid = entry.get("id")
    return RawEntry(
        guid=(guid.strip() or None) if isinstance(guid, str) else None,
        link=_resolve(base, entry.get("link")),
        title=_as_html(entry.get("title"), entry.get("title_detail")),
        summary_html=summary,
        content_html="\n".join(parts),
        published=parse_date(raw_date, parsed, offset),
        author=entry.get("author") or None,
    )


def _usable(entry: RawEntry) -> bool:
    """An entry with anything to show or identify it (a bare `<item>` of a cut-off feed is not)."""
    return any((entry.title, entry.link, entry.guid, entry.summary_html, entry.content_html))


def _as_html(value: object, detail: Any) -> str:
    """feedparser's text as HTML: plain-text constructs are escaped so `<!channel>` stays text."""
    if not isinstance(value, str):
        return ""
    kind = detail.get("type") if detail else None
    return value if kind in HTML_TYPES or kind is None else html.escape(value, quote=False)


def parse_date(
    raw: str | None, parsed: time.struct_time | None, naive_zone: timezone = UTC
) -> datetime | None:
    """A feed date as aware UTC: our reading of the text first, then feedparser's; else None."""
    if raw:
        text = raw.strip()
        when = _korean_date(text) or _rfc822_date(text) or _iso_date(text)
        if when is not None:
            return (when if when.tzinfo else when.replace(tzinfo=naive_zone)).astimezone(UTC)
    if parsed is not None:
        try:
            return datetime(*parsed[:6], tzinfo=UTC)
        except (TypeError, ValueError, OverflowError):
            return None
    return None


def _korean_date(text: str) -> datetime | None:
    found = _KOREAN_DATE.search(text)
    if not found:
        return None
    year, month, day, half, hour, minute, second = found.groups()
    h = int(hour or 0)
    if half:  # 오전 (a.m.) / 오후 (p.m.) on a 12-hour clock
        h = h % 12 + (12 if half == "오후" else 0)
    try:
        return datetime(
            int(year), int(month), int(day), h, int(minute or 0), int(second or 0), tzinfo=KST
        )
    except ValueError:
        return None


def _rfc822_date(text: str) -> datetime | None:
    text = _ZONE_AT_END.sub(lambda m: ZONE_ABBREVIATIONS[m.group(1)], text)
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _iso_date(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
