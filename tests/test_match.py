"""Matching parsed queries against articles: semantics, fields, hits and their offsets."""

from __future__ import annotations

import unicodedata

import pytest

from bot.match import Document, evaluate, match_rule
from bot.models import Article, Hit, Rule
from bot.query import parse_query
from tests.factories import article as make_article
from tests.shared import SAMPLE_ARTICLE, need


def doc_of(content: str = "", title: str = "", summary: str = "") -> Document:
    return Document.from_fields({"title": title, "summary": summary, "content": content})


def matches(query: str, content: str = "", title: str = "", summary: str = "") -> bool:
    return evaluate(parse_query(query), doc_of(content, title, summary)) is not None


def hit_texts(query: str, text: str) -> list[str]:
    """The original characters every hit covers, in order (text put in `content`)."""
    hits = evaluate(parse_query(query), doc_of(text))
    assert hits is not None, f"{query!r} should match {text!r}"
    return [text[h.start : h.end] for h in hits]


def article(title: str = "", summary: str = "", content: str = "") -> Article:
    return make_article(title=title, summary=summary, content=content)


# --- word boundaries and case ----------------------------------------------------------------


def test_latin_word_matches_case_insensitively() -> None:
    assert matches("usfk", "Officials at USFK said")
    assert matches("USFK", "officials at usfk said")


def test_latin_word_does_not_match_inside_a_longer_word() -> None:
    assert not matches("US", "a USB stick")
    assert not matches("troop", "more troops")
    assert not matches("Korea", "Koreans")


def test_prefix_matches_words_that_start_with_it() -> None:
    assert hit_texts("troop*", "a troop and troops, not a paratrooper") == ["troop", "troops"]
    assert matches("withdraw*", "a withdrawal of forces")
    assert not matches("withdraw*", "they withdrew")


# --- normalization ---------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["28,500", "28500"])
@pytest.mark.parametrize("text", ["hosting 28,500 troops", "hosting 28500 troops"])
def test_number_matches_with_or_without_digit_group_commas(written: str, text: str) -> None:
    assert matches(written, text)


def test_number_does_not_match_a_longer_number() -> None:
    assert not matches("28,500", "some 128,500 people")
    assert not matches("500", "28,500 troops")


@pytest.mark.parametrize("written", ["U.S.", "US", "u.s"])
def test_dotted_acronym_matches_undotted(written: str) -> None:
    assert matches(written, "The U.S. military")
    assert matches(written, "the US military")


def test_phrase_across_hyphen_and_dash_variants() -> None:
    for text in ("U.S.-ROK drills", "U.S.–ROK drills", "US — ROK drills", "U.S. ROK drills"):
        assert matches("U.S.-ROK", text), text


def test_curly_quotes_in_text_and_query_do_not_matter() -> None:
    assert matches("“ironclad” defense", 'the "ironclad" defense')
    assert matches('"ironclad defense"', "the “ironclad” defense")


def test_apostrophe_s_is_a_word_of_its_own() -> None:
    assert matches("Korea", "South Korea’s defense ministry")
    assert matches("Korea's", "South Korea’s defense ministry")


def test_fullwidth_and_ligature_text_matches_plain_query() -> None:
    assert matches("USFK final", "ＵＳＦＫ ﬁnal report")


# --- Korean ----------------------------------------------------------------------------------


def test_hangul_term_matches_word_with_particle() -> None:
    assert hit_texts("주한미군", "주한미군은 감축될까") == ["주한미군"]


def test_hangul_term_matches_inside_a_longer_word() -> None:
    assert hit_texts("미군", "주한미군 감축") == ["미군"]
    assert matches("감축", "병력감축을 검토")


def test_mixed_script_word_splits_latin_from_particle() -> None:
    assert hit_texts("USFK", "USFK는 28,500명") == ["USFK"]
    assert hit_texts("28,500", "USFK는 28,500명") == ["28,500"]
    assert matches("USFK는", "USFK는 밝혔다")


def test_hangul_prefix_matches_inside_words_like_any_hangul_word() -> None:
    assert hit_texts("감축*", "주한미군 병력감축설") == ["감축"]


def test_latin_term_still_needs_whole_word_next_to_hangul() -> None:
    assert not matches("USF", "USFK는")


