"""The query language: grammar, precedence, terms and every syntax error with its column."""

from __future__ import annotations

import pickle

import pytest

from bot.errors import QuerySyntaxError
from bot.query import And, Not, Or, Term, describe, parse_query, terms


def word(text: str, prefix: bool = False) -> Term:
    return Term(text, (text,), (prefix,))


def phrase(*words: str) -> Term:
    return Term(
        " ".join(words),
        tuple(w.rstrip("*") for w in words),
        tuple(w.endswith("*") for w in words),
        phrase=True,
    )


def test_single_word_is_a_term_with_its_normalized_word() -> None:
    term = parse_query("Troops")
    assert term == word("troops")
    assert isinstance(term, Term)
    assert term.text == "Troops"
    assert not term.phrase
    assert not term.prefix


def test_side_by_side_terms_are_anded() -> None:
    assert parse_query("troops Korea") == And((word("troops"), word("korea")))
    assert parse_query("troops AND Korea") == parse_query("troops Korea")


def test_or_binds_looser_than_implicit_and() -> None:
    assert parse_query("a OR b c") == Or((word("a"), And((word("b"), word("c")))))


def test_or_binds_looser_than_explicit_and() -> None:
    assert parse_query("a AND b OR c") == Or((And((word("a"), word("b"))), word("c")))


def test_not_binds_tighter_than_and() -> None:
    assert parse_query("NOT a b") == And((Not(word("a")), word("b")))
    assert parse_query("b NOT a") == And((word("b"), Not(word("a"))))


def test_parentheses_group_before_precedence() -> None:
    assert parse_query("(a OR b) c") == And((Or((word("a"), word("b"))), word("c")))
    assert parse_query("c NOT (a OR b)") == And((word("c"), Not(Or((word("a"), word("b"))))))


def test_nested_groups_of_the_same_operator_are_flattened() -> None:
    assert parse_query("a OR (b OR c)") == Or((word("a"), word("b"), word("c")))
    assert parse_query("(a b) (c d)") == And(tuple(word(w) for w in "abcd"))


def test_double_negation_cancels() -> None:
    assert parse_query("a NOT NOT b") == And((word("a"), word("b")))


def test_quoted_words_form_a_phrase() -> None:
    term = parse_query('"Wartime Operational Control"')
    assert term == phrase("wartime", "operational", "control")
    assert isinstance(term, Term)
    assert term.text == "Wartime Operational Control"


@pytest.mark.parametrize("quotes", ['""', "“”", "„“", "«»"])
def test_typographic_quotes_delimit_phrases(quotes: str) -> None:
    assert parse_query(f"{quotes[0]}American troops{quotes[1]}") == phrase("american", "troops")


def test_operator_words_inside_quotes_are_searched_for() -> None:
    assert parse_query('"troops or forces"') == phrase("troops", "or", "forces")
    assert parse_query('"not"') == Term("not", ("not",), (False,), phrase=True)


def test_term_of_several_words_is_a_phrase() -> None:
    assert parse_query("U.S.-ROK") == phrase("us", "rok")
    assert parse_query("F-35A") == phrase("f", "35a")
    assert parse_query("USFK는") == phrase("usfk", "는")


def test_term_is_normalized_like_article_text() -> None:
    assert parse_query("28,500") == word("28500")
    assert parse_query("U.S.") == word("us")
    assert parse_query("ＵＳＦＫ") == word("usfk")


def test_trailing_star_makes_a_prefix() -> None:
    term = parse_query("withdraw*")
    assert term == word("withdraw", prefix=True)
    assert isinstance(term, Term)
    assert term.prefix
    assert term.text == "withdraw*"


def test_star_on_words_inside_a_phrase() -> None:
    assert parse_query('"withdraw* American troop*"') == phrase("withdraw*", "american", "troop*")


def test_star_after_a_multiword_term_applies_to_its_last_word() -> None:
    assert parse_query("U.S.-ROK*") == phrase("us", "rok*")


def test_punctuation_between_phrase_words_is_ignored() -> None:
    assert parse_query('"Q & A"') == phrase("q", "a")


def test_hangul_term() -> None:
    assert parse_query("주한미군 감축") == And((word("주한미군"), word("감축")))


def test_describe_prints_canonical_form() -> None:
    query = "troops  or_not OR (“U.S. Forces Korea” AND 28,500*) NOT Japan"
    expected = '(troops AND "or not") OR ("us forces korea" AND 28500* AND NOT japan)'
    assert describe(parse_query(query)) == expected


