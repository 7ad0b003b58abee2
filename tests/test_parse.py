"""Parsing feed bytes: fields, encodings, dates, non-feeds, and XML attacks under guards."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from ipaddress import ip_network
from pathlib import Path

import pytest

from bot.errors import ParseError
from bot.fetch import FetchPolicy, fetch, make_client
from bot.models import FetchResult, ParsedFeed
from bot.normalize import normalize_entries
from bot.parse import parse_date, parse_feed, strip_doctype
from tests.feedserver import FeedServer

URL = "https://news.example/feed.xml"
NOW = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)
KST = timezone(timedelta(hours=9))


def rss(items: str, *, decl: str = '<?xml version="1.0" encoding="utf-8"?>', head: str = "") -> str:
    channel = f"<channel><title>Example News</title><link>https://news.example/</link>{items}"
    return f'{decl}{head}<rss version="2.0" {CONTENT_NS}>{channel}</channel></rss>'


CONTENT_NS = 'xmlns:content="http://purl.org/rss/1.0/modules/content/"'


def parse(body: bytes | str, headers: dict[str, str] | None = None) -> ParsedFeed:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return parse_feed(data, headers or {}, feed="example", url=URL)


def not_a_feed(body: bytes) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse(body)
    assert caught.value.feed == "example" and caught.value.url == URL
    assert str(caught.value).startswith("feed example (https://news.example/feed.xml): ")
    return caught.value


@contextmanager
def guarded(seconds: float = 2.0, megabytes: int = 50) -> Iterator[None]:
    """Fail unless the block stays inside generous time and traced-memory bounds."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < seconds
    assert peak < megabytes * 1024 * 1024


# --- fields ------------------------------------------------------------------------------------


def test_rss_item_fields_are_carried_over() -> None:
    parsed = parse(
        rss(
            "<item><title>Port deal signed</title><link>https://news.example/a/1</link>"
            "<guid isPermaLink='false'> id-1 </guid><author>desk@news.example (Desk)</author>"
            "<description>Short &lt;b&gt;lead&lt;/b&gt;</description>"
            "<content:encoded><![CDATA[<p>Full <i>story</i></p>]]></content:encoded>"
            "<pubDate>Wed, 30 Jul 2025 10:00:00 +0000</pubDate></item>"
        )
    )
    assert (parsed.title, parsed.link, parsed.bozo) == (
        "Example News",
        "https://news.example/",
        False,
    )
    (entry,) = parsed.entries
    assert entry.guid == "id-1"
    assert entry.link == "https://news.example/a/1"
    assert entry.title == "Port deal signed"
    assert entry.summary_html == "Short <b>lead</b>"
    assert entry.content_html == "<p>Full <i>story</i></p>"
    assert entry.published == datetime(2025, 7, 30, 10, 0, tzinfo=UTC)
    assert entry.author == "desk@news.example (Desk)"


def test_atom_content_goes_to_content_and_is_not_repeated_as_summary() -> None:
    parsed = parse(
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom News</title>'
        "<entry><id>urn:x:1</id><title>A</title><link href='https://news.example/1'/>"
        "<content type='html'>&lt;p&gt;Body&lt;/p&gt;</content>"
        "<updated>2025-07-30T09:00:00+09:00</updated></entry></feed>"
    )
    (entry,) = parsed.entries
    assert (entry.content_html, entry.summary_html) == ("<p>Body</p>", "")
    assert entry.published == datetime(2025, 7, 30, 0, 0, tzinfo=UTC)  # `updated` when no published


def test_relative_links_resolve_against_the_feed_url() -> None:
    (entry,) = parse(rss("<item><title>x</title><link>/a/2</link></item>")).entries
    assert entry.link == "https://news.example/a/2"


def test_keys_do_not_change_when_a_feed_moves() -> None:
    """Permalink guids stay as written: feedparser would resolve them against the fetch URL."""
    body = rss("<item><title>x</title><guid>story-17</guid><link>/a/17</link></item>").encode()
    moved = parse_feed(body, {}, feed="example", url="https://new-home.example/rss")
    assert parse(body).entries[0].guid == moved.entries[0].guid == "story-17"
    assert moved.entries[0].link == "https://new-home.example/a/17"


