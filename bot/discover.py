"""Feed autodiscovery: the feeds a web page links in `<link rel="alternate" type=…>` (pure)."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/rdf+xml"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


@dataclass(frozen=True)
class FeedLink:
    """One feed a page announces: its absolute URL, its title (may be empty) and its type."""

    url: str
    title: str
    type: str


def feed_links(page: str, base_url: str) -> list[FeedLink]:
    """The feeds `page` links, in page order, each URL once, made absolute against the page's
    `<base href>` or `base_url`; only http(s) URLs."""
    finder = _LinkFinder()
    finder.feed(page)
    finder.close()
    base = urljoin(base_url, finder.base) if finder.base else base_url
    found: dict[str, FeedLink] = {}
    for href, title, kind in finder.links:
        url = urljoin(base, href.strip())
        if urlsplit(url).scheme in ("http", "https") and url not in found:
            found[url] = FeedLink(url, " ".join(title.split()), kind)
    return list(found.values())


def decode_page(body: bytes, content_type: str | None) -> str:
    """HTML bytes as text: the charset of the Content-Type, else of a `<meta>`, else UTF-8."""
    for candidate in (header_charset(content_type), _meta_charset(body[:4096]), "utf-8"):
        if candidate:
            try:
                codecs.lookup(candidate)
            except LookupError:
                continue
            return body.decode(candidate, errors="replace")
    return body.decode("utf-8", errors="replace")


def header_charset(content_type: str | None) -> str | None:
    """The `charset=` of a Content-Type header, if it names one."""
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def _meta_charset(head: bytes) -> str | None:
    found = _META_CHARSET.search(head)
    return found.group(1).decode("ascii") if found else None


class _LinkFinder(HTMLParser):
    """Collects `<link rel="alternate">` feeds and the first `<base href>`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        if tag == "base" and self.base is None and values.get("href"):
            self.base = values["href"].strip()
        if tag not in ("link", "a"):
            return
        rels = values.get("rel", "").lower().split()
        kind = values.get("type", "").split(";")[0].strip().lower()
        if "alternate" in rels and kind in FEED_TYPES and values.get("href", "").strip():
            self.links.append((values["href"], values.get("title", ""), kind))

    handle_startendtag = handle_starttag
