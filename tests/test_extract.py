"""The main text of article pages (trafilatura), and which articles and answers get one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.extract import MAX_TEXT_CHARS, main_text
from bot.fulltext import page_input, page_type_refused, wanted, with_text
from bot.models import Candidate
from tests.factories import article
from tests.pages import FILLER, article_page, page_without_text

NOW = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)
KEY = "The brigade stationed at Camp Humphreys will rotate home next spring."


def test_the_main_text_keeps_the_articles_paragraphs_and_drops_menus_and_footers() -> None:
    text = main_text(article_page("Allies hold talks", KEY).encode(), "https://wire.example/a")
    assert text is not None
    assert KEY in text and FILLER[0] in text
    for chrome in ("Most read", "Copyright 2025", "We use cookies", "North Korea</a>"):
        assert chrome not in text


def test_a_korean_page_in_its_declared_encoding_is_read() -> None:
    sentence = "주한미군 감축 문제가 한미 국방장관 회담의 주요 의제로 다뤄졌다고 국방부가 밝혔다."
    page = article_page("한미 국방장관 회담", sentence, sentence.replace("감축", "순환배치"))
    euc_kr = page.replace('charset="utf-8"', 'charset="euc-kr"').replace(
        '<meta charset="utf-8">', '<meta charset="euc-kr">'
    )
    text = main_text(euc_kr.encode("euc-kr", errors="ignore"))
    assert text is not None and "주한미군 감축" in text


@pytest.mark.parametrize(
    "page",
    [page_without_text(), "", "   ", "<html><body><p>Short teaser.</p></body></html>", "\x00\x01"],
)
def test_a_page_without_main_text_gives_none(page: str) -> None:
    assert main_text(page) is None
    assert main_text(page.encode()) is None


def test_the_main_text_is_capped() -> None:
    long = " ".join(f"Paragraph sentence number {n} about the alliance." for n in range(4000))
    text = main_text(article_page("Long", long))
    assert text is not None and len(text) == MAX_TEXT_CHARS


def test_the_page_text_replaces_the_content_only_when_it_says_more() -> None:
    teaser = article(summary="Allies met in Seoul.", content="")
    assert with_text(teaser, "x" * 300) == article(
        summary="Allies met in Seoul.", content="x" * 300
    )
    full = article(summary="Allies met.", content="y" * 500)
    assert with_text(full, "x" * 300) is None  # a paywall page is shorter than the feed's text
    assert with_text(teaser, None) is None


@pytest.mark.parametrize(
    ("content_type", "refused"),
    [
        ("text/html; charset=utf-8", False),
        ("application/xhtml+xml", False),
        ("", False),  # no type: let the extractor decide
        ("application/pdf", True),
        ("image/jpeg", True),
        ("application/rss+xml", True),
    ],
)
def test_only_web_pages_are_read(content_type: str, refused: bool) -> None:
    headers = {"content-type": content_type} if content_type else {}
    assert (page_type_refused(headers) is not None) is refused


def test_pages_are_wanted_for_new_linked_articles_once_per_cross_feed_key() -> None:
    fresh = article(feed_key="a", cross_key="url:x")
    same = article(feed_key="b", cross_key="url:x")  # the same story twice in one feed
    seen = article(feed_key="c", cross_key="url:c")
    unlinked = article(feed_key="d", cross_key="hash:d", link=None)
    old = article(feed_key="e", cross_key="url:e", published=NOW - timedelta(days=3))
    candidates = [Candidate(a, ()) for a in (fresh, same, seen, unlinked, old)]
    unseen = {"a", "b", "d", "e"}
    later = wanted(candidates, unseen, first_poll=False, backlog=timedelta(hours=24), now=NOW)
    assert later == [fresh, old]
    first = wanted(candidates, unseen, first_poll=True, backlog=timedelta(hours=24), now=NOW)
    assert first == [fresh]  # outside the backlog window it cannot alert: no page for it


def test_a_page_whose_charset_only_the_server_declares_is_read_in_it() -> None:
    sentence = "주한미군 감축 문제가 한미 국방장관 회담의 주요 의제로 다뤄졌다고 국방부가 밝혔다."
    page = article_page("한미 국방장관 회담", sentence, sentence.replace("감축", "순환배치"))
    body = page.replace('<meta charset="utf-8">', "").encode("euc-kr", errors="ignore")
    declared = page_input(body, {"content-type": "text/html; charset=EUC-KR"})
    text = main_text(declared)
    assert text is not None and "주한미군 감축" in text
    assert page_input(body, {"content-type": "text/html"}) == body  # left to the extractor
    assert page_input(body, {"content-type": "text/html; charset=nonsense"}) == body
