"""The word pass in C (bot/_words.c) finds exactly what the regexes of bot/textnorm.py find."""

from __future__ import annotations

import json
import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import textnorm
from bot.decide import FieldWords, Page, Spans
from bot.textnorm import regex_scan, scan_words, split_words, tokenize, word_spans
from tests.shared import CORPUS, need

try:
    from bot import _words
except ImportError:  # installed without a C compiler: textnorm uses its regexes
    _words = None  # type: ignore[assignment]

needs_c = pytest.mark.skipif(
    _words is None, reason="bot._words is not built (no C compiler): the regex pass is in use"
)

# One or a few characters each: the hard cases of every kind of word and of what stands between.
PIECES = [
    *"aAzZ09_",  # ASCII letters, digits, the underscore (\w, but no letter)
    *"ＡＺａｚ０９",  # full width
    *",，.．",  # digit-group commas, acronym dots
    "주", "한", "미군은", "\u1100", "\u1161", "\u11a8", "ㄱ", "\u3164", "\ua960", "\ud7b0",
    "\uffa0", "\u3130", "\u318f",  # Hangul syllables, jamo of every block, unassigned ones
    "美", "韓", "\u3005", "\u3007", "\ufa6e", "\U00020000",  # Han
    "\u0301", "\u0308", "\u1ab0", "\u20d7", "\ufe20",  # combining marks
    "\u200b", "\u200d", "\ufeff", "\u00ad", "\u2060", "\U000e0001",  # Cf format characters
    "\u02bb", "\u02bc", "'", "’",  # letters that read as apostrophes, apostrophes
    " ", "\u00a0", "\u3000", "\t", "\n", "\u2028",  # spaces of several kinds
    "é", "ß", "ǅ", "ﬁ", "Кремль", "かな", "²", "٣", "١٢٣", "\U0001d400", "😀", "-", "—",
    "U.S.", "1,234", "12,345", "e.g.", "Ｕ．Ｓ．", "２８，５００",
]  # fmt: skip

# Chosen cases: the regexes' backtracking, lookbehinds, full-width forms, marks, Hangul gaps.
CASES = [
    "", "a", "ab", "1,234", "1,234,567", "1,234,5678", "12,345,67", "1,5", "2020,2021",
    "1234,567", "a1,234", "é1,234", "1,234a", "1,234é", "_1,234", "1,234_", "１，２３４",
    "١,٢٣٤", "1,２３４", "1,234.5", "U.S.", "U.S", "U.S.A", "U.S.A.", "U.Sa", "U.S.Army",
    "e.g.", "e.g", "..U.S", ".U.S.", "x.U.S", "xU.S", "1U.S.", "U..S", "U.S..", "Ｕ．Ｓ．",
    "Ｕ.Ｓ．Ａ", "U.S\u0301", "café", "cafe\u0301", "\u0301abc", "ab\u0301\u0301c",
    "ab\u0301", "a\u0301.b.", "ab_cd", "x_y", "_", "__a", "ǅungla", "ﬁnal", "Straße",
    "주한미군은", "주한 미군", "주한\u200b미군", "주한 \u00ad 미군", "주한 .미군", "주한\n\n미군",
    "ㄱ\u3000ㄴ", "\u1100\u1161 \u11a8", "韓美", "美軍", "美a", "a美", "美1,234", "1,234美",
    "주한1,234", "1,234주한", "U.S.주한", "주한U.S.", "don't", "o\u02bcahu", "o\u02bbahu",
    "Кремль", "かな漢字", "\U0001d400\U0001d401", "😀a😀", "a\ud800b", "USFK—OPCON",
]  # fmt: skip


def same(text: str) -> None:
    assert textnorm.WORD_PASS == "C"
    found, expected = scan_words(text), regex_scan(text)
    assert found[:3] == expected[:3], text
    # and the words it normalized, when it did, are those normalizing its raw words makes
    assert FieldWords.scanned(*found) == FieldWords.scanned(*expected), text


