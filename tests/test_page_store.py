"""The store's article pages: kept by cross-feed key (the first answer wins), counted per feed,
forgotten after the retention window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.models import ArticlePage
from bot.store import PAGE_RETENTION, PageCounts, Store

NOW = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state.db")
    yield s
    s.close()


def test_pages_are_found_by_cross_key_and_the_first_answer_wins(store: Store) -> None:
    store.record_pages(
        "a", [ArticlePage("url:1", "full text"), ArticlePage("url:2", None, "404")], NOW
    )
    store.record_pages("b", [ArticlePage("url:1", None, "HTTP 500")], NOW)
    found = store.cached_pages(["url:1", "url:2", "url:3"])
    assert found == {
        "url:1": ArticlePage("url:1", "full text"),
        "url:2": ArticlePage("url:2", None, "404"),
    }


def test_many_keys_are_looked_up_in_batches(store: Store) -> None:
    pages = [ArticlePage(f"url:{n}", f"text {n}") for n in range(1200)]
    store.record_pages("a", pages, NOW)
    assert len(store.cached_pages([p.cross_key for p in pages])) == 1200


def test_each_feed_counts_its_pages_and_its_last_failure(store: Store) -> None:
    store.record_pages(
        "a", [ArticlePage("url:1", "t"), ArticlePage("url:2", None, "HTTP 404")], NOW
    )
    later = NOW + timedelta(minutes=5)
    store.record_pages("a", [ArticlePage("url:3", None, "the page has no main text")], later)
    store.record_pages("b", [ArticlePage("url:4", "t")], later)
    assert store.page_counts() == {
        "a": PageCounts(3, 2, "the page has no main text"),
        "b": PageCounts(1, 0, None),
    }


def test_pages_older_than_the_retention_window_are_forgotten(store: Store) -> None:
    store.record_pages("a", [ArticlePage("url:old", "t")], NOW)
    store.record_pages("a", [ArticlePage("url:new", "t")], NOW + PAGE_RETENTION + timedelta(1))
    assert list(store.cached_pages(["url:old", "url:new"])) == ["url:new"]