@pytest.mark.parametrize(
    "query",
    [
        "a OR b c",
        "NOT (a OR b) c",
        '"withdraw* troops" OR U.S.-ROK*',
        "(a OR b) (c OR d) NOT (e f)",
        "주한미군 (감축 OR 철수) NOT 北",
        'a NOT (NOT b OR "c d")',
    ],
)
def test_canonical_form_parses_back_to_the_same_query(query: str) -> None:
    expr = parse_query(query)
    assert parse_query(describe(expr)) == expr
    assert str(expr) == describe(expr)


def test_terms_lists_every_term_in_query_order() -> None:
    found = terms(parse_query('USFK OR ("American troops" 28,500) NOT Japan OR USFK'))
    assert [t.text for t in found] == ["USFK", "American troops", "28,500", "Japan", "USFK"]


def test_parsed_query_survives_pickling_to_a_worker_process() -> None:
    expr = parse_query('a OR ("b cd*" NOT e)')
    assert pickle.loads(pickle.dumps(expr)) == expr


def test_term_remembers_its_column() -> None:
    found = terms(parse_query('troops  "US Forces"'))
    assert [t.column for t in found] == [1, 9]


@pytest.mark.parametrize(
    ("query", "column", "reason"),
    [
        ("", 1, "empty"),
        ("   ", 1, "empty"),
        ("(troops", 1, "unbalanced '('"),
        ("a (b OR c", 3, "unbalanced '('"),
        ("a (", 3, "unbalanced '('"),
        ("troops)", 7, "unbalanced ')'"),
        (") troops", 1, "unbalanced ')'"),
        ("(a) b)", 6, "unbalanced ')'"),
        ("a ()", 4, "empty parentheses"),
        ('troops "American', 8, "unterminated quote"),
        ('a ""', 3, "empty phrase"),
        ('a " - "', 3, "empty phrase"),
        ("troops AND", 8, "AND needs a term after it"),
        ("troops OR", 8, "OR needs a term after it"),
        ("troops NOT", 8, "NOT needs a term after it"),
        ("AND troops", 1, "AND needs a term before it"),
        ("OR troops", 1, "OR needs a term before it"),
        ("a OR OR b", 3, "OR needs a term after it, found 'OR'"),
        ("a AND OR b", 3, "AND needs a term after it"),
        ("(a OR) b", 4, "OR needs a term after it, found ')'"),
        ("( AND a)", 3, "AND needs a term before it"),
        ("NOT troops", 1, "match almost every article"),
        ("NOT a NOT b", 1, "match almost every article"),
        ("troops OR NOT Japan", 11, "'NOT japan' alone"),
        ("x OR (NOT a NOT b)", 7, "'NOT a' alone"),
        ("troops or forces", 8, "write OR"),
        ("troops and forces", 8, "write AND"),
        ("not Japan", 1, "write NOT"),
        ("troops Or forces", 8, "in quotes"),
        ("a*", 2, "at least 2"),
        ("미*", 2, "at least 2"),
        ("*", 1, "at least 2"),
        ("a.-*", 4, "right before it"),
        ("*troops", 1, "only at the end"),
        ("tr*oops", 3, "only at the end"),
        ("troops**", 7, "only at the end"),
        ('"withdraw* t*"', 13, "at least 2"),
        ('"with*draw troops"', 6, "only at the end"),
        ('"troops *"', 9, "at least 2"),
        ("troops &", 8, "no letters or digits"),
        ("-Japan troops", 1, "write NOT Japan"),
        ("troops –Japan", 8, "write NOT Japan"),
        ("^(a+)+$", 1, "regular-expression syntax"),
        ("(a+)+", 3, "regular-expression syntax"),
        ("(a)\\1 troops", 4, "regular-expression syntax"),
        ("(?=troops)USFK", 2, "regular-expression syntax"),
        ("troops (?!Japan)", 9, "regular-expression syntax"),
        ("troops|forces", 7, "regular-expression syntax"),
        ("[Tt]roops", 1, "regular-expression syntax"),
    ],
)
def test_syntax_error_names_the_offending_column(query: str, column: int, reason: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    assert caught.value.column == column
    assert reason in caught.value.reason


def test_lowercase_operator_error_suggests_uppercase_or_quotes() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query("troops or forces")
    assert caught.value.reason == (
        "'or' is not an operator: write OR to combine terms, "
        'or "or" in quotes to search for the word'
    )
    assert str(caught.value) == f"column 8: {caught.value.reason}"


def test_negation_inside_a_required_group_is_accepted() -> None:
    expr = parse_query("NOT (NOT troops OR Japan)")
    assert expr == Not(Or((Not(word("troops")), word("japan"))))
