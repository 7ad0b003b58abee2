"""Tokenization: normalized words with offsets into the original text."""

from __future__ import annotations

import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.textnorm import Token, is_hangul, normalize, split_words, tokenize, word_spans, words


def spans(text: str) -> list[tuple[str, str]]:
    """Each token's normalized text beside the original characters its offsets cover."""
    return [(t.text, text[t.start : t.end]) for t in tokenize(text)]


def test_words_are_case_folded_runs_of_letters_and_digits() -> None:
    assert words("South Korea, F-35A jets; 2025!") == ("south", "korea", "f", "35a", "jets", "2025")


def test_digit_group_commas_make_one_number() -> None:
    assert spans("over 28,500 troops") == [
        ("over", "over"),
        ("28500", "28,500"),
        ("troops", "troops"),
    ]
    assert words("1,000,000") == ("1000000",)
    assert words("28,500") == words("28500")


def test_commas_that_are_not_digit_groups_separate_numbers() -> None:
    assert words("1,5 2020,2021 2,000,00") == ("1", "5", "2020", "2021", "2000", "00")


def test_number_glued_to_hangul_keeps_its_commas_dropped() -> None:
    assert spans("28,500명") == [("28500", "28,500"), ("명", "명")]


@pytest.mark.parametrize("written", ["U.S.", "U.S", "US", "u.s.", "Ｕ.Ｓ."])
def test_dotted_acronym_collapses_to_one_word(written: str) -> None:
    assert words(written) == ("us",)


def test_dotted_acronym_before_a_hyphen_splits_at_the_hyphen() -> None:
    assert spans("U.S.-ROK talks") == [("us", "U.S."), ("rok", "ROK"), ("talks", "talks")]


def test_dotted_acronym_needs_single_letters() -> None:
    assert words("U.Sanctions") == ("u", "sanctions")
    assert words("end.A new") == ("end", "a", "new")
    assert words("e.g. J.D. Vance") == ("eg", "jd", "vance")


def test_script_change_between_latin_and_hangul_splits_words() -> None:
    assert tokenize("USFK는") == (Token("usfk", 0, 4, False), Token("는", 4, 5, True))


def test_hangul_run_is_one_token_particle_included() -> None:
    assert tokenize("주한미군은 감축") == (
        Token("주한미군은", 0, 5, True),
        Token("감축", 6, 8, True),
    )


def test_han_ideographs_are_tokens_of_their_own() -> None:
    assert words("韓美 동맹, 美軍") == ("韓", "美", "동맹", "美", "軍")


@pytest.mark.parametrize("apostrophe", ["'", "’", "ʼ"])
def test_apostrophes_split_words(apostrophe: str) -> None:
    assert words(f"Korea{apostrophe}s") == ("korea", "s")


def test_dash_and_quote_variants_tokenize_alike() -> None:
    assert words("“U.S.–ROK” alliance—wartime") == words('"U.S.-ROK" alliance-wartime')


def test_nfkc_folds_compatibility_forms_and_case() -> None:
    assert words("ＵＳＦＫ ﬁnal STRASSE Straße") == ("usfk", "final", "strasse", "strasse")


def test_offsets_point_at_original_text_after_nfkc_changes_length() -> None:
    text = "ﬁnal ＵＳＦＫ café"
    assert spans(text) == [("final", "ﬁnal"), ("usfk", "ＵＳＦＫ"), ("café", "café")]


def test_decomposed_text_is_composed_and_keeps_original_offsets() -> None:
    text = unicodedata.normalize("NFD", "카페 café 주한미군")
    tokens = tokenize(text)
    assert [t.text for t in tokens] == ["카페", "café", "주한미군"]
    assert [t.hangul for t in tokens] == [True, False, True]
    assert "".join(text[t.start : t.end] for t in tokens) == text.replace(" ", "")


def test_text_without_letters_or_digits_has_no_tokens() -> None:
    assert tokenize("") == ()
    assert tokenize(" -- … “” ,.!") == ()


def test_normalize_matches_the_tokenizer() -> None:
    assert normalize("ＵＳＦＫ") == "usfk"
    assert normalize("Troops") == "troops"


def test_is_hangul_tells_hangul_words_apart() -> None:
    assert is_hangul("주한미군")
    assert not is_hangul("usfk")
    assert not is_hangul("美")
    assert not is_hangul("")


def test_tokenize_is_linear_on_pathological_input() -> None:
    started = time.perf_counter()
    for text in ("a." * 15_000, "1,000" * 6_000, "a" * 30_000 + "X", "가" * 30_000):
        tokenize(text)
    assert time.perf_counter() - started < 1.0


# Pieces that stress the split's shortcuts: ASCII words beside digits, dots, commas, marks,
# other scripts, Hangul (also jamo and unassigned code points of its blocks), Han, apostrophes.
PIECES = [
    "troops", "US", "a", "U.S.", "e.g", "u.s.a", "F", "35", "1,234", "28,500,000", "1,5",
    "café", "cafe\u0301", "ab\u0301c", "x_y", "_", "ǅ", "ﬁnal", "Ａ．Ｂ．", "２８，５００",
    "Straße", "주한미군은", "미군", "\u1100\u1161", "ㄱ", "\u3130", "\ua97f", "\uffa0",
    "美", "韓美", "\ufa6e", "\u02bc", "'", "’", "Кремль", "かな", "٣",
    " ", " ", ".", ",", "-", "\u200b", "\n", "",
]  # fmt: skip


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(st.sampled_from(PIECES), max_size=12))
def test_split_words_finds_the_tokenizers_words_at_its_offsets(pieces: list[str]) -> None:
    text = "".join(pieces)
    parts = split_words(text)
    assert "".join(parts) == text
    assert word_spans(parts) == [(t.start, t.end) for t in tokenize(text)]
