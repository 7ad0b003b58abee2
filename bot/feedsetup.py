"""Feeds from what analysts have: a feed or a site's address (autodiscovery), an OPML file."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bot.config import FEED_NAME, Config
from bot.configedit import NewFeed, add_feeds
from bot.discover import FeedLink, decode_page, feed_links
from bot.errors import ParseError, SourceError
from bot.fetch import Fetcher
from bot.opml import OpmlFeed, read_opml
from bot.parse import parse_feed

CHECK_NAME = "new-feed"  # how a feed being checked is named in errors
MAX_NAME = 40

Chooser = Callable[[Sequence[FeedLink]], FeedLink]


@dataclass(frozen=True)
class Found:
    """A feed that was fetched and parsed: where, its title, how many entries it has now."""

    url: str
    title: str
    entries: int
    page: str | None = None  # the page it was discovered on, if it was


@dataclass(frozen=True)
class Imported:
    added: tuple[NewFeed, ...]
    skipped: tuple[tuple[OpmlFeed, str], ...]  # each with why


def with_scheme(url: str) -> str:
    """`koreaherald.com` → `https://koreaherald.com`; other input unchanged."""
    url = url.strip()
    if "://" not in url and not url.startswith("/") and "." in url.split("/")[0]:
        return f"https://{url}"
    return url


def url_key(url: str) -> str:
    """A URL compared for duplicates: scheme and host lower-cased, default port, trailing `/`
    and fragment dropped."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port in (None, default) else f"{host}:{port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), parts.query, ""))


def duplicate(config: Config, name: str | None, url: str) -> str | None:
    """Why a feed named `name` at `url` cannot be added to `config`, or None."""
    key = url_key(url)
    for feed in config.feeds:
        if url_key(feed.url) == key:
            return f"already in {config.path.name} as feed {feed.name!r} ({feed.url})"
        if name is not None and feed.name == name:
            return f"a feed named {name!r} is already in {config.path.name} ({feed.url})"
    return None


def feed_name(title: str, url: str, taken: Collection[str]) -> str:
    """A config name from the feed's title, else its host (`hani-co-kr`), made unique."""
    slug = _slug(title)
    if len(slug) < 3:
        host = (urlsplit(url).hostname or "feed").removeprefix("www.")
        slug = _slug(host.replace(".", "-")) or "feed"
    name, n = slug, 2
    while name in taken:
        name = f"{slug}-{n}"
        n += 1
    return name


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:MAX_NAME].strip("-")
    return slug if FEED_NAME.match(slug) else ""


async def find_feed(fetcher: Fetcher, url: str, choose: Chooser) -> Found:
    """The feed at `url`, or the one its page links (several: `choose` picks one); fetched once
    and parsed to check it. A link found on a page is untrusted: every hop's address is
    checked against the SSRF rules."""
    fetched = await fetcher.fetch(CHECK_NAME, url, etag=None, last_modified=None)
    try:
        parsed = parse_feed(fetched.body, fetched.headers, feed=CHECK_NAME, url=fetched.url)
    except ParseError as not_a_feed:
        page = decode_page(fetched.body, fetched.headers.get("content-type"))
        links = feed_links(page, fetched.url)
        if not links:
            raise SourceError(
                url,
                "not a feed, and the page links no feed "
                '(no <link rel="alternate" type="application/rss+xml" or atom+xml>)',
            ) from not_a_feed
        link = links[0] if len(links) == 1 else choose(links)
        feed = await fetcher.fetch(
            CHECK_NAME, link.url, etag=None, last_modified=None, untrusted=True
        )
        parsed = parse_feed(feed.body, feed.headers, feed=CHECK_NAME, url=feed.url)
        return Found(link.url, parsed.title or link.title, len(parsed.entries), url)
    return Found(fetched.permanent_url or url, parsed.title, len(parsed.entries))


async def add_feed(
    config: Config,
    fetcher: Fetcher,
    url: str,
    *,
    name: str | None,
    choose: Chooser,
    full_text: bool = False,
) -> tuple[NewFeed, Found]:
    """Find and check the feed, refuse a duplicate, and append it to config.yaml."""
    url = with_scheme(url)
    if name is not None and not FEED_NAME.match(name):
        raise SourceError(name, "a feed name is letters, digits, '.', '_' or '-' (64 at most)")
    problem = duplicate(config, name, url)
    if problem is not None:
        raise SourceError(url, problem)
    found = await find_feed(fetcher, url, choose)
    problem = duplicate(config, name, found.url)
    if problem is not None:
        raise SourceError(found.url, problem)
    chosen = name or feed_name(found.title, found.url, {f.name for f in config.feeds})
    new = NewFeed(chosen, found.url, full_text=full_text)
    add_feeds(config.path, [new])
    return new, found


def import_opml(config: Config, path: Path, *, full_text: bool = False) -> Imported:
    """Add every http(s) feed of an OPML file that config.yaml lacks (compared by URL).

    The file is untrusted, but what it adds becomes config.yaml's own: a configured URL, polled
    as written (its redirects checked), as if typed there. So only absolute http(s) URLs are
    taken: a path or a `file:` URL, which config.yaml would read as a local file, is skipped.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    entries = read_opml(data, str(path))
    taken = {f.name for f in config.feeds}
    known = {url_key(f.url): f.name for f in config.feeds}
    added: list[NewFeed] = []
    skipped: list[tuple[OpmlFeed, str]] = []
    for entry in entries:
        key = url_key(entry.url)
        if urlsplit(entry.url).scheme.lower() not in ("http", "https"):
            skipped.append((entry, "not an http(s) URL"))
        elif key in known:
            skipped.append((entry, f"already there as {known[key]!r}"))
        else:
            name = feed_name(entry.title, entry.url, taken)
            taken.add(name)
            known[key] = name
            added.append(NewFeed(name, entry.url.strip(), full_text=full_text))
    if added:
        add_feeds(config.path, added)
    return Imported(tuple(added), tuple(skipped))
