"""Turn parsed entries into Articles: plain text, safe links, stable keys (pure: `now` is given)."""

from __future__ import annotations

import hashlib
import html
import ipaddress
import re
import unicodedata
from datetime import datetime
from html.parser import HTMLParser
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from bot.models import Article, ParsedFeed, RawEntry

MAX_TITLE_CHARS = 1_000
MAX_TEXT_CHARS = 200_000  # summary and content, each
MAX_HTML_CHARS = 2_000_000  # HTML past this is not even parsed
MAX_GUID_CHARS = 512  # longer guids are keyed by their hash
MAX_LINK_CHARS = 8_192  # longer "links" are dropped
ELLIPSIS = "…"
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid",
        "mc_cid", "mc_eid", "ocid", "_hsenc", "_hsmi", "mkt_tok", "s_cid", "cmpid", "wt.mc_id",
        "oly_anon_id", "oly_enc_id", "rb_clickid", "vero_id", "spm", "__twitter_impression",
    }
)  # fmt: skip
TRACKING_PREFIXES = ("utm_",)
DEFAULT_PORTS = {"http": 80, "https": 443}
SKIPPED_TAGS = frozenset({"script", "style", "template", "noscript"})
BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "div",
        "dl", "dt", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table",
        "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
CELL_TAGS = frozenset({"td", "th"})

# Controls, zero-width and bidi formatting characters are deleted; odd line breaks become "\n".
_DELETED = [
    *range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0x85), *range(0x86, 0xA0),
    0x00AD, 0x061C, 0x180E, *range(0x200B, 0x2010), *range(0x202A, 0x202F),
    *range(0x2060, 0x2070), 0xFEFF, *range(0xFFF9, 0xFFFC), *range(0xE0000, 0xE0080),
]  # fmt: skip
_TRANSLATION: dict[int, str | None] = {c: None for c in _DELETED}
_TRANSLATION.update({0x09: " ", 0x85: "\n", 0x2028: "\n", 0x2029: "\n"})
_LEFTOVER_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_HOST = re.compile(r"[\w.-]+")
_URL_SAFE = "/:@!$&'()*+,;=-._~%"


def normalize_entries(parsed: ParsedFeed, feed: str, now: datetime) -> tuple[Article, ...]:
    """Every usable entry of one feed as an Article; a repeated feed_key keeps the first."""
    source = single_line(html_to_text(parsed.title), MAX_TITLE_CHARS) or feed
    seen: set[str] = set()
    articles = []
    for entry in parsed.entries:
        article = normalize_entry(entry, feed=feed, source=source, now=now)
        empty = not (article.title or article.summary or article.content or article.link)
        if empty or article.feed_key in seen:
            continue
        seen.add(article.feed_key)
        articles.append(article)
    return tuple(articles)


def normalize_entry(entry: RawEntry, *, feed: str, source: str, now: datetime) -> Article:
    """One entry as an Article: plain text, http(s) link or None, keys, date no later than now."""
    title = single_line(html_to_text(entry.title), MAX_TITLE_CHARS)
    summary = truncate(html_to_text(entry.summary_html), MAX_TEXT_CHARS)
    content = truncate(html_to_text(entry.content_html), MAX_TEXT_CHARS)
    link = safe_link(entry.link)
    canonical = canonical_url(link) if link else None
    content_hash = "hash:" + _text_hash(title, content or summary)
    published = entry.published
    if published is not None and published > now:
        published = now
    return Article(
        feed=feed,
        feed_key=_guid_key(entry.guid) or canonical or content_hash,
        cross_key=f"url:{canonical}" if canonical else content_hash,
        title=title,
        link=link,
        summary=summary,
        content=content,
        published=published,
        source=source,
    )


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED_TAGS:
            self._skipping += 1
        else:
            self.handle_startendtag(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in CELL_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment, entities decoded, controls and bidi tricks removed.

    Entities are decoded once by the HTML parser; an entity still standing after that
    (`&amp;quot;` in the source, common in Korean feeds) is decoded once more.
    """
    if not markup:
        return ""
    parser = _TextExtractor()
    parser.feed(markup[:MAX_HTML_CHARS])
    parser.close()
    text = _LEFTOVER_ENTITY.sub(lambda m: html.unescape(m.group(0)), "".join(parser.parts))
    return clean_text(text)


def clean_text(text: str) -> str:
    """NFC text without controls, zero-width or bidi characters; tidy spaces and blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_TRANSLATION)
    text = unicodedata.normalize("NFC", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def single_line(text: str, limit: int) -> str:
    return truncate(" ".join(text.split()), limit)


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, ending in an ellipsis when cut; marks stay with their base."""
    if len(text) <= limit:
        return text
    cut = limit - len(ELLIPSIS)
    while cut > 0 and unicodedata.combining(text[cut]):
        cut -= 1
    return text[:cut].rstrip() + ELLIPSIS


def safe_link(raw: str | None) -> str | None:
    """An http(s) URL with a lower-case host and no userinfo or default port; anything else None."""
    if not raw or len(raw) > MAX_LINK_CHARS:
        return None
    text = clean_text(re.sub(r"[\t\n\r]", "", raw))
    try:
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    host = host.rstrip(".")
    if ":" in host:
        try:
            host = f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            return None
    elif not _HOST.fullmatch(host):
        return None
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = quote(parts.path, safe=_URL_SAFE) or "/"
    query = quote(parts.query, safe=_URL_SAFE + "?")
    fragment = quote(parts.fragment, safe=_URL_SAFE + "?#")
    return urlunsplit((scheme, netloc, path, query, fragment))


def canonical_url(link: str) -> str | None:
    """The link without fragment or tracking parameters, for recognizing the same article."""
    safe = safe_link(link)
    if safe is None:
        return None
    parts = urlsplit(safe)
    kept = [p for p in parts.query.split("&") if p and not _is_tracking(p)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept), ""))


def _is_tracking(pair: str) -> bool:
    name = unquote_plus(pair.split("=", 1)[0]).strip().lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def _guid_key(guid: str | None) -> str | None:
    """A guid compared without regard to case or whitespace; huge guids by their hash."""
    if guid is None:
        return None
    key = " ".join(guid.split()).casefold()
    if len(key) > MAX_GUID_CHARS:
        return "guid-sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
    return key or None


def _text_hash(title: str, text: str) -> str:
    normalized = " ".join(title.split()).casefold() + "\n" + " ".join(text.split()).casefold()
    return hashlib.sha256(normalized.encode("utf-8", "surrogatepass")).hexdigest()
