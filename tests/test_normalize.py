"""Normalizing entries: plain text, safe links, stable keys, dates; golden feeds end to end."""

from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.models import Article, ParsedFeed, RawEntry
from bot.normalize import (
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    canonical_url,
    clean_text,
    html_to_text,
    normalize_entries,
    normalize_entry,
    safe_link,
)
from bot.parse import parse_feed

NOW = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)
GOLDEN = Path(__file__).parent / "data" / "feeds"
REGENERATE = os.environ.get("NEWSWATCH_REGEN_GOLDEN") == "1"  # rewrite *.expected.json


def entry(**fields: object) -> RawEntry:
    values: dict[str, object] = {
        "guid": None,
        "link": None,
        "title": "",
        "summary_html": "",
        "content_html": "",
        "published": None,
    }
    values.update(fields)
    return RawEntry(**values)  # type: ignore[arg-type]


def one(raw: RawEntry, now: datetime = NOW) -> Article:
    return normalize_entry(raw, feed="f", source="Source", now=now)


# --- HTML to text ------------------------------------------------------------------------------


def test_html_becomes_text_without_scripts_styles_or_tags() -> None:
    markup = (
        "<style>p{color:red}</style><h1>Head</h1><p>One <b>bold</b> line</p>"
        "<script>alert('x')</script><ul><li>a</li><li>b</li></ul><table><tr><td>1</td>"
        "<td>2</td></tr></table>tail<br>end"
    )
    assert html_to_text(markup) == "Head\n\nOne bold line\n\na\n\nb\n\n1 2\n\ntail\nend"


def test_entities_are_decoded_once_and_leftover_double_escapes_once_more() -> None:
    assert html_to_text("AT&amp;T &lt;3") == "AT&T <3"
    assert html_to_text("&amp;quot;quoted&amp;quot; &amp;#8230;") == '"quoted" …'
    assert html_to_text("&amp;amp;lt;b&amp;amp;gt;") == "&lt;b&gt;"  # two extra levels: one undone
    assert html_to_text("R&D; a&b=1 &unknown;") == "R&D; a&b=1 &unknown;"  # not entities


def test_an_escaped_mention_becomes_literal_text_for_the_renderer_to_escape() -> None:
    assert html_to_text("&lt;!channel&gt; hi") == "<!channel> hi"


def test_controls_zero_width_and_bidi_characters_are_removed() -> None:
    dirty = "a\x00b\x07c\u200bd\u200fe\u202ef\u2066g\ufeffh\u00adi\x9bj\U000e0041k"
    assert clean_text(dirty) == "abcdefghijk"
    assert clean_text("line\u2028two\r\nthree\rfour") == "line\ntwo\nthree\nfour"


def test_text_is_nfc_so_decomposed_hangul_matches() -> None:
    decomposed = unicodedata.normalize("NFD", "삼성전자")
    assert decomposed != "삼성전자"
    assert html_to_text(decomposed) == "삼성전자"


def test_titles_are_one_line_and_capped() -> None:
    article = one(entry(title="Breaking\n" * 10_000 + "<b>news</b>"))
    assert "\n" not in article.title
    assert len(article.title) <= MAX_TITLE_CHARS and article.title.endswith("Breaking…")


def test_summary_and_content_are_capped() -> None:
    article = one(entry(title="t", summary_html="<p>" + "word " * 250_000 + "</p>"))
    assert len(article.summary) == MAX_TEXT_CHARS and article.summary.endswith("…")


def test_truncation_keeps_combining_marks_with_their_letter() -> None:
    title = "x" * (MAX_TITLE_CHARS - 2) + "e\u0301\u0301" + "y"
    assert one(entry(title=unicodedata.normalize("NFD", title))).title.endswith("x…")


# --- links -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://News.Example/Path?q=1#frag", "https://news.example/Path?q=1#frag"),
        ("HTTP://news.example:80/a", "http://news.example/a"),
        ("https://news.example:8443/a", "https://news.example:8443/a"),
        ("https://news.example", "https://news.example/"),
        ("https://user:pw@news.example/a", "https://news.example/a"),
        ("https://a.example/<x>", "https://a.example/%3Cx%3E"),
        ("https://a.example/a b|c", "https://a.example/a%20b%7Cc"),
        ("https://a.example/%EA%B0%80", "https://a.example/%EA%B0%80"),
        ("https://a.example/기사", "https://a.example/%EA%B8%B0%EC%82%AC"),
        ("  https://a.example/x\n", "https://a.example/x"),
        ("https://[2001:DB8::1]/x", "https://[2001:db8::1]/x"),
        ("javascript:alert(1)", None),
        ("JaVaScRiPt:alert(1)", None),
        ("java\nscript:alert(1)", None),
        ("data:text/html,<b>x</b>", None),
        ("ftp://a.example/x", None),
        ("mailto:a@b.example", None),
        ("/relative/path", None),
        ("https://evil.example|Bank", None),
        ("https://evil.example>x/", None),
        ("https://", None),
        ("https://a.example:99999/", None),
        ("https://a.example/" + "x" * 10_000, None),
        (None, None),
        ("", None),
    ],
)
def test_only_http_links_survive_in_canonical_form(raw: str | None, expected: str | None) -> None:
    assert safe_link(raw) == expected