@needs_c
@pytest.mark.parametrize("text", CASES)
def test_the_c_pass_finds_what_the_regexes_find_in_chosen_cases(text: str) -> None:
    same(text)
    same(f" {text} ")
    same(f"{text}.{text},{text}")


@needs_c
@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(st.lists(st.sampled_from(PIECES), max_size=16))
def test_the_c_pass_finds_what_the_regexes_find_in_random_text(pieces: list[str]) -> None:
    same("".join(pieces))


@needs_c
@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(st.text(max_size=40))
def test_the_c_pass_finds_what_the_regexes_find_in_any_characters(text: str) -> None:
    same(text)


@needs_c
def test_the_c_pass_finds_what_the_regexes_find_in_real_news() -> None:
    items = need(CORPUS / "items.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [text for line in items for text in _texts(json.loads(line))]
    articles = need(CORPUS / "articles")
    texts += [path.read_text(encoding="utf-8") for path in sorted(articles.rglob("*.md"))]
    assert len(texts) > 20_000
    assert any(scan_words(text)[2] for text in texts)  # Korean, with Hangul runs
    for text in texts:
        same(text)


@needs_c
def test_the_c_pass_is_linear_on_pathological_text() -> None:
    """RELIABILITY cases 4 and 32: a 1 MB field and 30,000-character runs of what makes the
    regexes backtrack, found as the regexes find them, in well under a second."""
    texts = [
        "a." * 15_000, "1,000" * 6_000, "1,234," * 5_000 + "5678", "a" * 30_000 + "\u0301",
        "가 " * 15_000 + ".", "가\u200b" * 15_000, "U.S." * 7_500 + "a", "..U.S" * 6_000,
        "주한미군 USFK 28,500명 " * 50_000,
    ]  # fmt: skip
    started = time.process_time()
    found = [scan_words(text) for text in texts]
    assert time.process_time() - started < 1.0
    assert [f[:3] for f in found] == [regex_scan(text)[:3] for text in texts]


def _texts(item: dict[str, object]) -> list[str]:
    return [value for key in ("title", "summary") if isinstance(value := item.get(key), str)]


def test_no_hangul_letter_is_a_space_or_format_character() -> None:
    # the C pass relies on it: a run's Hangul and the gaps inside it are told apart by one test
    hangul = [c for c in map(chr, range(0x110000)) if textnorm.is_hangul(c)]
    assert len(hangul) > 11_000
    assert not [c for c in hangul if c.isspace() or unicodedata.category(c) == "Cf"]


def test_the_regex_scan_is_split_words_and_hangul_runs() -> None:
    text = "주한 미군 28,500명, U.S. Forces Korea (USFK) 美"
    raw, spans, hangul, plain = regex_scan(text)
    assert plain is None  # the caller normalizes the words
    assert raw.split("\x00") == [
        "주한",
        "미군",
        "28500",
        "명",
        "US",
        "Forces",
        "Korea",
        "USFK",
        "美",
    ]
    assert hangul == "주한미군\x00명\x00"
    offsets = Spans(spans)
    assert [offsets[i] for i in range(len(offsets))] == word_spans(split_words(text))
    assert [offsets[i] for i in range(len(offsets))] == [(t.start, t.end) for t in tokenize(text)]


def test_a_page_is_made_by_the_pass_in_use() -> None:
    text = "주한미군 U.S. troops"
    words = Page.of({"content": text}).fields["content"]
    assert (words.raw, words.spans, words.hangul) == scan_words(text)[:3]
    assert ("regex" if _words is None else "C") == textnorm.WORD_PASS


@needs_c
def test_the_c_pass_normalizes_words_that_normalizing_only_lowers() -> None:
    assert scan_words("주한미군 USFK 28,500명 美軍")[3] == " 주한미군 usfk 28500 명 美 軍 "
    assert scan_words("")[3] == "  "
    for text in ("Café", "ＵＳＦＫ", "ㄱ", "\u1100\u1161", "ﬁnal", "Straße", "\uf900"):
        assert scan_words(text)[3] is None, text  # normalized by `normalize`
