"""Feed autodiscovery on pages shaped like news sites' and blogs' heads (tests/data/pages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.discover import FeedLink, decode_page, feed_links

PAGES = Path(__file__).parent / "data" / "pages"


def links_of(name: str, url: str, content_type: str | None = None) -> list[FeedLink]:
    return feed_links(decode_page((PAGES / name).read_bytes(), content_type), url)


def test_a_news_home_page_links_its_feed_by_a_relative_href() -> None:
    assert links_of("wire-home.html", "https://en.wire.example/", "text/html") == [
        FeedLink(
            "https://en.wire.example/RSS/news.xml",
            "Loopback Wire - All news",
            "application/rss+xml",
        )
    ]


def test_a_blog_links_its_posts_and_comments_feeds_and_nothing_else() -> None:
    links = links_of("wordpress-blog.html", "https://alliance.blog.example/")
    assert [(link.url, link.title) for link in links] == [
        ("https://alliance.blog.example/feed/", "Alliance Watch » Feed"),
        ("https://alliance.blog.example/comments/feed/", "Alliance Watch » Comments Feed"),
    ]  # oEmbed, JSON and RSD alternates are not feeds


def test_a_korean_page_in_euc_kr_with_a_base_href_and_upper_case_tags() -> None:
    links = links_of("korean-portal.html", "http://hanbando.example/")
    assert links == [
        FeedLink(
            "https://rss.hanbando.example/politics.xml",  # protocol-relative, against <base>
            "한반도신문 정치 RSS",
            "application/rss+xml",
        ),
        FeedLink(
            "https://www.hanbando.example/news/atom/all.xml",
            "한반도신문 전체 기사 Atom",
            "application/atom+xml",
        ),
    ]


def test_a_page_without_feed_links_has_none() -> None:
    assert links_of("no-feed.html", "https://mnd.example/") == []


@pytest.mark.parametrize(
    "href", ["javascript:alert(1)", "file:///etc/passwd", "data:text/xml,<rss/>", "  "]
)
def test_only_http_links_are_taken(href: str) -> None:
    page = f'<link rel="alternate" type="application/rss+xml" href="{href}">'
    assert feed_links(page, "https://site.example/") == []


def test_the_same_feed_linked_twice_is_listed_once() -> None:
    page = (
        '<link rel="alternate" type="application/rss+xml" href="/rss">'
        '<link rel="alternate" type="application/rss+xml" href="https://site.example/rss">'
    )
    assert [link.url for link in feed_links(page, "https://site.example/")] == [
        "https://site.example/rss"
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("한국어".encode("euc-kr"), "text/html; charset=EUC-KR", "한국어"),
        ('<meta charset="euc-kr">한국어'.encode("euc-kr"), "text/html", "한국어"),
        ("한국어".encode(), None, "한국어"),
        ("한국어".encode(), "text/html; charset=no-such-charset", "한국어"),
    ],
)
def test_pages_are_decoded_by_header_then_meta_then_utf8(
    body: bytes, content_type: str | None, expected: str
) -> None:
    assert expected in decode_page(body, content_type)