def test_canonical_url_drops_fragment_and_tracking_parameters_only() -> None:
    link = "https://A.example/x?utm_source=rss&id=7&UTM_Medium=m&fbclid=1&gclid=2&mc_eid=3&p=2#c"
    assert canonical_url(link) == "https://a.example/x?id=7&p=2"
    assert canonical_url("https://a.example/x?utm_source=rss") == "https://a.example/x"


# --- keys ----------------------------------------------------------------------------------------


def test_feed_key_is_the_guid_regardless_of_case_and_spacing() -> None:
    a = one(entry(guid="  ABC-123 ", link="https://a.example/1", title="x"))
    b = one(entry(guid="abc-123", link="https://a.example/2", title="y"))
    assert a.feed_key == b.feed_key == "abc-123"


def test_feed_key_falls_back_to_the_canonical_link_then_a_hash() -> None:
    by_link = one(entry(link="https://a.example/1?utm_campaign=x#top", title="x"))
    assert by_link.feed_key == "https://a.example/1"
    by_hash = one(entry(link="javascript:void(0)", title="Only text", summary_html="body"))
    assert by_hash.feed_key.startswith("hash:") and by_hash.link is None


def test_cross_key_ignores_tracking_fragments_and_host_case() -> None:
    a = one(entry(link="https://News.example:443/a?utm_source=x#top", title="one"))
    b = one(entry(link="https://news.example/a?fbclid=y", title="other title"))
    assert a.cross_key == b.cross_key == "url:https://news.example/a"
    assert (
        a.link == "https://news.example/a?utm_source=x#top"
    )  # the link itself is kept as published


def test_cross_key_without_link_hashes_the_normalized_text() -> None:
    a = one(entry(title="Same  Story", summary_html="<p>Body text</p>"))
    b = one(entry(title="same story", summary_html="Body   text", guid="other"))
    c = one(entry(title="Different", summary_html="Body text"))
    assert a.cross_key == b.cross_key != c.cross_key
    assert a.cross_key.startswith("hash:")


# --- dates, source, duplicates -------------------------------------------------------------------


def test_future_dates_are_clamped_to_now_and_missing_dates_stay_missing() -> None:
    assert one(entry(title="x", published=NOW + timedelta(days=1))).published == NOW
    assert one(entry(title="x", published=NOW - timedelta(hours=1))).published == NOW - timedelta(
        hours=1
    )
    assert one(entry(title="x")).published is None


def test_source_is_the_feed_title_else_the_feed_name() -> None:
    titled = ParsedFeed(title="Gazette &amp; Co", link=None, entries=(entry(title="x"),))
    untitled = ParsedFeed(title="", link=None, entries=(entry(title="x"),))
    assert normalize_entries(titled, "gazette", NOW)[0].source == "Gazette & Co"
    assert normalize_entries(untitled, "gazette", NOW)[0].source == "gazette"


def test_repeated_feed_keys_keep_the_first_and_empty_entries_are_dropped() -> None:
    parsed = ParsedFeed(
        title="T",
        link=None,
        entries=(
            entry(guid="g1", title="first"),
            entry(guid="G1 ", title="second"),
            entry(),
            entry(guid="g2", title="third"),
        ),
    )
    assert [a.title for a in normalize_entries(parsed, "f", NOW)] == ["first", "third"]


def test_normalizing_is_pure() -> None:
    parsed = ParsedFeed("T", None, (entry(title="<b>x</b>", link="https://a.example/"),))
    assert normalize_entries(parsed, "f", NOW) == normalize_entries(parsed, "f", NOW)


# --- golden feeds ------------------------------------------------------------------------------


def golden_cases() -> list[Path]:
    return sorted(p for p in GOLDEN.iterdir() if not p.name.endswith(".expected.json"))


def as_json(parsed: ParsedFeed, articles: tuple[Article, ...]) -> dict[str, object]:
    rows = []
    for article in articles:
        row = asdict(article)
        row["published"] = article.published.isoformat() if article.published else None
        rows.append(row)
    return {"bozo": parsed.bozo, "bozo_reason": parsed.bozo_reason, "articles": rows}


@pytest.mark.parametrize("path", golden_cases(), ids=lambda p: p.name)
def test_golden_feed_normalizes_as_expected(path: Path) -> None:
    name = path.name.split(".")[0]
    parsed = parse_feed(path.read_bytes(), {}, feed=name, url=f"https://golden.example/{path.name}")
    actual = as_json(parsed, normalize_entries(parsed, name, NOW))
    expected_path = path.with_name(name + ".expected.json")
    if REGENERATE:
        text = json.dumps(actual, ensure_ascii=False, indent=2) + "\n"
        expected_path.write_text(text, encoding="utf-8")
    assert actual == json.loads(expected_path.read_text(encoding="utf-8"))
