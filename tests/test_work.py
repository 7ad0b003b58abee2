"""The worker's pure steps: one alert per channel naming every rule, and the terms shown."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.models import Article, Rule
from bot.query import parse_query
from bot.work import alerts_for, shown_terms


def rule(name: str, query: str, channel: str = "#korea-security", **kw: object) -> Rule:
    return Rule(name=name, query=query, channel=channel, expr=parse_query(query), **kw)  # type: ignore[arg-type]


ARTICLE = Article(
    feed="wire",
    feed_key="k",
    cross_key="url:https://e.com/k",
    title="Seoul to take back wartime operational control",
    link="https://e.com/k",
    summary="The OPCON transfer keeps 28,500 U.S. troops in South Korea.",
    content="",
    published=datetime(2025, 8, 1, tzinfo=UTC),
    source="Wire",
)


def test_terms_contained_in_a_longer_matched_term_are_not_shown() -> None:
    assert shown_terms(
        ["wartime operational control", "operational control", "OPCON", "wartime", "OPCON"]
    ) == ("wartime operational control", "OPCON")
    assert shown_terms(["troop*", '"troop* in South Korea"', "Korea"]) == (
        '"troop* in South Korea"',
    )


def test_one_alert_per_channel_names_every_rule_that_matched() -> None:
    alerts = alerts_for(
        ARTICLE,
        [
            rule("opcon", '"wartime operational control"'),
            rule("usfk", "28,500"),
            rule("elsewhere", "OPCON", channel="#other"),
            rule("nope", "Japan"),
        ],
    )
    by_channel = {a.channel: a for a in alerts}
    assert set(by_channel) == {"#korea-security", "#other"}
    assert by_channel["#korea-security"].rules == ("opcon", "usfk")
    assert by_channel["#korea-security"].terms == ("wartime operational control", "28,500")
    assert 1 <= len(by_channel["#korea-security"].summary) <= 3


def test_rules_limited_to_other_feeds_are_skipped() -> None:
    assert alerts_for(ARTICLE, [rule("opcon", "OPCON", feeds=("another",))]) == ()
