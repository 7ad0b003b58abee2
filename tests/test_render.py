"""Rendering: escaping feed text for Slack, safe links, limits, terminal output."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, timedelta, timezone
from typing import Any

import pytest

from bot.models import Message
from bot.render import (
    MAX_HEADLINE,
    MAX_SECTION,
    MAX_TEXT,
    escape,
    render_message,
    render_notice,
    render_terminal,
    safe_url,
)
from tests.factories import MENTIONS, alert, displayed_texts

INVISIBLE = (
    "\u200b\u200c\u200d\u2060\ufeff\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u00ad"
)
LINK_TOKEN = re.compile(r"<(https?://[^<>|\s]+)\|([^<>]*)>")


def texts(message: Message) -> list[str]:
    return displayed_texts(message.text, message.blocks)


def section(message: Message, index: int) -> str:
    block: Any = message.blocks[index]
    return str(block["text"]["text"])


def context(message: Message) -> list[str]:
    block: Any = message.blocks[1]
    return [str(element["text"]) for element in block["elements"]]


def assert_inert(text: str) -> None:
    """No Slack token except links we built; every & starts one of the three entities."""
    rest = LINK_TOKEN.sub("", text)
    assert "<" not in rest and ">" not in rest, text
    assert not re.search(r"&(?!amp;|lt;|gt;)", text), text
    for token in ("<!", "<@", "<#"):
        assert token not in text


# -- escape


@pytest.mark.parametrize("mention", MENTIONS)
def test_every_mention_form_is_escaped(mention: str) -> None:
    out = escape(f"Breaking {mention} now")
    assert_inert(out)
    assert out.startswith("Breaking &lt;") or out.startswith("Breaking &amp;lt;")


def test_entity_encoded_mentions_stay_literal() -> None:
    assert escape("&lt;!here&gt;") == "&amp;lt;!here&amp;gt;"


def test_bare_broadcast_words_cannot_notify() -> None:
    out = escape("Ping @here and @Channel and @everyone, mail a@herein.example")
    assert not re.search(r"(?<!\w)@(?i:here|channel|everyone)\b", out)
    assert out.count("＠") == 3
    assert "a@herein.example" in out


def test_mrkdwn_markup_in_feed_text_is_neutralized() -> None:
    out = escape("*bold* _italic_ ~strike~ `code` ```block``` > quote")
    assert not set("*_~`") & set(out)
    assert out == "∗bold∗ ˍitalicˍ ∼strike∼ ˋcodeˋ ˋˋˋblockˋˋˋ &gt; quote"


def test_a_leading_quote_marker_cannot_start_a_blockquote() -> None:
    assert escape("> Official statement > follows") == "＞ Official statement &gt; follows"
    message = render_message(alert(link=None, source="> Wire", summary=("> quoted.",)))
    for text in texts(message):
        assert not text.lstrip("*").startswith(("&gt;", ">")), text


def test_newlines_controls_zero_width_and_bidi_are_gone() -> None:
    out = escape(
        "Line" + "\n" * 10_000 + "two\r\n\tthree" + INVISIBLE + "\x00\x07\x1b[31m\x7f\x85end"
    )
    assert out == "Line two three[31m end"  # \x85 (NEL) is a line break too
    assert all(unicodedata.category(c) not in ("Cc", "Cf") for c in out)


def test_escape_keeps_ordinary_text_including_hangul_and_emoji() -> None:
    assert escape("삼성전자, 3.5% 상승 🇰🇷 — “quoted”") == "삼성전자, 3.5% 상승 🇰🇷 — “quoted”"


# -- safe_url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "ftp://files.example/x",
        "file:///etc/passwd",
        "https://evil.example|Bank",
        "https://user:pw@bank.example.evil.example/",
        "https://bank.example@evil.example/",
        "https://faß.example/",  # IDNA 2003 would silently send this to fass.example
        "https://ｅxample.com/",  # fullwidth letters fold into another host
        "http://x.example:99999/",
        "https:///nohost",
        "",
        None,
    ],
)
def test_unsafe_links_are_dropped(url: str | None) -> None:
    assert safe_url(url) is None


def test_link_specials_are_percent_encoded() -> None:
    assert safe_url("https://a.example/<x>") == "https://a.example/%3Cx%3E"
    assert safe_url("https://a.example/p a|t\"h'`?q=1&r=<2>#f|g") == (
        "https://a.example/p%20a%7Ct%22h%27%60?q=1&r=%3C2%3E#f%7Cg"
    )
    assert safe_url("https://a.example/\x01\x7f") == "https://a.example/%01%7F"


def test_international_hosts_are_shown_in_their_real_ascii_form() -> None:
    assert safe_url("https://Bücher.Example/ä") == "https://xn--bcher-kva.example/%C3%A4"
    assert safe_url("https://аpple.example/") == "https://xn--pple-43d.example/"  # Cyrillic а


def test_ordinary_links_survive_unchanged() -> None:
    for url in (
        "https://news.example/a/b?c=d&e=f#g",
        "http://[2001:db8::1]:8080/x",
        "https://x.example",
    ):
        assert safe_url(url) == url


# -- messages


@pytest.mark.parametrize("mention", MENTIONS)
def test_mentions_in_title_source_and_summary_never_become_tokens(mention: str) -> None:
    message = render_message(
        alert(title=f"{mention} title", source=f"{mention} Daily", summary=(f"Sum {mention}.",))
    )
    for text in texts(message):
        assert_inert(text)


def test_forged_link_in_a_title_renders_literally_and_the_real_link_is_the_only_token() -> None:
    message = render_message(alert(title="<https://evil.example|Official notice>"))
    headline = section(message, 0)
    tokens = LINK_TOKEN.findall(headline)
    assert tokens == [
        (
            "https://news.example/markets/chips?id=7&amp;src=rss",
            "&lt;https://evil.example|Official notice&gt;",
        )
    ]
    for text in texts(message):
        assert_inert(text)


@pytest.mark.parametrize(
    "link", ["javascript:alert(1)", "data:text/html,<b>x</b>", "https://evil.example|Bank", None]
)
def test_without_a_safe_link_the_title_is_plain_bold_and_no_host_is_shown(link: str | None) -> None:
    message = render_message(alert(link=link))
    assert section(message, 0) == "*Chip makers rally*"
    assert all("evil" not in t and "javascript" not in t for t in texts(message))


def test_displayed_domain_is_the_real_host_of_the_link() -> None:
    message = render_message(alert(link="https://real.example/a?x=<y>|z", source="bank.example"))
    headline = section(message, 0)
    ((url, _),) = LINK_TOKEN.findall(headline)
    assert url == "https://real.example/a?x=%3Cy%3E%7Cz"
    assert context(message)[0].split(" · ")[1] == "real.example"


def test_context_shows_source_time_in_the_given_zone_rules_and_bold_terms() -> None:
    message = render_message(alert(rules=("chips", "semis")), tz=timezone(timedelta(hours=9)))
    meta, why = context(message)
    assert meta == "Example Daily · news.example · 2025-07-31 14:38 UTC+09:00"
    assert why == "Rules: chips, semis · Terms: *chip*"
    assert "time unknown" in context(render_message(alert(published=None)))[0]


def test_summary_marks_become_bold_after_escaping() -> None:
    message = render_message(alert(summary=("A \x02*chip*\x03 & <b>", "Next \x02term\x03.")))
    body = section(message, 2)
    assert body == "A *∗chip∗* &amp; &lt;b&gt; Next *term*."
    assert message.text.endswith("— A *∗chip∗* &amp; &lt;b&gt; Next *term*.")


def test_a_mark_inside_a_word_bolds_the_whole_word() -> None:
    body = section(render_message(alert(summary=("\x02삼성\x03전자가 올랐다.",))), 2)
    assert body == "*삼성전자가* 올랐다."


def test_every_text_object_is_verbatim_mrkdwn() -> None:
    message = render_message(alert())
    blocks: Any = message.blocks
    objs = [blocks[0]["text"], *blocks[1]["elements"], blocks[2]["text"]]
    assert all(o == {**o, "type": "mrkdwn", "verbatim": True} for o in objs)


def test_posted_text_is_single_line_and_free_of_invisibles() -> None:
    nasty = "*Hot*\n" * 5000 + "`x` ~y~ > z" + INVISIBLE
    message = render_message(alert(title=nasty, source=nasty, summary=(nasty,)))
    for text in texts(message):
        assert "\n" not in text and "\r" not in text
        assert not set(INVISIBLE) & set(text)
        assert "*Hot*" not in text and "`" not in text and "~" not in text


@pytest.mark.parametrize("unit", ["&", "<", "a", "&<> ", "word ", "삼", "e\u0301", "🇰🇷", "x&"])
def test_oversize_fields_respect_slack_limits_without_splitting_entities_or_links(
    unit: str,
) -> None:
    long_link = "https://news.example/" + "p/" * 900 + "?q=1&r=2"
    message = render_message(
        alert(
            title=unit * 10_000,
            link=long_link,
            source=unit * 5_000,
            rules=tuple(f"rule{i}" for i in range(200)),
            terms=tuple(unit * 50 for _ in range(200)),
            summary=(unit * 400_000, "\x02" + unit * 400_000 + "\x03", unit * 200_000),
        )
    )
    assert len(message.blocks) <= 50
    headline = section(message, 0)
    ((url, title),) = LINK_TOKEN.findall(headline)
    assert url == long_link.replace("&", "&amp;")
    assert len(title) <= MAX_HEADLINE and title.endswith("…")
    for text in texts(message)[1:]:
        assert len(text) <= MAX_SECTION
    assert len(message.text) <= MAX_TEXT
    for text in texts(message):
        assert_inert(text)
        assert text.count("*") % 2 == 0  # bold marks stay paired


@pytest.mark.parametrize("limit_unit", ["e\u0301", "🇰🇷", "👍🏽", "각"])
def test_truncation_never_splits_a_grapheme(limit_unit: str) -> None:
    for size in range(140, 160):
        title = "x" * size + limit_unit * 20
        headline = section(render_message(alert(title=title, link=None)), 0)
        kept = headline.removeprefix("*").removesuffix("*").removesuffix("…")
        assert len(kept.lstrip("x")) % len(limit_unit) == 0, (size, kept[-4:])


def test_an_overlong_link_is_dropped_rather_than_truncated() -> None:
    message = render_message(alert(link="https://news.example/" + "a" * 5000))
    assert section(message, 0) == "*Chip makers rally*"


def test_an_empty_title_and_summary_still_make_a_valid_message() -> None:
    message = render_message(alert(title="\u200b\n", summary=(), source=""))
    assert section(message, 0).endswith("|(untitled)>*")
    assert len(message.blocks) == 2
    assert all(len(t) >= 1 for t in texts(message))


def test_notices_escape_tokens_but_keep_our_own_wording() -> None:
    message = render_notice("Feed <!channel> channel_not_found\nsee <https://x|y>", channel="#ops")
    assert message.channel == "#ops"
    assert message.text == "Feed &lt;!channel&gt; channel_not_found see &lt;https://x|y&gt;"
    for text in texts(message):
        assert_inert(text)
    assert len(render_notice("x " * 10_000).text) <= MAX_TEXT


def test_terminal_rendering_is_readable_and_free_of_control_sequences() -> None:
    out = render_terminal(
        alert(
            title="Chips \x1b[2J\x1b]0;owned\x07 rally\u202e",
            summary=("Shares of \x02chip\x03 makers rose.",),
        ),
        tz=UTC,
    )
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert out.splitlines()[0] == "[#news] Chips [2J]0;owned rally"
    assert "https://news.example/markets/chips?id=7&src=rss" in out
    assert "2025-07-31 05:38 UTC" in out
    assert "Shares of **chip** makers rose." in out


def test_a_long_summary_is_cut_after_a_whole_sentence_when_one_fits() -> None:
    first, second = "The first sentence is short.", "The second one too."
    third = "The third runs on " + "and on " * 600 + "forever."
    message = render_message(alert(summary=(first, second, third)))
    body = str(message.blocks[-1]["text"]["text"])  # type: ignore[index]
    assert body == f"{first} {second} …"
    assert message.text.endswith(f"{first} {second} …")


def test_a_single_overlong_sentence_is_cut_at_a_word() -> None:
    message = render_message(alert(summary=("word " * 1000 + "end.",)))
    body = str(message.blocks[-1]["text"]["text"])  # type: ignore[index]
    assert len(body) <= MAX_SECTION and body.endswith("word…")
