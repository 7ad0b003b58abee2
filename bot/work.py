"""The CPU-bound part of a poll, run in a worker process: parse → normalize → match → summarize."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.explain import explain
from bot.index import RuleIndex, Shipped, index_of
from bot.models import FIELDS, AlertContent, Article, Candidate, Rule, RuleMatch
from bot.normalize import normalize_entries
from bot.parse import parse_feed
from bot.story import Signature, signature
from bot.summarize import summarize
from bot.textnorm import words


@dataclass(frozen=True)
class Processed:
    candidates: tuple[Candidate, ...]
    bozo_reason: str | None  # the feed was broken but still readable
    ttl_minutes: int | None = None  # the feed's own <ttl>, a hint for the next poll
    signatures: dict[str, Signature] = field(default_factory=dict)  # alerting articles, by key


def process_body(
    body: bytes,
    headers: dict[str, str],
    feed: str,
    url: str,
    rules: RuleIndex | Shipped | Sequence[Rule],
    now: datetime,
) -> Processed:
    """Everything between the fetched bytes and the store; raises ParseError for a non-feed.

    In a worker process `rules` is the index in force as `RuleIndex.ship` sends it: the
    worker keeps each generation it receives, and raises IndexMissing (before parsing) when
    it lacks the one named, so that the caller sends it along.
    """
    index = index_of(rules)
    parsed = parse_feed(body, headers, feed=feed, url=url)
    articles = normalize_entries(parsed, feed, now)
    candidates = tuple(Candidate(a, alerts_for(a, index)) for a in articles)
    return Processed(
        candidates,
        parsed.bozo_reason if parsed.bozo else None,
        parsed.ttl_minutes,
        signatures_of(candidates),
    )


def match_articles(
    articles: Sequence[Article], rules: RuleIndex | Shipped | Sequence[Rule]
) -> tuple[tuple[Candidate, ...], dict[str, Signature]]:
    """Candidates, and the story signatures of those that alert, for articles whose text
    changed after parsing (full text from their page)."""
    index = index_of(rules)
    candidates = tuple(Candidate(a, alerts_for(a, index)) for a in articles)
    return candidates, signatures_of(candidates)


def signatures_of(candidates: Sequence[Candidate]) -> dict[str, Signature]:
    """The near-duplicate signature of each article that alerts, by its feed key."""
    return {c.article.feed_key: signature(c.article) for c in candidates if c.alerts}


def matches_for(
    article: Article, rules: RuleIndex | Sequence[Rule]
) -> list[tuple[Rule, RuleMatch]]:
    """Every rule that matches the article (rules limited to other feeds are skipped), each
    with its explanation. Given many rules, compile them once (`RuleIndex(rules)`) and pass
    the index for every article."""
    texts = {name: article.field_text(name) for name in FIELDS}  # as Document matches them
    return [(rule, explain(match, texts)) for rule, match in index_of(rules).matches(article)]


def alerts_for(article: Article, rules: RuleIndex | Sequence[Rule]) -> tuple[AlertContent, ...]:
    """One alert per channel, naming every rule that matched for that channel."""
    by_channel: dict[str, list[RuleMatch]] = {}
    for rule, match in index_of(rules).matches(article):
        by_channel.setdefault(rule.channel, []).append(match)
    return tuple(
        AlertContent(
            channel=channel,
            title=article.title,
            link=article.link,
            source=article.source,
            published=article.published,
            rules=tuple(m.rule for m in matches),
            terms=shown_terms([t for m in matches for t in m.terms]),
            summary=summarize(article, matches),
        )
        for channel, matches in by_channel.items()
    )


def shown_terms(terms: Sequence[str]) -> tuple[str, ...]:
    """The matched terms worth showing: each once, none that a longer matched term contains.

    `operational control` adds nothing beside `wartime operational control`, nor `troop*`
    beside `troop* in South Korea`.
    """
    distinct = list(dict.fromkeys(terms))
    spelled = [words(term.replace("*", "")) for term in distinct]

    def inside(short: tuple[str, ...], long: tuple[str, ...]) -> bool:
        n = len(short)
        return 0 < n < len(long) and any(long[i : i + n] == short for i in range(len(long) - n + 1))

    return tuple(
        term
        for term, mine in zip(distinct, spelled, strict=True)
        if not any(inside(mine, other) for other in spelled)
    )