def test_an_escaped_mention_in_a_plain_title_stays_text() -> None:
    (entry,) = parse(rss("<item><title>&lt;!channel&gt; alert</title></item>")).entries
    assert entry.title == "&lt;!channel&gt; alert"  # HTML for normalize, which makes it text
    (article,) = normalize_entries(
        parse(rss(f"<item>{'<title>&lt;!channel&gt; alert</title>'}</item>")), "f", NOW
    )
    assert article.title == "<!channel> alert"


def test_unsanitized_html_still_becomes_plain_text_without_scripts() -> None:
    # feedparser's sanitizer is off; normalize.py alone must drop scripts, styles and markup.
    description = (
        "&lt;script&gt;steal()&lt;/script&gt;&lt;style&gt;p{}&lt;/style&gt;"
        '&lt;p onclick="x()"&gt;Troops &lt;a href="/more"&gt;stay&lt;/a&gt;&lt;/p&gt;'
    )
    body = rss(f"<item><title>t</title><description>{description}</description></item>")
    (entry,) = parse(body).entries
    assert "<script>" in entry.summary_html  # left in by the parser ...
    (article,) = normalize_entries(parse(body), "f", NOW)
    assert article.summary == "Troops stay"  # ... and gone from the text


@pytest.mark.parametrize(
    ("head", "tail", "expected"),
    [
        ("<ttl>30</ttl>", "", 30),
        ("", "<ttl> 45 </ttl>", 45),  # after the items: still the channel's
        ("<ttl>soon</ttl>", "", None),
        ("<ttl>0</ttl>", "", None),
        ("<ttl>99999999999</ttl>", "", None),
        ("", "", None),
    ],
)
def test_the_channel_ttl_is_read_as_minutes_when_sane(
    head: str, tail: str, expected: int | None
) -> None:
    body = rss(f"{head}<item><title>a</title><link>https://n.example/a</link></item>{tail}")
    assert parse(body).ttl_minutes == expected


def test_the_ttl_of_a_utf16_feed_is_read_too() -> None:
    text = rss("<ttl>20</ttl><item><title>a</title></item>")
    text = text.replace('encoding="utf-8"', 'encoding="utf-16"')
    assert parse(text.encode("utf-16")).ttl_minutes == 20


def test_an_empty_feed_is_a_feed() -> None:
    parsed = parse(rss(""))
    assert parsed.entries == () and not parsed.bozo


# --- not a feed, broken feeds ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"  \r\n ", "empty body"),
        (
            b"<!DOCTYPE html><html><head><title>Hi</title></head><body><p>x</p></body></html>",
            "HTML",
        ),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": []}', "JSON"),
        (b"just some words", "not XML"),
        (b"<?xml version='1.0'?><note><to>x</to></note>", "no RSS or Atom root element"),
    ],
)
def test_a_body_that_is_not_a_feed_is_a_parse_error_with_a_reason(body: bytes, reason: str) -> None:
    assert reason in not_a_feed(body).reason


def test_a_truncated_feed_with_no_entries_is_an_error() -> None:
    assert "broken feed" in not_a_feed(rss("<item><title>cut off").encode()[:-30]).reason


def test_a_broken_feed_with_entries_is_kept_and_flagged() -> None:
    body = rss("<item><title>good</title></item><item><title>bad & worse</title></item>")
    parsed = parse(body)
    assert parsed.bozo and parsed.bozo_reason and "not well-formed" in parsed.bozo_reason
    assert parsed.entries[0].title == "good"


def test_a_body_naming_a_local_file_is_never_opened(tmp_path: Path) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_text(rss("<item><title>from disk</title></item>"), encoding="utf-8")
    assert not_a_feed(str(secret).encode()).reason  # feedparser would open a bare path


# --- encodings ---------------------------------------------------------------------------------

