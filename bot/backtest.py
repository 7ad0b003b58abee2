"""A rule tried on the archive: what it would have matched, what was alerted, counts per day."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from bot.index import RuleIndex
from bot.models import Article, Rule, parse_duration

ALERTED = "alerted"  # the rule's channel got an alert for the article naming this rule
OTHER_RULES = "alerted by other rules"  # the channel got it, for other rules only
NOT_ALERTED = "not alerted"


@dataclass(frozen=True)
class BacktestHit:
    """An archived article the rule matches: its time, the terms that fired, what happened."""

    article: Article
    at: datetime
    terms: tuple[str, ...]
    outcome: str  # ALERTED, OTHER_RULES or NOT_ALERTED


@dataclass(frozen=True)
class DayCount:
    day: date
    matched: int
    alerted: int


@dataclass(frozen=True)
class Backtest:
    """The whole answer: the window, how many articles it held, the matches and the days."""

    rule: Rule
    since: datetime
    until: datetime
    scanned: int
    hits: tuple[BacktestHit, ...]  # newest first, one per article (cross-feed key)
    days: tuple[DayCount, ...]  # oldest first, days with a match only

    @property
    def alerted(self) -> int:
        return sum(1 for h in self.hits if h.outcome == ALERTED)


def parse_moment(text: str) -> timedelta | datetime:
    """`7d`, `24h`, `30m` (that long ago) or an ISO date or time (UTC unless it says)."""
    try:
        return parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"not a duration or a date: {text!r} (use e.g. 7d, 24h, 30m or 2025-07-30)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def resolve(moment: timedelta | datetime, now: datetime) -> datetime:
    return now - moment if isinstance(moment, timedelta) else moment.astimezone(UTC)


def match_archive(
    rule: Rule, archived: Iterable[tuple[Article, datetime]]
) -> tuple[list[tuple[Article, datetime, tuple[str, ...]]], int]:
    """The archived articles the rule matches (the real matcher, as a poll runs it), each
    article once however many feeds carried it; and how many articles were read."""
    found: dict[str, tuple[Article, datetime, tuple[str, ...]]] = {}
    scanned = 0
    index = RuleIndex([rule])  # compiled once for the whole archive
    for article, at in archived:
        scanned += 1
        for _, match in index.matches(article):
            earlier = found.get(article.cross_key)
            if earlier is None or at < earlier[1]:
                found[article.cross_key] = (article, at, match.terms)
    return list(found.values()), scanned


def backtest(
    rule: Rule,
    matched: Iterable[tuple[Article, datetime, tuple[str, ...]]],
    alerted: Mapping[str, tuple[str, ...]],
    *,
    since: datetime,
    until: datetime,
    scanned: int,
    tz: tzinfo = UTC,
) -> Backtest:
    """Mark each match by what was alerted (article key → the rules its alert named, in the
    rule's channel) and count matches and alerts per day in `tz`."""
    hits = []
    for article, at, terms in matched:
        rules = alerted.get(article.cross_key)
        outcome = NOT_ALERTED if rules is None else ALERTED if rule.name in rules else OTHER_RULES
        hits.append(BacktestHit(article, at, terms, outcome))
    hits.sort(key=lambda h: (h.at, h.article.cross_key), reverse=True)
    per_day: dict[date, list[int]] = {}
    for hit in hits:
        counts = per_day.setdefault(hit.at.astimezone(tz).date(), [0, 0])
        counts[0] += 1
        counts[1] += hit.outcome == ALERTED
    days = tuple(DayCount(day, m, a) for day, (m, a) in sorted(per_day.items()))
    return Backtest(rule, since, until, scanned, tuple(hits), days)


def render_text(result: Backtest, tz: tzinfo, show: Callable[[datetime], str]) -> str:
    """The report for a terminal: a header, one block per match, the table of days."""
    rule = result.rule
    lines = [
        f"rule {rule.name} ({rule.channel}), articles from {show(result.since)} "
        f"to {show(result.until)}: {result.scanned} archived, {len(result.hits)} matched, "
        f"{result.alerted} alerted"
    ]
    for hit in result.hits:
        mark = {ALERTED: "ALERTED", OTHER_RULES: "other  ", NOT_ALERTED: "new    "}[hit.outcome]
        lines.append(f"{mark}  {show(hit.at)}  {hit.article.source}  {hit.article.title}")
        lines.append(f"         matched: {', '.join(hit.terms)}")
        if hit.article.link:
            lines.append(f"         {hit.article.link}")
    if result.days:
        lines.append(f"per day ({tz}):  matched  alerted")
        lines += [f"{d.day.isoformat()}       {d.matched:7d}  {d.alerted:7d}" for d in result.days]
    lines.append(
        "ALERTED: alerted for this rule; other: alerted in the channel for other rules only; "
        "new: not alerted"
    )
    return "\n".join(lines) + "\n"


def render_json(result: Backtest) -> str:
    """One JSON document: the window, each match and the days."""
    return json.dumps(
        {
            "rule": result.rule.name,
            "channel": result.rule.channel,
            "since": result.since.isoformat(),
            "until": result.until.isoformat(),
            "scanned": result.scanned,
            "matched": len(result.hits),
            "alerted": result.alerted,
            "matches": [
                {
                    "title": h.article.title,
                    "source": h.article.source,
                    "feed": h.article.feed,
                    "link": h.article.link,
                    "at": h.at.isoformat(),
                    "terms": list(h.terms),
                    "outcome": h.outcome,
                }
                for h in result.hits
            ],
            "days": [
                {"day": d.day.isoformat(), "matched": d.matched, "alerted": d.alerted}
                for d in result.days
            ],
        },
        ensure_ascii=False,
        indent=2,
    )


def window_notes(
    count: int, kept_since: datetime | None, since: datetime, retention: timedelta, now: datetime
) -> list[str]:
    """What the reader must know about the window: an empty archive, a start past retention."""
    if count == 0:
        return [
            "the archive is empty: articles are kept from their first poll on "
            "(run the bot, or `newswatch run --once`, first)"
        ]
    notes = []
    horizon = now - retention
    if since < horizon:
        notes.append(
            f"the window starts before the retention ({retention.days} days): articles first "
            f"seen before {horizon:%Y-%m-%d %H:%M} UTC are no longer kept"
        )
    elif kept_since is not None and since < kept_since:
        notes.append(
            f"the archive only goes back to {kept_since:%Y-%m-%d %H:%M} UTC (its first poll)"
        )
    return notes
