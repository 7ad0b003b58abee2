"""A search-box query → the full-text index's MATCH expression and the substrings to scan for."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.summarize import MARK_END, MARK_START

MIN_INDEXED_CHARS = 3  # the trigram index finds nothing shorter: such words are scanned for
EXCERPT_CHARS = 160  # an excerpt's length around the first hit, when the index gives none
# Quotes, parentheses, prefix stars, column filters, `^`, `+` and the operators (upper case,
# as FTS5 spells them) make a query an FTS5 expression, passed on as written.
FTS_SYNTAX = re.compile(r'["()*:^+{}]|\b(?:AND|OR|NOT|NEAR)\b')


@dataclass(frozen=True)
class SearchPlan:
    """How to run a query: an FTS5 MATCH (None: none) AND every substring in some field."""

    match: str | None
    substrings: tuple[str, ...] = ()


def plan_search(query: str) -> SearchPlan:
    """Plain words all have to occur (each a substring, Korean particles and English endings
    allowed); words of fewer than three characters, which the index cannot find, are scanned
    for among the index's hits (or among every article when no word is long enough).
    A query using FTS5 syntax is passed on as written.
    """
    text = query.strip()
    if not text:
        raise ValueError("empty search query")
    if FTS_SYNTAX.search(text):
        return SearchPlan(text)
    words = text.split()
    indexed = [w for w in words if len(w) >= MIN_INDEXED_CHARS]
    short = tuple(w for w in words if len(w) < MIN_INDEXED_CHARS)
    return SearchPlan(" ".join(f'"{w}"' for w in indexed) or None, short)


def excerpt(text: str, needle: str, width: int = EXCERPT_CHARS) -> str:
    """`width` characters of `text` around the first `needle` (any case), the needle marked."""
    at = text.casefold().find(needle.casefold())
    if at < 0 or not needle:
        return text[:width] + ("…" if len(text) > width else "")
    start = max(0, at - (width - len(needle)) // 2)
    end = min(len(text), start + width)
    cut = at + len(needle)
    return (
        ("…" if start else "")
        + text[start:at]
        + MARK_START
        + text[at:cut]
        + MARK_END
        + text[cut:end]
        + ("…" if end < len(text) else "")
    )