KOREAN = "똠 햏 뷁 삼성전자"  # the first three exist in cp949 only, not in EUC-KR proper


def korean_feed(decl: str = '<?xml version="1.0" encoding="euc-kr"?>') -> bytes:
    return rss(f"<item><title>{KOREAN}</title></item>", decl=decl).encode("cp949")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"content-type": "application/rss+xml; charset=euc-kr"},
        {"content-type": "text/xml; charset=utf-8"},  # contradicts the declaration
        {"content-type": "text/xml; charset=iso-8859-1"},  # a server's Latin-1 default
    ],
)
def test_euc_kr_declared_feeds_decode_as_cp949(headers: dict[str, str]) -> None:
    assert parse(korean_feed(), headers).entries[0].title == KOREAN


def test_undeclared_cp949_is_recognised_by_its_hangul() -> None:
    assert parse(korean_feed(decl="")).entries[0].title == KOREAN


def test_undeclared_latin1_is_not_mistaken_for_korean() -> None:
    body = rss("<item><title>Ação não é fácil</title></item>", decl="").encode("latin-1")
    assert parse(body).entries[0].title == "Ação não é fácil"


def test_euc_kr_declared_but_utf8_encoded_is_read_as_utf8() -> None:
    body = rss(
        f"<item><title>{KOREAN}</title></item>", decl='<?xml version="1.0" encoding="euc-kr"?>'
    )
    assert parse(body.encode("utf-8")).entries[0].title == KOREAN


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-32"])
def test_wide_unicode_feeds_parse(codec: str) -> None:
    body = rss(
        f"<item><title>{KOREAN}</title></item>", decl=f'<?xml version="1.0" encoding="{codec}"?>'
    )
    assert parse(body.encode(codec)).entries[0].title == KOREAN


def test_served_feed_with_wrong_charset_header_decodes_correctly(feed_server: FeedServer) -> None:
    feed_server.add("/kr", korean_feed(), headers={"Content-Type": "text/xml; charset=utf-8"})
    policy = FetchPolicy(deadline=2.0, allow_private=(ip_network("127.0.0.0/8"),))

    async def go() -> FetchResult:
        async with make_client(policy) as client:
            url = feed_server.url("/kr")
            return await fetch(client, "kr", url, etag=None, last_modified=None, policy=policy)

    fetched = asyncio.run(go())
    parsed = parse_feed(fetched.body, fetched.headers, feed="kr", url=fetched.url)
    assert parsed.entries[0].title == KOREAN


# --- dates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Wed, 30 Jul 2025 10:00:00 +0000", datetime(2025, 7, 30, 10, 0, tzinfo=UTC)),
        ("Wed, 30 Jul 2025 19:00:00 +0900", datetime(2025, 7, 30, 10, 0, tzinfo=UTC)),
        ("Wed, 30 Jul 2025 19:00:00 KST", datetime(2025, 7, 30, 10, 0, tzinfo=UTC)),
        ("Wed, 30 Jul 2025 10:00:00 GMT", datetime(2025, 7, 30, 10, 0, tzinfo=UTC)),
        ("2025-07-30T19:00:00+09:00", datetime(2025, 7, 30, 10, 0, tzinfo=UTC)),
        ("2025-07-30T10:00:00Z", datetime(2025, 7, 30, 10, 0, tzinfo=UTC)),
        ("2024년 5월 1일 12:00", datetime(2024, 5, 1, 3, 0, tzinfo=UTC)),
        ("2024년 5월 1일 오후 3시 20분", datetime(2024, 5, 1, 6, 20, tzinfo=UTC)),
        ("2100-01-01T00:00:00Z", datetime(2100, 1, 1, tzinfo=UTC)),  # future: normalize clamps
        ("Sat, 31 Feb 2024 10:00:00 +0000", None),
        ("sometime last week", None),
        ("", None),
    ],
)
def test_dates_become_aware_utc_or_none(raw: str, expected: datetime | None) -> None:
    assert parse_date(raw, None) == expected


