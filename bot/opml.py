"""OPML, the feed list every reader imports and exports: read safely (defusedxml), write 2.0."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from bot.errors import SourceError
from bot.models import FeedConfig

MAX_OPML_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class OpmlFeed:
    """One subscription: its title, feed URL, site URL, and the folder it was filed in."""

    title: str
    url: str
    site: str | None = None
    folder: str | None = None  # innermost enclosing outline's title, if any


def read_opml(data: bytes, source: str) -> list[OpmlFeed]:
    """Every outline with an `xmlUrl`, at any depth of folders; `source` names the file in
    errors. DTDs, entities and external references are refused, not expanded."""
    if len(data) > MAX_OPML_BYTES:
        raise SourceError(source, f"larger than {MAX_OPML_BYTES} bytes")
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise SourceError(source, f"refused unsafe XML ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        line, column = exc.position
        reason = f"not well-formed XML at line {line}, column {column + 1}"
        raise SourceError(source, reason) from exc
    if _local(root.tag) != "opml":
        raise SourceError(source, f"not OPML: the root element is <{_local(root.tag)}>")
    body = next((c for c in root if _local(c.tag) == "body"), None)
    if body is None:
        raise SourceError(source, "not OPML: no <body>")
    return list(_walk(body, None))


def _walk(node: ET.Element, folder: str | None) -> Iterator[OpmlFeed]:
    for child in node:
        if _local(child.tag) != "outline":
            continue
        attrs = {k.lower(): v.strip() for k, v in child.attrib.items()}
        title = attrs.get("title") or attrs.get("text") or ""
        url = attrs.get("xmlurl")
        if url:
            yield OpmlFeed(title, url, attrs.get("htmlurl") or None, folder)
        yield from _walk(child, title or folder)


def _local(tag: object) -> str:
    return str(tag).rpartition("}")[2].lower()


def write_opml(feeds: Sequence[FeedConfig], now: datetime, title: str = "Newswatch feeds") -> str:
    """OPML 2.0 listing `feeds` (http(s) ones; a local file is no subscription)."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(now, usegmt=True)
    body = ET.SubElement(root, "body")
    for feed in feeds:
        if feed.url.startswith(("http://", "https://")):
            ET.SubElement(
                body, "outline", type="rss", text=feed.name, title=feed.name, xmlUrl=feed.url
            )
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"