def test_hangul_phrase_matches_consecutive_words() -> None:
    assert matches('"주한미군 감축"', "주한미군의 감축 논의")
    assert not matches('"주한미군 감축"', "감축 주한미군")


def test_hangul_number_phrase_written_the_korean_way() -> None:
    assert matches("2만8500명", "주한미군 2만8500명을")


def test_decomposed_hangul_text_matches_composed_query() -> None:
    text = unicodedata.normalize("NFD", "주한미군은 철수")
    hits = evaluate(parse_query("철수"), doc_of(text))
    assert hits is not None
    assert unicodedata.normalize("NFC", text[hits[0].start : hits[0].end]) == "철수"


def test_hanja_abbreviation_matches_as_its_own_word() -> None:
    assert matches("美", "韓美 동맹")
    assert matches("韓美", "韓美 동맹")
    assert not matches("美中", "韓美 동맹")


# --- phrases ---------------------------------------------------------------------------------


def test_phrase_needs_its_words_in_order_and_adjacent() -> None:
    assert matches('"American troops"', "28,500 American troops")
    assert not matches('"American troops"', "troops, American")
    assert not matches('"American troops"', "American combat troops")


def test_phrase_with_prefix_words() -> None:
    assert hit_texts('"withdraw* American troop*"', "to withdrawing American troopers") == [
        "withdrawing American troopers"
    ]
    assert not matches('"withdraw* American troop*"', "withdraw our American troops")


def test_phrase_does_not_span_two_fields() -> None:
    assert not matches('"American troops"', title="Hosting American", summary="troops in Korea")


def test_phrase_hit_covers_every_word_in_the_original_text() -> None:
    assert hit_texts(
        '"wartime operational control"', "reclaim Wartime  Operational\nControl now"
    ) == ["Wartime  Operational\nControl"]


# --- boolean operators -----------------------------------------------------------------------


def test_implicit_and_needs_every_term_anywhere() -> None:
    assert matches("troops Korea", "Korea hosts troops")
    assert not matches("troops Korea", "Korea hosts soldiers")


def test_or_needs_one_term() -> None:
    assert matches("USFK OR 주한미군", "주한미군")
    assert not matches("USFK OR 주한미군", "미국")


def test_precedence_or_is_loosest() -> None:
    query = "Japan OR troops Korea"  # Japan OR (troops AND Korea)
    assert matches(query, "Japan")
    assert matches(query, "troops in Korea")
    assert not matches(query, "troops")


def test_not_excludes_articles_with_the_term() -> None:
    query = '"American troops" NOT Japan'
    assert matches(query, "American troops in Korea")
    assert not matches(query, "American troops in Japan")


def test_not_applies_to_the_next_term_only() -> None:
    query = "NOT Japan troops Korea"  # (NOT Japan) AND troops AND Korea
    assert matches(query, "troops in Korea")
    assert not matches(query, "troops in Korea and Japan")


def test_parentheses_change_grouping() -> None:
    assert matches("(Japan OR Korea) troops", "Japan troops")
    assert not matches("(Japan OR Korea) troops", "Japan")


def test_not_of_a_group_excludes_any_of_its_terms() -> None:
    query = "troops NOT (Japan OR Germany)"
    assert matches(query, "troops in Korea")
    assert not matches(query, "troops in Germany")


def test_term_under_not_contributes_no_hits() -> None:
    assert hit_texts("troops NOT Japan", "troops in Korea") == ["troops"]


def test_every_true_branch_of_or_contributes_hits() -> None:
    assert hit_texts("USFK OR troops OR Japan", "USFK troops") == ["USFK", "troops"]


def test_double_negation_reports_the_term_that_made_it_true() -> None:
    assert hit_texts("Korea NOT (NOT troops OR Japan)", "Korea troops") == ["Korea", "troops"]


# --- fields and hits -------------------------------------------------------------------------


def test_term_matches_in_any_selected_field() -> None:
    doc = doc_of(title="USFK cuts", summary="nothing", content="more")
    assert evaluate(parse_query("USFK"), doc, fields=("title",)) is not None
    assert evaluate(parse_query("USFK"), doc, fields=("summary", "content")) is None


