"""The SQLite store: migrations, idempotent seen/outbox writes, notices, rule snapshots."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.models import AlertContent, Article
from bot.schedule import Polling
from bot.store import (
    MIGRATIONS,
    AlertCounts,
    NotModified,
    Store,
    decode_content,
    encode_content,
    schema_version,
)

NOW = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)


def article(key: str, cross: str | None = None, feed: str = "wire") -> Article:
    return Article(
        feed=feed,
        feed_key=key,
        cross_key=cross or f"url:https://example.com/{key}",
        title=f"Title {key}",
        link=f"https://example.com/{key}",
        summary="",
        content="",
        published=NOW,
        source="Wire",
    )


def content(channel: str = "#korea-security", title: str = "Title") -> AlertContent:
    return AlertContent(
        channel=channel,
        title=title,
        link="https://example.com/a",
        source="Wire",
        published=NOW,
        rules=("usfk",),
        terms=("28,500",),
        summary=("About \x0228,500\x03 troops.",),
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "state.db")
    yield s
    s.close()


def test_migrations_run_once_and_are_recorded(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    latest = MIGRATIONS[-1][0]
    assert Store.open(path).migrate() == latest
    reopened = Store.open(path)
    assert reopened.migrate() == latest  # nothing left to apply
    reopened.close()


def test_a_version_1_database_keeps_its_feeds_and_gains_polling_state(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # the database as the first release left it
        schema_version.create(conn)
        MIGRATIONS[0][1](conn)
        conn.execute(schema_version.insert().values(version=1))
    engine.dispose()
    old = Store(sa.create_engine(f"sqlite:///{path}"))
    old.record_failure("wire", "https://wire.example/rss", "HTTP 500", NOW)
    old.close()
    store = Store.open(path)
    state = store.feed_state("wire")
    assert state is not None and state.consecutive_failures == 1
    assert state.polling == Polling()  # nothing learned yet
    later = Polling(next_poll_at=NOW, next_poll_reason="backoff", effective_url="https://n.example")
    store.save_polling("wire", "https://wire.example/rss", later)
    assert store.feed_states()[0].polling == later
    store.close()


def test_seen_articles_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = Store.open(path)
    first.record_poll("wire", "u", [article("a")], [], etag='"v1"', last_modified=None, now=NOW)
    first.close()
    second = Store.open(path)
    assert second.unseen("wire", ["a", "b"]) == {"b"}
    state = second.feed_state("wire")
    assert state is not None and state.etag == '"v1"' and state.first_polled_at == NOW
    second.close()


def test_seen_is_per_feed(store: Store) -> None:
    store.record_poll("wire", "u", [article("a")], [], etag=None, last_modified=None, now=NOW)
    assert store.unseen("other", ["a"]) == {"a"}


def test_one_alert_per_channel_and_article_even_from_two_feeds(store: Store) -> None:
    a1, a2 = article("a", "url:https://x/1", "wire"), article("zz", "url:https://x/1", "agency")
    queued1 = store.record_poll(
        "wire", "u", [a1], [(a1, content())], etag=None, last_modified=None, now=NOW
    )
    queued2 = store.record_poll(
        "agency", "u2", [a2], [(a2, content())], etag=None, last_modified=None, now=NOW
    )
    other_channel = store.record_poll(
        "agency", "u2", [], [(a2, content("#other"))], etag=None, last_modified=None, now=NOW
    )
    assert (queued1, queued2, other_channel) == (1, 0, 1)
    assert store.alert_counts().pending == 2


def test_pending_alerts_come_due_in_order_and_are_marked_sent(store: Store) -> None:
    arts = [article(k) for k in "abc"]
    store.record_poll(
        "wire",
        "u",
        arts,
        [(a, content(title=a.feed_key)) for a in arts],
        etag=None,
        last_modified=None,
        now=NOW,
    )
    due = store.due_alerts(NOW)
    assert [d.content.title for d in due] == ["a", "b", "c"]
    store.mark_sent(due[0].id, "1.0001", "C1", NOW)
    store.mark_failed(due[1].id, "ratelimited", NOW + timedelta(seconds=30))
    assert store.due_alerts(NOW + timedelta(seconds=30))[0].attempts == 1
    assert store.alert_counts() == AlertCounts(pending=2, sent=1)


def test_a_channel_waiting_to_retry_its_oldest_alert_sends_nothing_newer(store: Store) -> None:
    arts = [article(k) for k in "abc"]
    channels = ["#korea-security", "#korea-security", "#other"]
    store.record_poll(
        "wire",
        "u",
        arts,
        [(a, content(ch, a.feed_key)) for a, ch in zip(arts, channels, strict=True)],
        etag=None,
        last_modified=None,
        now=NOW,
    )
    first = store.due_alerts(NOW)[0]
    store.mark_failed(first.id, "ratelimited", NOW + timedelta(seconds=30))
    assert [d.content.title for d in store.due_alerts(NOW)] == ["c"]  # only the other channel
    later = store.due_alerts(NOW + timedelta(seconds=30))
    assert [d.content.title for d in later] == ["a", "b", "c"]


def test_failures_count_up_and_success_resets_them(store: Store) -> None:
    assert store.record_failure("wire", "u", "HTTP 500", NOW) == 1
    assert store.record_failure("wire", "u", "HTTP 500", NOW) == 2
    store.record_not_modified("wire", "u", NOW)
    state = store.feed_state("wire")
    assert state is not None and state.consecutive_failures == 0
    assert state.first_polled_at is None  # a 304 or failure is not a first successful poll


def test_notices_are_told_once_per_change(store: Store) -> None:
    assert store.set_notice("feed:x", True, "down", NOW) is True
    assert store.set_notice("feed:x", True, "down", NOW) is False
    assert store.active_notices() == [("feed:x", "down")]
    assert store.set_notice("feed:x", False, "up", NOW) is True
    assert store.set_notice("feed:x", False, "up", NOW) is False
    assert store.set_notice("feed:never", False, "up", NOW) is False


def test_rule_snapshots_are_replaced_by_newer_good_versions(store: Store) -> None:
    store.save_rule_snapshots({"/r/a.yaml": "v1"}, NOW)
    store.save_rule_snapshots({"/r/a.yaml": "v2"}, NOW)
    assert store.rule_snapshots() == {"/r/a.yaml": "v2"}


def test_alert_content_round_trips_through_json() -> None:
    original = content()
    assert decode_content(encode_content(original)) == original


def test_database_errors_become_store_errors_naming_the_database(tmp_path: Path) -> None:
    from bot.errors import StoreError

    path = tmp_path / "state.db"
    store = Store.open(path)
    store.engine.dispose()
    path.unlink()
    path.mkdir()  # the database file is now a folder: every statement fails
    with pytest.raises(StoreError, match=r"state\.db"):
        store.feed_state("wire")


def test_polling_state_is_written_whole_the_first_time_and_then_by_its_changes(
    store: Store,
) -> None:
    first = Polling(next_poll_at=NOW, next_poll_reason="interval", last_new_at=NOW)
    store.record_not_modified("wire", "u", NOW, first, previous=Polling())  # no row yet
    assert store.feed_states()[0].polling == first
    later = Polling(next_poll_at=NOW + timedelta(minutes=10), next_poll_reason="interval")
    later = replace(later, last_new_at=NOW)
    store.record_not_modified("wire", "u", NOW, later, previous=first)
    assert store.feed_states()[0].polling == later
    failing = replace(later, next_poll_reason="backoff", failing_since=NOW)
    assert store.record_failure("wire", "u", "HTTP 500", NOW, failing, previous=later) == 1
    assert store.feed_states()[0].polling == failing


def test_a_group_of_304s_records_each_feed_new_or_known_with_its_own_changes(
    store: Store,
) -> None:
    first = Polling(next_poll_at=NOW, next_poll_reason="interval")
    store.record_not_modified("a", "ua", NOW, first, previous=None)
    store.record_not_modified("b", "ub", NOW, first, previous=None)
    later = NOW + timedelta(minutes=10)
    a = replace(first, next_poll_at=later)
    b = replace(first, next_poll_at=later + timedelta(seconds=7), next_poll_reason="feed hint")
    c = replace(first, next_poll_at=later)
    store.record_not_modified_many(
        [
            NotModified("a", "ua", later, a, previous=first),
            NotModified("b", "ub2", later, b, previous=first),
            NotModified("c", "uc", later, c, previous=Polling()),  # no rows at all yet
            NotModified("d", "ud", later),  # nothing about its polling changed
        ]
    )
    states = {s.name: s for s in store.feed_states()}
    assert (states["a"].polling, states["b"].polling, states["c"].polling) == (a, b, c)
    assert states["b"].url == "ub2" and states["d"].polling == Polling()
    for name in "abcd":
        assert states[name].last_polled_at == states[name].last_success_at == later
        assert states[name].consecutive_failures == 0
