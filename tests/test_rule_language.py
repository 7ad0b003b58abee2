"""Proximity, field scopes, exact case and Korean spacing: parsing and matching."""

from __future__ import annotations

import time

import pytest

from bot.errors import QuerySyntaxError
from bot.match import Document, evaluate
from bot.query import And, Near, Or, Scope, Term, never_matches, parse_query, terms


def doc_of(title: str = "", summary: str = "", content: str = "") -> Document:
    return Document.from_fields({"title": title, "summary": summary, "content": content})


def hits(query: str, title: str = "", summary: str = "", content: str = "") -> list[str] | None:
    """The original text every hit covers, or None when the query does not match."""
    texts = {"title": title, "summary": summary, "content": content}
    found = evaluate(parse_query(query), doc_of(title, summary, content))
    return None if found is None else [texts[h.field][h.start : h.end] for h in found]


# --- proximity ---------------------------------------------------------------------------------


def test_near_parses_to_a_node_with_both_sides_and_the_distance() -> None:
    expr = parse_query('(troop* OR forces) NEAR/8 "South Korea"')
    assert isinstance(expr, Near)
    assert (expr.distance, expr.ordered) == (8, False)
    assert isinstance(expr.left, Or)
    assert [t.text for t in terms(expr)] == ["troop*", "forces", "South Korea"]


def test_near_binds_tighter_than_and_and_or() -> None:
    expr = parse_query("a NEAR/2 b c OR d")
    assert isinstance(expr, Or)
    first = expr.children[0]
    assert isinstance(first, And) and isinstance(first.children[0], Near)


def test_near_counts_words_between_the_two_terms_either_order() -> None:
    text = "troops stationed in South Korea"
    assert hits('troop* NEAR/3 "South Korea"', text) == ["troops", "South Korea"]
    assert hits('troop* NEAR/2 "South Korea"', text) is None
    assert hits('"South Korea" NEAR/3 troop*', text) == ["troops", "South Korea"]
    assert hits("troops NEAR/1 stationed", text) is not None


def test_onear_needs_the_left_side_first() -> None:
    assert hits("troops ONEAR/4 Korea", "troops stationed in South Korea") is not None
    assert hits("Korea ONEAR/4 troops", "troops stationed in South Korea") is None


def test_near_looks_inside_one_field_only() -> None:
    assert hits("troops NEAR/3 Korea", title="US troops", summary="Korea says") is None


def test_near_with_groups_phrases_and_wildcards_reports_the_close_pair_only() -> None:
    text = "Forces moved. Many words stand here in between them all. Peninsula troops left."
    query = '(troop* OR forces OR "military presence") NEAR/2 (peninsula OR 한반도)'
    assert hits(query, content=text) == ["Peninsula", "troops"]


def test_korean_words_are_eojeol_and_a_term_inside_one_sits_at_its_position() -> None:
    assert hits("주한미군 NEAR/1 감축", "주한미군은 대규모 감축") is None
    assert hits("주한미군 NEAR/2 감축", "주한미군은 대규모 감축") == ["주한미군", "감축"]
    assert hits("주한미군 NEAR/1 감축", "주한미군감축 논란") == ["주한미군", "감축"]


