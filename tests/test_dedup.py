"""Which articles are new and which alert: first-poll backlog window and undated articles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.dedup import select
from bot.models import AlertContent, Article, Candidate

NOW = datetime(2025, 8, 1, 12, 0, tzinfo=UTC)


def candidate(key: str, published: datetime | None, matches: bool = True) -> Candidate:
    art = Article(
        feed="wire",
        feed_key=key,
        cross_key=f"url:https://e.com/{key}",
        title=key,
        link=None,
        summary="",
        content="",
        published=published,
        source="Wire",
    )
    alert = AlertContent("#c", key, None, "Wire", published, ("r",), ("t",), ("s",))
    return Candidate(art, (alert,) if matches else ())


def keys(selection_alerts: tuple[tuple[Article, AlertContent], ...]) -> list[str]:
    return [a.feed_key for a, _ in selection_alerts]


CANDIDATES = [
    candidate("fresh", NOW - timedelta(hours=2)),
    candidate("old", NOW - timedelta(days=3)),
    candidate("undated", None),
    candidate("nomatch", NOW, matches=False),
]


def test_first_poll_alerts_only_inside_the_backlog_window() -> None:
    chosen = select(
        CANDIDATES,
        ["fresh", "old", "undated", "nomatch"],
        first_poll=True,
        backlog=timedelta(hours=24),
        now=NOW,
    )
    assert keys(chosen.alerts) == ["fresh"]
    assert chosen.held_back == 2
    assert len(chosen.new_articles) == 4  # all recorded as seen, so none alerts later


def test_backlog_all_alerts_on_everything_on_first_poll() -> None:
    chosen = select(CANDIDATES, ["fresh", "old", "undated"], first_poll=True, backlog=None, now=NOW)
    assert keys(chosen.alerts) == ["fresh", "old", "undated"]


def test_backlog_zero_alerts_on_nothing_on_first_poll() -> None:
    chosen = select(CANDIDATES, ["fresh"], first_poll=True, backlog=timedelta(0), now=NOW)
    assert keys(chosen.alerts) == []


def test_after_the_first_poll_every_new_matching_article_alerts() -> None:
    chosen = select(
        CANDIDATES, ["old", "undated"], first_poll=False, backlog=timedelta(hours=24), now=NOW
    )
    assert keys(chosen.alerts) == ["old", "undated"]


def test_articles_already_seen_are_not_new() -> None:
    chosen = select(CANDIDATES, [], first_poll=False, backlog=None, now=NOW)
    assert chosen.new_articles == () and chosen.alerts == ()
