"""Real-world feeds, read in place from the shared corpus, through fetch → parse → normalize."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path

import pytest

from bot.errors import ParseError
from bot.fetch import FetchPolicy, fetch, make_client
from bot.models import Article, FetchResult
from bot.normalize import normalize_entries
from bot.parse import parse_feed
from tests.feedserver import FeedServer
from tests.shared import CORPUS, need

NOW = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)
COUNTS = Path(__file__).parent / "data" / "corpus_feed_counts.json"
EXPECTED: dict[str, int | dict[str, str]] = json.loads(COUNTS.read_text(encoding="utf-8"))
POLICY = FetchPolicy(deadline=5.0, allow_private=(ip_network("127.0.0.0/8"),))
UNSAFE_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def feeds_dir() -> Path:
    return need(CORPUS / "feeds")


def corpus_files() -> list[str]:
    folder = CORPUS / "feeds"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else sorted(EXPECTED)


def read_body(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def pipeline(name: str, body: bytes, headers: dict[str, str], url: str) -> tuple[Article, ...]:
    parsed = parse_feed(body, headers, feed=name, url=url)
    return normalize_entries(parsed, name, NOW)


def check_articles(articles: tuple[Article, ...]) -> None:
    """What every later stage relies on, whatever the feed looked like."""
    assert len({a.feed_key for a in articles}) == len(articles)
    for article in articles:
        assert "\n" not in article.title and not UNSAFE_TEXT.search(article.title)
        assert not UNSAFE_TEXT.search(article.summary + article.content)
        assert article.link is None or article.link.startswith(("http://", "https://"))
        assert article.cross_key.startswith(("url:", "hash:"))
        assert article.published is None or article.published <= NOW
        assert article.published is None or article.published.utcoffset() is not None


def test_every_corpus_file_is_listed_with_its_expected_outcome() -> None:
    assert sorted(p.name for p in feeds_dir().iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", corpus_files())
def test_corpus_feed_yields_its_expected_article_count(name: str) -> None:
    path = need(CORPUS / "feeds" / name)
    expected = EXPECTED[name]
    url = f"https://corpus.example/{name}"
    if isinstance(expected, dict):
        with pytest.raises(ParseError) as caught:
            pipeline(name, read_body(path), {}, url)
        assert caught.value.reason == expected["error"]
        assert caught.value.feed == name
        return
    articles = pipeline(name, read_body(path), {}, url)
    assert len(articles) == expected
    check_articles(articles)


def test_korean_corpus_text_decodes_and_double_escapes_are_undone() -> None:
    path = need(CORPUS / "feeds" / "kr-newsis-politics-2022-07-29.xml")
    articles = pipeline("newsis", read_body(path), {}, "https://corpus.example/newsis")
    text = " ".join(a.title + a.summary + a.content for a in articles)
    assert "&quot;" not in text and "&#039;" not in text and "<br" not in text
    assert sum("가" <= c <= "힣" for c in text) > 10_000


def get(url: str) -> FetchResult:
    async def go() -> FetchResult:
        async with make_client(POLICY) as client:
            return await fetch(client, "corpus", url, etag=None, last_modified=None, policy=POLICY)

    return asyncio.run(go())


def test_gzipped_corpus_feed_served_with_content_encoding_parses(feed_server: FeedServer) -> None:
    path = need(CORPUS / "feeds" / "en-invalid-characters.xml.gz")
    feed_server.add_file("/feed", path, headers={"Content-Encoding": "gzip"})
    fetched = get(feed_server.url("/feed"))
    assert fetched.body == gzip.decompress(path.read_bytes())
    articles = pipeline("gz", fetched.body, fetched.headers, fetched.url)
    assert len(articles) == EXPECTED["en-invalid-characters.xml.gz"]
    check_articles(articles)


def test_served_corpus_feed_supports_conditional_get(feed_server: FeedServer) -> None:
    path = need(CORPUS / "feeds" / "kr-hani-politics-2022-07-30.xml")
    feed_server.add_file("/hani", path)
    first = get(feed_server.url("/hani"))
    assert len(pipeline("hani", first.body, first.headers, first.url)) == 30

    async def again() -> FetchResult:
        async with make_client(POLICY) as client:
            return await fetch(
                client,
                "hani",
                feed_server.url("/hani"),
                etag=first.etag,
                last_modified=first.last_modified,
                policy=POLICY,
            )

    assert asyncio.run(again()).not_modified


def test_feedparser_test_suite_files_never_escape_as_unexpected_exceptions() -> None:
    """2,000+ well-formed, ill-formed and encoding cases: a feed or a ParseError, nothing else."""
    root = need(CORPUS / "feedparser-tests")
    outcomes = {"feed": 0, "error": 0}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            articles = pipeline(path.stem, path.read_bytes(), {}, "https://corpus.example/x")
        except ParseError as error:
            assert error.reason and error.feed == path.stem
            outcomes["error"] += 1
        else:
            check_articles(articles)
            outcomes["feed"] += 1
    assert outcomes["feed"] > 1000