def test_terms_may_be_found_in_different_fields() -> None:
    hits = evaluate(parse_query("USFK troops"), doc_of(title="USFK", content="troops"))
    assert hits == (Hit("USFK", "title", 0, 4), Hit("troops", "content", 0, 6))


def test_unknown_field_is_empty() -> None:
    assert evaluate(parse_query("USFK"), doc_of("USFK"), fields=("body",)) is None


def test_hits_are_ordered_by_field_then_offset() -> None:
    doc = doc_of(title="Korea troops", content="troops Korea")
    hits = evaluate(parse_query("Korea troops"), doc, fields=("content", "title"))
    assert hits is not None
    assert [(h.field, h.term) for h in hits] == [
        ("content", "troops"),
        ("content", "Korea"),
        ("title", "Korea"),
        ("title", "troops"),
    ]


def test_hit_offsets_point_at_original_text_after_nfkc_changes_length() -> None:
    text = "ﬁnal report: ＵＳＦＫ’s 28,500 troops"
    assert hit_texts("USFK OR 28500 OR final", text) == ["ﬁnal", "ＵＳＦＫ", "28,500"]


def test_term_repeated_in_the_query_yields_each_hit_once() -> None:
    assert hit_texts("USFK OR (USFK troops)", "USFK troops") == ["USFK", "troops"]


def test_document_from_article_uses_title_summary_and_content() -> None:
    doc = Document.from_article(article(title="USFK", summary="troops", content="Korea"))
    hits = evaluate(parse_query("USFK troops Korea"), doc)
    assert hits is not None
    assert [h.field for h in hits] == ["title", "summary", "content"]


# --- rules -----------------------------------------------------------------------------------


def test_match_rule_reports_distinct_terms_in_query_order() -> None:
    query = '주한미군 OR (USFK "American troops") OR Japan'
    rule = Rule("usfk", query, "#korea", expr=parse_query(query))
    found = match_rule(rule, doc_of("American troops: USFK, USFK and 주한미군은"))
    assert found is not None
    assert found.rule == "usfk"
    assert found.terms == ("주한미군", "USFK", "American troops")
    assert [h.term for h in found.hits] == ["American troops", "USFK", "USFK", "주한미군"]


def test_match_rule_respects_rule_fields() -> None:
    rule = Rule("usfk", "USFK", "#korea", fields=("title",), expr=parse_query("USFK"))
    assert match_rule(rule, doc_of(content="USFK")) is None
    assert match_rule(rule, doc_of(title="USFK")) is not None


def test_match_rule_returns_none_without_a_match() -> None:
    rule = Rule("usfk", "USFK", "#korea", expr=parse_query("USFK"))
    assert match_rule(rule, doc_of("nothing here")) is None


def test_match_rule_parses_the_query_of_an_uncompiled_rule() -> None:
    assert match_rule(Rule("usfk", "USFK", "#korea"), doc_of("USFK")) is not None


def test_match_rule_rejects_a_foreign_expr() -> None:
    with pytest.raises(TypeError, match="not a parsed query"):
        match_rule(Rule("usfk", "USFK", "#korea", expr="USFK"), doc_of("USFK"))


# --- the real article users want alerts for --------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> str:
    return need(SAMPLE_ARTICLE).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "query",
    [
        '"wartime operational control"',
        '"American troops" OR "military presence"',
        '28,500 "American troops"',
        '"U.S." "South Korea" alliance NOT Germany',
        "Hegseth Ahn NOT (Germany OR 주한미군)",
        'reduc* "military presence" NOT Germany',
    ],
)
def test_sample_article_matches(sample: str, query: str) -> None:
    assert evaluate(parse_query(query), doc_of(sample)) is not None


@pytest.mark.parametrize("query", ['"South Korean troops"', "USFK", "OPCON", "Germany", "troop"])
def test_sample_article_does_not_match(sample: str, query: str) -> None:
    assert evaluate(parse_query(query), doc_of(sample)) is None


def test_sample_hits_point_at_the_words_in_the_article(sample: str) -> None:
    hits = evaluate(parse_query('"wartime operational control" OR 28,500'), doc_of(sample))
    assert hits is not None
    assert [sample[h.start : h.end] for h in hits] == ["wartime operational control", "28,500"]
