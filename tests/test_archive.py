"""The archive: what a poll keeps, how long, capped how; search planning and backtest windows."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.backtest import parse_moment, resolve, window_notes
from bot.cli import main
from bot.clock import FixedClock
from bot.config import ARCHIVE_RETENTION, load_config
from bot.errors import ConfigError, SearchError
from bot.models import Article
from bot.search import SearchPlan, excerpt, plan_search
from bot.store import Store
from bot.store.archive import MAX_ARCHIVED_TEXT_CHARS
from bot.store.schema import ARCHIVE_FTS_AUTOMERGE
from tests.e2e import Item, make_app, rss, write_config
from tests.feedserver import FeedServer
from tests.slackdouble import SlackDouble

pytestmark = pytest.mark.timeout(120)
NOW = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)


def article(key: str, title: str, content: str = "", published: datetime | None = None) -> Article:
    return Article(
        feed="wire",
        feed_key=key,
        cross_key=f"url:https://wire.example/{key}",
        title=title,
        link=f"https://wire.example/{key}",
        summary="",
        content=content,
        published=published,
        source="Wire",
    )


def quiet_config(tmp_path: Path) -> Path:
    """A config whose one feed is never polled by these tests."""
    return write_config(tmp_path, {"wire": "http://127.0.0.1:9/wire.xml"})


def record(store: Store, articles: list[Article], now: datetime) -> None:
    store.record_poll(
        "wire", "https://wire.example/rss", articles, [], etag=None, last_modified=None, now=now
    )


def test_a_poll_archives_its_new_articles_once_however_often_they_are_seen(
    tmp_path: Path,
) -> None:
    store = Store.open(tmp_path / "state.db")
    try:
        first = [article("a", "Troop levels debated", published=NOW - timedelta(hours=1))]
        record(store, first, NOW)
        record(store, first, NOW + timedelta(minutes=10))  # a restart re-reading the same entry
        span = store.archive_span()
        assert span.count == 1
        assert span.oldest == NOW - timedelta(hours=1)  # its place in time: when published
        assert span.first_seen == NOW
        (kept,) = store.archived(NOW - timedelta(days=1), NOW + timedelta(days=1))
        assert kept.article == first[0]
    finally:
        store.close()


def test_an_undated_or_future_dated_article_is_placed_when_first_seen(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    try:
        future = article("b", "From the future", published=NOW + timedelta(days=1))
        record(store, [article("a", "Undated"), future], NOW)
        assert {a.at for a in store.archived(NOW, NOW + timedelta(seconds=1))} == {NOW}
    finally:
        store.close()


def test_oversized_text_is_capped_in_the_archive(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    try:
        huge = "주한미군 " * 200_000  # a megabyte-sized description
        record(store, [article("a", "Huge", content=huge)], NOW)
        (kept,) = store.archived(NOW - timedelta(1), NOW + timedelta(1))
        assert len(kept.article.content) == MAX_ARCHIVED_TEXT_CHARS
    finally:
        store.close()


def test_search_escapes_like_wildcards_in_short_words(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    try:
        record(store, [article("a", "50% cut"), article("b", "5 cut")], NOW)
        assert [h.title for h in store.search_archive("0%")] == ["50% cut"]
        assert [h.title for h in store.search_archive("_")] == []
    finally:
        store.close()


def test_search_reports_a_bad_query_as_a_search_error(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    try:
        with pytest.raises(SearchError, match="not a valid search"):
            store.search_archive('"unterminated')
        with pytest.raises(SearchError, match="empty search query"):
            store.search_archive("   ")
    finally:
        store.close()


def test_articles_past_the_retention_are_pruned_as_time_passes(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble
) -> None:
    clock = FixedClock(NOW)
    old = Item("old", "Garrison drill postponed", "Nothing else.", NOW - timedelta(hours=1))
    feed_server.add("/wire.xml", rss([old]))
    config = write_config(tmp_path, {"wire": feed_server.url("/wire.xml")})
    with config.open("a", encoding="utf-8") as file:
        file.write("archive:\n  retention: 2d\n")

    async def scenario() -> None:
        app = make_app(config, slack_double, clock)
        try:
            await app.run_once()
            clock.advance(days=1)
            new = Item("new", "Garrison relocation planned", "More.", clock.now())
            feed_server.add("/wire.xml", rss([new, old]), etag='"two"')
            await app.run_once()
            assert app.rt.store.archive_span().count == 2

            clock.advance(days=1, minutes=30)  # the first article is 2 days 30 min old
            await app.run_once()
            assert [h.title for h in app.rt.store.search_archive("Garrison")] == [new.title]
            assert app.rt.store.search_archive("postponed") == []  # gone from the index too
            assert app.rt.store.archive_span().first_seen == NOW + timedelta(days=1)

            clock.advance(days=1)  # the second article is now 2 days 30 min old too
            await app.tick()  # the running bot prunes from its tick, once an hour
            await app.settle()
            assert app.rt.store.archive_span().count == 0
        finally:
            await app.settle()
            await app.close()

    asyncio.run(scenario())


def test_the_retention_is_read_from_the_config(tmp_path: Path) -> None:
    config = quiet_config(tmp_path)
    assert load_config(config).archive_retention == ARCHIVE_RETENTION == timedelta(days=30)
    with config.open("a", encoding="utf-8") as file:
        file.write("archive:\n  retention: 90d\n")
    assert load_config(config).archive_retention == timedelta(days=90)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("retention: soon", "not a duration"),
        ("retention: 2h", "archive.retention must be a duration of at least 1d"),
        ("keep: 30d", "unknown key 'keep'"),
    ],
)
def test_a_bad_retention_is_reported_with_its_line(
    tmp_path: Path, value: str, message: str
) -> None:
    config = quiet_config(tmp_path)
    lines = len(config.read_text(encoding="utf-8").splitlines())
    with config.open("a", encoding="utf-8") as file:
        file.write(f"archive:\n  {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert message in caught.value.reason
    assert caught.value.line == lines + 2


@pytest.mark.parametrize(
    ("query", "plan"),
    [
        ("주한미군", SearchPlan('"주한미군"')),
        ("주한미군 사드", SearchPlan('"주한미군"', ("사드",))),
        ("사드 한미", SearchPlan(None, ("사드", "한미"))),
        ("pull-out troops", SearchPlan('"pull-out" "troops"')),
        ("troops OR 주한미군", SearchPlan("troops OR 주한미군")),
        ('"troop levels"', SearchPlan('"troop levels"')),
        ("title:troops", SearchPlan("title:troops")),
    ],
)
def test_a_query_is_planned_as_indexed_words_and_scanned_short_words(
    query: str, plan: SearchPlan
) -> None:
    assert plan_search(query) == plan


def test_an_excerpt_marks_the_first_hit_in_any_case() -> None:
    text = "x" * 300 + " The THAAD battery " + "y" * 300
    shown = excerpt(text, "thaad", width=40)
    assert "\x02THAAD\x03" in shown
    assert shown.startswith("…") and shown.endswith("…")
    assert len(shown) <= 40 + 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("24h", timedelta(hours=24)),
        ("30m", timedelta(minutes=30)),
        ("2025-07-30", datetime(2025, 7, 30, tzinfo=UTC)),
        ("2025-07-30T09:00+09:00", datetime(2025, 7, 30, tzinfo=UTC)),
    ],
)
def test_a_window_edge_is_a_duration_ago_or_a_date(
    text: str, expected: timedelta | datetime
) -> None:
    moment = parse_moment(text)
    assert moment == expected
    assert resolve(moment, NOW) == (NOW - expected if isinstance(expected, timedelta) else expected)


def test_a_window_edge_that_is_neither_is_refused() -> None:
    with pytest.raises(ValueError, match="not a duration or a date: 'last week'"):
        parse_moment("last week")


def test_the_window_notes_say_when_the_archive_cannot_answer() -> None:
    month = timedelta(days=30)
    (empty,) = window_notes(0, None, NOW - timedelta(days=7), month, NOW)
    assert "the archive is empty" in empty
    (old,) = window_notes(5, NOW - month, NOW - timedelta(days=40), month, NOW)
    assert "starts before the retention (30 days)" in old
    (young,) = window_notes(5, NOW - timedelta(days=2), NOW - timedelta(days=7), month, NOW)
    assert "only goes back to" in young
    assert window_notes(5, NOW - month, NOW - timedelta(days=7), month, NOW) == []


def test_backtest_names_the_file_and_line_of_a_broken_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = quiet_config(tmp_path)
    rule = tmp_path / "draft.yaml"
    rule.write_text("name: draft\nquery: >-\n  주한미군 AND\n  (감축\n", encoding="utf-8")
    assert main(["--config", str(config), "backtest", str(rule)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {rule}:4:")
    assert "Traceback" not in err


def test_backtest_on_an_empty_archive_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = quiet_config(tmp_path)
    rule = tmp_path / "draft.yaml"
    rule.write_text("name: draft\nquery: 주한미군\n", encoding="utf-8")
    assert main(["--config", str(config), "backtest", str(rule), "--since", "3d"]) == 0
    out, err = capsys.readouterr()
    assert "note: the archive is empty" in err
    assert "0 archived, 0 matched, 0 alerted" in out


def test_a_bad_since_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = quiet_config(tmp_path)
    with pytest.raises(SystemExit) as caught:
        main(["--config", str(config), "search", "x", "--since", "yesterday"])
    assert caught.value.code == 2
    assert "not a duration or a date: 'yesterday'" in capsys.readouterr().err


def test_a_version_3_database_gains_the_archive_and_its_index(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    Store.open(path).close()
    with sqlite3.connect(path) as db:  # what version 3 had: no archive
        db.executescript(
            "DROP TABLE archive_fts; DROP TABLE archive; "
            "DELETE FROM schema_version WHERE version > 3"
        )
    store = Store.open(path)
    try:
        record(store, [article("a", "Garrison relocation planned")], NOW)
        assert [h.title for h in store.search_archive("relocation")] == [
            "Garrison relocation planned"
        ]
    finally:
        store.close()


def automerge(path: Path) -> int | None:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT v FROM archive_fts_config WHERE k = 'automerge'").fetchone()
    return None if row is None else int(row[0])


def test_the_index_merges_less_eagerly_on_new_and_migrated_databases(tmp_path: Path) -> None:
    """Migration 9 raises FTS5's automerge (default 4) on the existing index, which keeps its
    articles and finds them as before."""
    fresh = tmp_path / "fresh.db"
    Store.open(fresh).close()
    assert automerge(fresh) == ARCHIVE_FTS_AUTOMERGE
    path = tmp_path / "old.db"
    store = Store.open(path)
    record(store, [article("a", "Garrison relocation planned")], NOW)
    store.close()
    with sqlite3.connect(path) as db:  # as version 7 left it: FTS5's defaults
        db.executescript(
            "DELETE FROM archive_fts_config WHERE k = 'automerge'; "
            "DELETE FROM schema_version WHERE version > 7"
        )
    assert automerge(path) is None
    store = Store.open(path)
    try:
        record(store, [article("b", "Relocation of the garrison delayed")], NOW)
        found = [h.title for h in store.search_archive("relocation")]
        assert sorted(found) == [
            "Garrison relocation planned",
            "Relocation of the garrison delayed",
        ]
    finally:
        store.close()
    assert automerge(path) == ARCHIVE_FTS_AUTOMERGE
