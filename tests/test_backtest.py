"""A backtest's pure part: matches marked against what was alerted, counted per local day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.backtest import ALERTED, NOT_ALERTED, OTHER_RULES, backtest, match_archive
from bot.models import Article
from bot.rules import load_rule_text

SEOUL = ZoneInfo("Asia/Seoul")
T = datetime(2025, 7, 30, 16, 0, tzinfo=UTC)  # 2025-07-31 01:00 in Seoul


def article(key: str, title: str, feed: str = "wire") -> Article:
    return Article(feed, key, f"url:{key}", title, None, "", "", None, "Wire")


RULE = load_rule_text('name: usfk\nchannel: "#korea"\nquery: 주한미군\n', Path("usfk.yaml"), "#x")


def test_each_article_is_matched_once_however_many_feeds_carried_it() -> None:
    same = article("a", "주한미군 감축설")
    archived = [
        (same, T),
        (Article("other-feed", "a2", same.cross_key, same.title, None, "", "", None, "W"), T),
        (article("b", "날씨"), T),
    ]
    matched, scanned = match_archive(RULE, archived)
    assert scanned == 3
    assert [(a.feed, at, terms) for a, at, terms in matched] == [("wire", T, ("주한미군",))]


def test_matches_are_marked_by_the_alerts_of_the_rules_channel_and_counted_per_local_day() -> None:
    hits = [
        (article("a", "1"), T, ("주한미군",)),
        (article("b", "2"), T - timedelta(hours=2), ("주한미군",)),  # 07-30 23:00 in Seoul
        (article("c", "3"), T + timedelta(hours=1), ("주한미군",)),
    ]
    alerted = {"url:a": ("usfk",), "url:b": ("opcon",)}
    result = backtest(
        RULE,
        hits,
        alerted,
        since=T - timedelta(days=1),
        until=T + timedelta(1),
        scanned=9,
        tz=SEOUL,
    )
    assert [(h.article.feed_key, h.outcome) for h in result.hits] == [
        ("c", NOT_ALERTED),
        ("a", ALERTED),
        ("b", OTHER_RULES),
    ]
    assert [(d.day.isoformat(), d.matched, d.alerted) for d in result.days] == [
        ("2025-07-30", 1, 0),
        ("2025-07-31", 2, 1),
    ]
    in_utc = backtest(RULE, hits, alerted, since=T, until=T, scanned=9, tz=UTC)
    assert [(d.day.isoformat(), d.matched) for d in in_utc.days] == [("2025-07-30", 3)]
    assert result.alerted == 1