def test_naive_dates_are_kst_in_korean_feeds_and_utc_elsewhere() -> None:
    item = "<item><title>x</title><pubDate>2025-07-30 19:00:00</pubDate></item>"
    korean = parse(rss("<language>ko</language>" + item)).entries[0].published
    other = parse(rss("<language>en</language>" + item)).entries[0].published
    assert korean == datetime(2025, 7, 30, 10, 0, tzinfo=UTC)
    assert other == datetime(2025, 7, 30, 19, 0, tzinfo=UTC)


def test_a_missing_date_is_none() -> None:
    assert parse(rss("<item><title>x</title></item>")).entries[0].published is None


def test_feedparser_reading_is_the_fallback_for_formats_we_do_not_parse() -> None:
    parsed = datetime(2025, 7, 30, 10, 0).timetuple()
    assert parse_date("30 July 2025 10h00", parsed) == datetime(2025, 7, 30, 10, 0, tzinfo=UTC)


# --- XML attacks -------------------------------------------------------------------------------


def laughs(levels: int = 10) -> str:
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels)]
    return f"<!DOCTYPE rss [{''.join(entities)}]>"


def test_billion_laughs_is_inert() -> None:
    body = rss(f"<item><title>t&lol{9};</title><description>d</description></item>", head=laughs())
    with guarded():
        (article,) = normalize_entries(parse(body), "f", NOW)
    assert "lollol" not in article.title


def test_quadratic_blowup_is_inert() -> None:
    head = '<!DOCTYPE rss [<!ENTITY a "' + "a" * 100_000 + '">]>'
    body = rss(f"<item><title>t</title><description>{'&a;' * 2000}</description></item>", head=head)
    with guarded():
        (article,) = normalize_entries(parse(body), "f", NOW)
    assert "aaaa" not in article.summary


def test_quadratic_blowup_in_utf16_is_inert() -> None:
    head = '<!DOCTYPE rss [<!ENTITY a "' + "a" * 100_000 + '">]>'
    body = rss(f"<item><title>t</title><description>{'&a;' * 2000}</description></item>", head=head)
    with guarded():
        parsed = parse(body.replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16"))
    assert "aaaa" not in parsed.entries[0].summary_html


def test_external_entities_never_read_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE", encoding="utf-8")
    head = f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{secret}">]>'
    body = rss("<item><title>x&xxe;</title><description>&xxe;</description></item>", head=head)
    with guarded():
        parsed = parse(body)
    assert "TOP-SECRET" not in repr(parsed)


def test_external_dtds_and_parameter_entities_are_never_fetched(feed_server: FeedServer) -> None:
    dtd = feed_server.url("/evil.dtd")
    feed_server.add("/evil.dtd", '<!ENTITY leak "LEAKED">')
    heads = [
        f'<!DOCTYPE rss SYSTEM "{dtd}">',
        f'<!DOCTYPE rss PUBLIC "-//X//DTD X//EN" "{dtd}">',
        f'<!DOCTYPE rss [<!ENTITY % ext SYSTEM "{dtd}"> %ext;]>',
    ]
    for head in heads:
        with guarded():
            parsed = parse(rss("<item><title>x&leak;</title></item>", head=head))
        assert "LEAKED" not in repr(parsed)
    assert feed_server.requests == []


def test_strip_doctype_removes_only_the_prolog_declarations() -> None:
    tricky = b'<?xml version="1.0"?><!-- <a> --><!DOCTYPE r [<!ENTITY x "]>"> <!-- ] > -->]>'
    body = tricky + b"<rss><![CDATA[<!DOCTYPE html>]]></rss>"
    assert (
        strip_doctype(body)
        == b'<?xml version="1.0"?><!-- <a> --><rss><![CDATA[<!DOCTYPE html>]]></rss>'
    )
    assert strip_doctype(b"<rss><x>&amp;</x></rss>") == b"<rss><x>&amp;</x></rss>"
    assert strip_doctype(b'<!DOCTYPE r [<!ENTITY a "never closed') == b""