@pytest.mark.parametrize(
    ("query", "column", "reason"),
    [
        ("a NEAR b", 3, "needs a distance"),
        ("a NEAR/0 b", 3, "1 to 100"),
        ("a NEAR/101 b", 3, "1 to 100"),
        ("a near/3 b", 3, "capitals"),
        ("a NEAR/3 (b c)", 10, "joined by OR"),
        ("(a NOT b) NEAR/3 c", 1, "joined by OR"),
        ("a NEAR/3 b NEAR/2 c", 12, "combine two of them with AND"),
        ("a NEAR/3", 3, "needs a term or group after it"),
        ("NEAR/3 b", 1, "needs a term before it"),
        ("title:a NEAR/3 b", 1, "around the whole proximity"),
    ],
)
def test_proximity_mistakes_name_their_column(query: str, column: int, reason: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    assert (caught.value.column, reason in caught.value.reason) == (column, True)


def test_lower_case_near_alone_is_an_ordinary_word() -> None:
    assert parse_query("troops near border") == parse_query("troops AND near AND border")


# --- field scopes ------------------------------------------------------------------------------


def test_field_scope_applies_to_a_term_a_phrase_or_a_group() -> None:
    assert parse_query("title:USFK") == Scope("title", parse_query("USFK"))
    assert parse_query('summary:"South Korea"') == Scope("summary", parse_query('"South Korea"'))
    scoped = parse_query("content:(a OR b) c")
    assert scoped == And((Scope("content", parse_query("a OR b")), parse_query("c")))


def test_field_scope_matches_only_in_its_field() -> None:
    assert hits("title:USFK", title="USFK cuts") == ["USFK"]
    assert hits("title:USFK", summary="USFK cuts") is None
    assert hits("title:(USFK cuts) OR summary:troops", summary="troops") == ["troops"]


def test_field_scopes_nest_and_a_contradicting_nesting_can_never_match() -> None:
    assert hits("title:(a title:(b))", title="a b") == ["a", "b"]
    with pytest.raises(QuerySyntaxError, match="can never match") as caught:
        parse_query("title:(summary:x)")
    assert caught.value.column == 8


def test_field_scope_mistakes_are_named() -> None:
    with pytest.raises(QuerySyntaxError, match="unknown field 'headline'"):
        parse_query("headline:(x)")
    with pytest.raises(QuerySyntaxError, match="no space after"):
        parse_query("title: x")
    assert parse_query("Re:Seoul") == parse_query('"re seoul"')  # not a field name


def test_a_scope_outside_the_rules_fields_never_matches() -> None:
    expr = parse_query("title:x OR y")
    assert never_matches(expr, ("summary",)) is None  # y can still match
    reason = never_matches(parse_query("title:x y"), ("summary", "content"))
    assert reason is not None and "outside the fields searched" in reason[0]


def test_requiring_and_excluding_the_same_thing_can_never_match() -> None:
    for query in ("x NOT x", '"a b" c NOT ("a b" OR d)', "(a NEAR/2 b) NOT (a NEAR/2 b)"):
        with pytest.raises(QuerySyntaxError, match="can never match"):
            parse_query(query)
    parse_query("x NOT y")


# --- exact case --------------------------------------------------------------------------------


def test_braces_match_only_the_exact_case() -> None:
    assert parse_query("{US}") == Term("{US}", ("us",), (False,), cased=("US",))
    assert hits("{US} troops", "U.S. troops") == ["U.S.", "troops"]
    assert hits("{US} troops", "US troops") is not None
    assert hits("{US} troops", "let us send troops") is None
    assert hits("{AID}", "USAID and AID") == ["AID"]
    assert hits("{AID}", "first aid") is None


def test_exact_case_phrase_and_prefix() -> None:
    assert hits("{ROK Army}", "the ROK Army said") == ["ROK Army"]
    assert hits("{ROK Army}", "the rok army said") is None
    assert hits("{NAT*}", "NATO and nation") == ["NATO"]


def test_exact_case_mistakes_are_named() -> None:
    with pytest.raises(QuerySyntaxError, match="unterminated") as caught:
        parse_query("a {US")
    assert caught.value.column == 3
    with pytest.raises(QuerySyntaxError, match="unbalanced '}'"):
        parse_query("US}")


# --- normalization and Korean spacing ---------------------------------------------------------


@pytest.mark.parametrize("query", ["주한미군", '"주한 미군"'])
@pytest.mark.parametrize("text", ["주한미군 감축", "주한 미군 감축", "주한미군은", "주한 미군의"])
def test_korean_spacing_does_not_matter(query: str, text: str) -> None:
    assert hits(query, text) is not None


def test_korean_phrase_tolerates_particles_between_its_words() -> None:
    assert hits('"주한미군 감축"', "주한미군의 감축 논의") == ["주한미군의 감축"]
    assert hits('"주한미군 감축"', "주한미군을 감축") is not None
    assert hits('"주한미군 감축"', "주한미군 병력 감축") is None


def test_zero_width_and_wide_spaces_between_korean_words_are_spacing() -> None:
    for space in ("\u00a0", "\u3000", "\u200b", "\t"):
        assert hits("주한미군", f"주한{space}미군") is not None, repr(space)
    assert hits("주한미군", "주한, 미군") is None


def test_whitespace_variants_inside_an_english_phrase() -> None:
    for space in ("\u00a0", "\u2009", "\u3000", "\n  "):
        assert hits('"U.S. Forces Korea"', f"U.S.{space}Forces Korea") is not None


def test_proximity_over_a_huge_field_of_one_repeated_word_stays_fast() -> None:
    text = "the " * 50_000  # content is capped at 200,000 characters; the feed fills it
    doc = doc_of(content=text)
    started = time.perf_counter()
    found = evaluate(parse_query("the NEAR/10 the"), doc)
    assert found is not None and len(found) == 50_000
    assert time.perf_counter() - started < 20  # generous: pairing them all would take minutes
