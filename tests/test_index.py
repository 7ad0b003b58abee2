"""The rule index finds exactly what the reference evaluator finds, on chosen and random cases."""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.app import App, fetch_policy
from bot.clock import FixedClock
from bot.config import load_config
from bot.decide import Page, Spans, compile_rule, decide, exact_key
from bot.errors import IndexMissing
from bot.expr import Expr, Term
from bot.fetch import Fetcher
from bot.hits import _hit
from bot.index import (
    RuleIndex,
    Shipped,
    frequency,
    program_groups,
    receive,
    required,
    term_key,
    word_key,
)
from bot.match import Document, match_rule
from bot.models import FIELDS, Article, Hit, Rule, RuleMatch
from bot.query import parse_query, parse_term
from bot.runtime import Runtime, make_worker_pool
from bot.slack import SlackSender
from bot.store import Store
from bot.textnorm import is_hangul, tokenize
from tests.e2e import Item, make_app, rss, write_config
from tests.factories import article as make_article
from tests.feedserver import FeedServer
from tests.slackdouble import TOKEN, SlackDouble

T = TypeVar("T")

ALIASES = {
    "usfk": tuple(
        parse_term(t) for t in ("USFK", "U.S. Forces Korea", "주한미군", "한국 주둔 미군")
    ),
    "cut": tuple(parse_term(t) for t in ("withdraw*", "감축", "{ROK}")),
}


def reference(article: Article, rules: list[Rule]) -> list[tuple[Rule, RuleMatch]]:
    """What the plain evaluator says: every rule in turn against the article's Document."""
    doc = Document.from_article(article)
    found = []
    for rule in rules:
        if rule.feeds is not None and article.feed not in rule.feeds:
            continue
        match = match_rule(rule, doc)
        if match is not None:
            found.append((rule, match))
    return found


def rule(query: str, name: str = "r", **changes: object) -> Rule:
    base: dict[str, object] = {"name": name, "query": query, "channel": "#news"}
    base.update(changes)
    return Rule(**{**base, "expr": parse_query(query, ALIASES, check=False)})  # type: ignore[arg-type]


def names(found: list[tuple[Rule, RuleMatch]]) -> list[str]:
    return [r.name for r, _ in found]


def names_of(rules: list[Rule]) -> list[str]:
    return [r.name for r in rules]


# --- chosen cases ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "text", "matched"),
    [
        ("troop*", "Troopers and troops", True),
        ("troop", "troops only", False),
        ("{US}", "the U.S. said", True),
        ("{US}", "tell us more", False),
        ("us", "U.S.-ROK talks", True),
        ('"28,500"', "about 28,500 troops", True),
        ("28500", "about ２８，５００ troops", True),
        ("주한미군", "주한 미군은 감축", True),
        ('"주한미군 감축"', "주한미군의 감축 논의", True),
        ("@usfk NEAR/2 @cut", "주한미군 감축", True),
        ("USFK ONEAR/3 withdraw*", "withdrawal of USFK", False),
        ("title:USFK", "USFK in the body only", False),
        ("usfk NOT japan", "USFK and Japan", False),
        ("美", "韓美 동맹", True),
        ("café", "cafe\u0301 terrace", True),
        ("army", "U.S.Army units", True),
        ("usfk", "USFK는 밝혔다", True),
        # decided from the article's words alone: the cases that could tell them apart
        ("감축", "감\u200b축을 논의", True),  # an invisible format character spaces eojeols
        ("감축", "감. 축", False),  # a full stop between eojeols breaks the run
        ("감축", "\u1100\u1161\u11b7 \u110e\u116e\u11a8을", True),  # conjoining jamo
        ('"주한미군 감축"', "주한미군에서의 감축", True),  # a particle between the words
        ('"주한미군 감축"', "주한미군 일부 감축", False),
        ("주한미군 NEAR/1 감축", "주한 미군 병력 감축", False),  # a term across eojeols
        ("주한미군 NEAR/2 감축", "주한 미군 병력 감축", True),
        ("감축 ONEAR/1 주한", "주한미군감축", False),  # the order inside one eojeol
        ("주한 ONEAR/1 감축", "주한미군감축", True),
        ('"us us"', "us us us", True),  # overlapping occurrences of a phrase
        ('"us army" ONEAR/1 army', "us army army", True),
        ('army ONEAR/1 "us army"', "us army", False),  # they start at the same word
        ('"south kor*"', "South Koreans said", True),  # a wildcard at a phrase's end
        ('"south kor*"', "South-Korean", True),
        ('"south kor*"', "south. Japan, Korea", False),
        ("troop*", "troop", True),
        ("troops*", "troop", False),
        ("{US}", "us US", True),
        ("{US}", "Us us", False),
        ("{US*}", "USFK", True),
        ("{US*}", "usfk", False),
        ('"{US} army"', "US army", True),
        ("감축", "감축감축을 감축", True),  # each place inside an eojeol is a hit
        ('"usfk 감축"', "USFK 병력감축을 감축", True),  # a Hangul word inside a phrase
        ("{US} NEAR/2 감축", "US 감축", True),
        ("cafe", "Cafe\u0301 ＣＡＦＥ cafe", True),  # NFKC changes the length of a word
        ("미군 AND usfk", "USFK주한미군은 밝혔다", True),  # a Hangul key inside an eojeol
        ("미군 AND usfk", "USFK\u1100\u1161 주한미군은", True),  # the same, on a page with jamo
    ],
)
def test_index_agrees_with_reference_on_chosen_cases(query: str, text: str, matched: bool) -> None:
    rules = [rule(query)]
    article = make_article(title="", summary="", content=text)
    want = reference(article, rules)
    assert bool(want) is matched
    assert RuleIndex(rules).matches(article) == want
    texts = {name: article.field_text(name) for name in FIELDS}
    assert names_of(RuleIndex(rules).matching(texts)) == names(want)


@pytest.mark.parametrize(
    ("query", "title", "content", "matched"),
    [
        ("usfk NEAR/3 withdraw*", "USFK", "withdrawal", False),  # never across two fields
        ("usfk NEAR/3 withdraw*", "USFK withdrawal", "", True),
        ('title:"south korea"', "South Korea", "", True),
        ('title:"south korea"', "", "South Korea", False),
        ("title:(감축 NEAR/1 주한미군)", "주한미군 감축", "", True),
        ("title:usfk AND content:(usfk NOT japan)", "USFK", "USFK, Japan", False),
    ],
)
def test_fields_keep_their_meaning_when_decided(
    query: str, title: str, content: str, matched: bool
) -> None:
    rules = [rule(query)]
    article = make_article(title=title, summary="", content=content)
    want = reference(article, rules)
    assert bool(want) is matched
    assert RuleIndex(rules).matches(article) == want
    texts = {name: article.field_text(name) for name in FIELDS}
    assert names_of(RuleIndex(rules).matching(texts)) == names(want)


PAGE_TEXTS = [
    "U.S.Army and 28,500.The end",
    "ＵＳＦＫ 주한 미군은",
    "a\u0301b 1,234,567 x.y.z",
    "韓美",
    "Straße ﬁnal ǅ ＡＢＣ 1,5 a.b.c. Ａ．Ｂ．",
]


def test_each_words_key_is_in_the_view_of_a_page_holding_it() -> None:
    for text in PAGE_TEXTS:
        view = Page.of({"content": text}).view()
        for token in tokenize(text):
            key = word_key(token.text, prefix=False)
            assert key in view, (text, key)


def test_each_hangul_word_of_an_exact_page_stands_in_its_runs() -> None:
    # the index looks for Hangul keys in the runs only, so every Hangul word must be there
    for text in [*PAGE_TEXTS, "주한미군은 감축을, 美韓 동맹(同盟) 병력\u200b감축 ＵＳ주둔"]:
        words = Page.of({"content": text}).fields["content"]
        assert words.exact
        for word in words.words:
            if any("\uac00" <= c <= "\ud7a3" for c in word):
                assert is_hangul(word), (text, word)
                assert word in words.hangul, (text, word)


def test_a_pages_words_are_the_tokenizers_at_the_same_offsets() -> None:
    for text in PAGE_TEXTS:
        words = Page.of({"content": text}).fields["content"]
        tokens = tokenize(text)
        assert words.exact
        assert words.words == [t.text for t in tokens]
        assert words.cased == [t.cased for t in tokens]
        spans = Spans(words.spans)
        assert [spans[i] for i in range(len(spans))] == [(t.start, t.end) for t in tokens]


def test_a_rule_is_filed_under_a_required_group() -> None:
    expr = parse_query('(a OR b) AND "wartime operational control" NOT c')
    groups = required(expr)
    assert frozenset({" a ", " b "}) in groups
    assert frozenset({" wartime operational control "}) in groups  # a phrase's words in order
    assert required(parse_query("x NOT y", check=False)) == [frozenset({" x "})]
    assert required(parse_query("NOT y", check=False)) == []


@pytest.mark.parametrize("every_field", [True, False])
@pytest.mark.parametrize(
    "query",
    [
        "a AND (b OR c)",
        '(a OR b) AND "wartime operational control" NOT c',
        "x NOT y",
        "NOT y",
        "(a OR b) AND title:(c OR d)",
        "(a OR b) NEAR/5 (c OR dd*)",
        "(a NEAR/3 b) AND (c OR d)",
        "(a AND b) OR c",
        "(a AND b) OR (c AND NOT d)",
        "주한미군 AND ({US} OR usfk)",
        '"주한 미군" OR troop* OR "south kor*"',
        "troop* AND (a OR (b AND (c OR d)))",
    ],
)
def test_groups_read_off_a_compiled_rule_are_its_required_groups(
    query: str, every_field: bool
) -> None:
    expr = parse_query(query, check=False)
    ids: dict[str, int] = {}

    def key_ids(term: Term) -> list[int]:  # as the index numbers a term's keys
        key = exact_key(term)
        words = zip(term.words, term.prefixes, strict=True)
        found = [key] if key else [term_key(term), *(word_key(w, p) for w, p in words)]
        return [ids.setdefault(k, len(ids)) for k in dict.fromkeys(found)]

    def expr_groups(part: Expr) -> list[frozenset[int]]:
        return [frozenset(ids.setdefault(k, len(ids)) for k in g) for g in required(part)]

    def cost(group: frozenset[int]) -> float:
        names = {v: k for k, v in ids.items()}
        return sum(frequency(names[i]) for i in group)

    program = compile_rule(expr, every_field, key_ids)
    groups = program_groups(program, cost, expr_groups)
    names = {v: k for k, v in ids.items()}
    assert sorted(sorted(names[i] for i in g) for g in groups) == sorted(
        sorted(g) for g in required(expr)
    )


def test_rule_without_required_term_is_still_evaluated() -> None:
    rules = [rule("NOT japan", name="not-japan")]
    article = make_article(title="Korea", summary="", content="")
    assert names(RuleIndex(rules).matches(article)) == ["not-japan"]


def test_rules_limited_to_other_feeds_are_skipped() -> None:
    rules = [rule("korea", name="a", feeds=("other",)), rule("korea", name="b")]
    article = make_article(title="Korea", summary="", content="", feed="mine")
    assert names(RuleIndex(rules).matches(article)) == ["b"]


def test_matches_come_in_rule_order() -> None:
    rules = [rule(q, name=str(i)) for i, q in enumerate(["zeta", "korea", "alpha", "korea OR x"])]
    article = make_article(title="Korea zeta alpha", summary="", content="")
    assert names(RuleIndex(rules).matches(article)) == ["0", "1", "2", "3"]


def test_hits_of_a_matching_rule_are_the_references_without_tokenizing() -> None:
    """Every alternative found, a Hangul word found across eojeols and a Hangul phrase with a
    particle: the hits made from the page are the reference's, offsets included."""
    rules = [
        rule("(usfk OR troop* OR 감축) AND (주한미군 OR korea)", name="and-of-ors"),
        rule('"주한미군 감축" OR 미군감', name="hangul"),
        rule("(usfk OR 주한미군) NEAR/3 감축", name="near"),
    ]
    article = make_article(
        title="USFK troops: Korea",
        summary="주한 미군의 감축, troopers",
        content="주한미군은 감축 논의 — USFK",
    )
    found = RuleIndex(rules).matches(article)
    assert found == reference(article, rules)
    assert names(found) == ["and-of-ors", "hangul", "near"]
    assert len(found[0][1].hits) >= 6


@pytest.mark.parametrize(
    ("query", "title", "summary", "content"),
    [
        ("usfk", "USFK", "", "The USFK said USFK"),  # a term in two fields
        ("usfk", "The USFK", "USFK said", ""),  # a later field's first word, right after one
        ('usfk OR "usfk troops"', "", "", "USFK troops and USFK"),  # a term inside a phrase
        ("(@usfk OR korea) AND (@cut OR troop*)", "USFK cuts", "", "주한미군 감축, Korea"),
        ("{US} OR korea OR US", "", "", "Korea and us, US"),  # `US` written alike, not alike
        ("({US} OR troop*) AND us", "", "", "US troops, us"),
        ("usfk OR @usfk", "", "", "USFK"),  # written alike in two alias sets' ways
        ("주한미군 AND (감축 OR 철수)", "", "", "주한미군은 감축을, 주한 미군의 철수"),
        ('"주한미군 감축" OR 미군', "", "", "주한미군의 감축, 주한 미군에서의 감축"),
        ("주주 OR 감축", "", "", "주주주 총회, 주 주주, 감 축, 감축감축"),  # overlapping places
        ("감축", "감\u200b축", "", "병력\n감축. 감. 축 감축을"),  # across eojeols, or not
        ("troop* AND (korea* OR 美)", "Troopers", "Koreans", "troops 韓美 korea"),  # wildcards
        ("(usfk OR usfk) AND (usfk OR korea)", "", "", "USFK in Korea"),  # duplicate terms
        ('"south korea" OR "korea south"', "", "", "South Korea south korea South"),
        ("감축 OR usfk", "", "", "USFK\u1100\u1161 감축을"),  # a page with jamo
    ],
)
def test_hits_of_an_and_of_ors_are_the_references(
    query: str, title: str, summary: str, content: str
) -> None:
    """The hits of a rule that is an AND of ORs of terms, taken from each term's key and its
    places, are the reference's: terms, fields, offsets and order."""
    rules = [rule(query, fields=FIELDS), rule(query, name="in-title", fields=("title",))]
    article = make_article(title=title, summary=summary, content=content)
    want = reference(article, rules)
    assert want, "the case should match"
    assert RuleIndex(rules).matches(article) == want


@pytest.mark.parametrize(
    ("query", "title", "content"),
    [
        ("usfk NEAR/3 withdraw*", "USFK", "withdrawal"),  # never across two fields
        ("usfk NEAR/3 withdraw*", "USFK withdrawal", "withdrawal, USFK and USFK"),
        ("army NEAR/2 army", "", "army and the army"),  # a term twice: near itself too
        ("(usfk OR troops) NEAR/3 usfk AND korea", "", "troops of USFK in Korea"),
        ("usfk ONEAR/3 withdraw*", "", "withdrawal of USFK; USFK withdraws"),  # in order only
        ("withdraw* ONEAR/3 usfk", "", "USFK withdrawal"),
        ('"us army" ONEAR/1 army', "", "us army army"),  # overlapping places
        ('army ONEAR/1 "us army"', "", "us army"),  # they start at the same word
        ('"south korea" NEAR/1 korea*', "", "South Korea, Koreans"),
        ("주한미군 NEAR/2 감축", "", "주한 미군 병력 감축"),  # a Hangul term across eojeols
        ("주한미군 NEAR/1 감축", "", "주한 미군 병력 감축"),
        ("감축 ONEAR/1 주한", "", "주한미군감축"),  # the order inside one eojeol
        ("주한 ONEAR/1 감축", "", "주한미군감축, 감축"),
        ("(@usfk OR korea) NEAR/2 @cut", "", "주한미군 감축, USFK withdrawal"),
        # a NEAR's term far from the other side, that an OR then finds: the query's order
        ("(usfk OR troops) NEAR/2 korea AND (japan OR usfk)", "", "USFK said the troops in Korea"),
        ("korea AND (usfk OR troops) NEAR/2 korea", "", "Korea: USFK, then troops"),
    ],
)
def test_hits_of_an_and_of_ors_and_nears_are_the_references(
    query: str, title: str, content: str
) -> None:
    """A rule with a NEAR among its ORs is matched and given its hits from its terms' places
    (`hits.keyed_hits`), as the reference finds them: only the places of close pairs."""
    rules = [rule(query, fields=FIELDS), rule(query, name="in-content", fields=("content",))]
    index = RuleIndex(rules)
    assert index._keyed[0] is not None and index._keyed[1] is not None  # from the places
    article = make_article(title=title, summary="", content=content)
    assert index.matches(article) == reference(article, rules)


@pytest.mark.parametrize(
    "query", ["usfk", "usfk OR korea", "usfk NEAR/2 korea", '"usfk troops" AND korea']
)
def test_hits_come_in_the_order_of_the_rules_fields(query: str) -> None:
    rules = [rule(query, fields=("content", "title"))]
    article = make_article(title="USFK troops, Korea", summary="", content="Korea: USFK troops")
    ((_, match),) = found = RuleIndex(rules).matches(article)
    assert found == reference(article, rules)
    assert match.hits[0].field == "content"


def test_a_rule_with_terms_written_alike_but_unlike_keeps_the_references_order() -> None:
    rules = [rule("{US} OR korea OR US", name="clash"), rule("korea OR US", name="plain")]
    index = RuleIndex(rules)
    article = make_article(title="", summary="", content="Korea and us")
    ((_, clash), (_, plain)) = index.matches(article)
    assert index._keyed[0] is None  # hits from the reference: `{US}` and `US` are both "US"
    assert index._keyed[1]  # from the terms' keys
    assert clash.terms == ("US", "korea")  # the order of `{US}`, which did not fire
    assert plain.terms == ("korea", "US")
    assert index.matches(article) == reference(article, rules)


def test_a_rule_without_its_parsed_query_is_parsed_once_for_the_index() -> None:
    plain = Rule(name="p", query="troop* korea", channel="#news")
    article = make_article(title="Troops in Korea", summary="", content="")
    ((found, match),) = RuleIndex([plain]).matches(article)
    assert found is plain
    assert match.terms == ("troop*", "korea")


# --- workers ---------------------------------------------------------------------------------


def test_worker_asks_for_an_index_it_lacks_and_keeps_the_one_it_gets() -> None:
    index = RuleIndex([rule("korea", name="k")])
    with pytest.raises(IndexMissing):
        receive(Shipped(index.generation))
    received = receive(pickle.loads(pickle.dumps(index.ship(with_index=True))))
    assert received.generation == index.generation
    assert receive(index.ship()) is received  # no payload needed any more
    article = make_article(title="Korea", summary="", content="")
    assert received.matches(article) == index.matches(article)
    newer = RuleIndex([rule("japan", name="j")])
    with pytest.raises(IndexMissing):
        receive(newer.ship())


def test_index_error_pickles_across_processes() -> None:
    error = pickle.loads(pickle.dumps(IndexMissing(7)))
    assert isinstance(error, IndexMissing)
    assert error.generation == 7


# --- random rules and texts ------------------------------------------------------------------

LATIN = ["troops", "troopers", "korea", "south", "forces", "withdrawal", "army", "us", "rok"]
HANGUL = ["주한미군", "주한", "미군", "감축", "한반도"]
SPELLINGS = {  # how a word may be written in an article
    "us": ["US", "us", "U.S.", "Us", "U.S.Army", "us us", "US-us"],
    "rok": ["ROK", "rok", "R.O.K."],
    "korea": ["Korea", "KOREA", "ＫＯＲＥＡ", "korean"],
    "주한미군": ["주한미군", "주한미군은", "주한 미군", "주한\u200b미군의", "주한미군감축"],
    "감축": ["감축", "감축을", "병력감축", "감\u2060축에서의", "감. 축"],
    "army": ["army", "Army", "armies"],
}
FILLER = ["the", "said", "28,500", "2,0000", "on", "café", "cafe\u0301", "美", "韓美", "과"]
GLUE = [" ", " ", " ", ", ", ". ", "-", "—", "\n", "", " (", ") "]


@st.composite
def terms(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["word", "word", "hangul", "prefix", "phrase", "cased", "alias"]))
    if kind == "word":
        return draw(st.sampled_from([*LATIN, "28500", "美"]))
    if kind == "hangul":
        return draw(st.sampled_from(HANGUL))
    if kind == "prefix":
        word = draw(st.sampled_from(LATIN + HANGUL).filter(lambda w: len(w) >= 2))
        return word[: draw(st.integers(2, len(word)))] + "*"
    if kind == "phrase":
        words = draw(st.lists(st.sampled_from(LATIN + HANGUL), min_size=2, max_size=3))
        return '"' + " ".join(words) + '"'
    if kind == "cased":
        return draw(st.sampled_from(["{US}", "{ROK}", "{Army}", "{Korea}"]))
    return draw(st.sampled_from(["@usfk", "@cut"]))


def side(draw: st.DrawFn) -> str:
    items = draw(st.lists(terms(), min_size=1, max_size=3))
    return items[0] if len(items) == 1 else "(" + " OR ".join(items) + ")"


@st.composite
def queries(draw: st.DrawFn, depth: int = 0) -> str:
    kinds = ["term", "or", "and", "not", "near", "scope", "or", "term"]
    kind = draw(st.sampled_from(kinds[: 1 if depth > 1 else len(kinds)]))
    if kind == "term":
        return draw(terms())
    if kind == "near":
        op = draw(st.sampled_from(["NEAR", "ONEAR"]))
        return f"{side(draw)} {op}/{draw(st.integers(1, 4))} {side(draw)}"
    if kind == "scope":
        field = draw(st.sampled_from(FIELDS))
        return f"{field}:({draw(queries(depth + 1))})"
    left, right = draw(queries(depth + 1)), draw(queries(depth + 1))
    if kind == "not":
        return f"({left}) NOT ({right})"
    return f"({left}) {kind.upper()} ({right})"


@st.composite
def texts(draw: st.DrawFn) -> str:
    vocabulary = LATIN + HANGUL + FILLER
    words = draw(st.lists(st.sampled_from(vocabulary), min_size=2, max_size=20))
    parts = []
    for word in words:
        parts.append(draw(st.sampled_from(SPELLINGS.get(word, [word]))))
        parts.append(draw(st.sampled_from(GLUE)))
    return "".join(parts)


@st.composite
def rule_sets(draw: st.DrawFn) -> list[Rule]:
    made = []
    for i in range(draw(st.integers(1, 6))):
        fields = draw(st.sampled_from([FIELDS, ("title",), ("summary", "content")]))
        feeds = draw(st.sampled_from([None, None, ("mine",), ("other",)]))
        made.append(rule(draw(queries()), name=f"r{i}", fields=fields, feeds=feeds))
    return made


def test_index_equals_reference_on_random_rules_and_texts() -> None:
    outcomes: list[bool] = []

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(rule_sets(), st.lists(st.tuples(texts(), texts(), texts()), min_size=1, max_size=4))
    def agree(rules: list[Rule], articles: list[tuple[str, str, str]]) -> None:
        index = RuleIndex(rules)
        for title, summary, content in articles:
            article = make_article(title=title, summary=summary, content=content, feed="mine")
            want = reference(article, rules)
            assert index.matches(article) == want
            outcomes.append(bool(want))

    agree()
    share = sum(outcomes) / len(outcomes)
    assert share > 0.3, f"only {share:.0%} of the articles matched a rule"


def agrees_with_reference(queries: st.SearchStrategy[str], examples: int) -> None:
    """The index's matches, hits included, are the reference's for random rules and texts."""

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None)
    @given(
        st.lists(queries, min_size=1, max_size=4),
        st.lists(st.tuples(texts(), texts(), texts()), min_size=1, max_size=3),
    )
    def agree(queries: list[str], articles: list[tuple[str, str, str]]) -> None:
        rules = [rule(q, name=f"r{i}") for i, q in enumerate(queries)]
        index = RuleIndex(rules)
        for title, summary, content in articles:
            article = make_article(title=title, summary=summary, content=content)
            assert index.matches(article) == reference(article, rules)

    agree()


@st.composite
def and_of_ors(draw: st.DrawFn) -> str:
    groups = draw(st.lists(st.lists(terms(), min_size=1, max_size=4), min_size=1, max_size=3))
    return " AND ".join("(" + " OR ".join(group) + ")" for group in groups)


def test_and_of_ors_equal_the_reference_on_random_rules_and_texts() -> None:
    """The usual rule's shape, whose hits come from its terms' keys and places."""

    agrees_with_reference(and_of_ors(), examples=120)


@st.composite
def ands_with_nears(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            op = draw(st.sampled_from(["NEAR", "ONEAR"]))
            parts.append(f"{side(draw)} {op}/{draw(st.integers(1, 4))} {side(draw)}")
        else:
            parts.append(side(draw))
    return " AND ".join(parts)


def test_and_of_ors_and_nears_equal_the_reference_on_random_rules_and_texts() -> None:
    """Rules of ORs and NEARs under an AND, whose hits come from their terms' places."""

    agrees_with_reference(ands_with_nears(), examples=100)


def test_decisions_equal_the_reference_on_random_rules_and_texts() -> None:
    """What the index decides from an article's words alone (`matching`, and `decide` for any
    expression) is what the reference evaluator says, or, from `decide`, None: ask it."""
    told: list[bool] = []

    def anything(word: str, prefix: bool) -> bool:
        return True  # every word may be there: `decide` looks for each itself

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(rule_sets(), st.lists(st.tuples(texts(), texts(), texts()), min_size=1, max_size=4))
    def agree(rules: list[Rule], articles: list[tuple[str, str, str]]) -> None:
        index = RuleIndex(rules)
        for title, summary, content in articles:
            fields = {"title": title, "summary": summary, "content": content}
            article = make_article(**fields, feed="mine")
            texts = {name: article.field_text(name) for name in FIELDS}
            want = reference(article, rules)
            assert names_of(index.matching(texts, "mine")) == names(want)
            page, doc = Page.of(texts), Document.from_fields(texts)
            for r in rules:
                assert r.expr is not None and not isinstance(r.expr, str)
                value = decide(r.expr, page, r.fields, anything)  # type: ignore[arg-type]
                if value is not None:
                    assert value is (match_rule(r, doc) is not None), r.query
                told.append(value is not None)

    agree()
    share = sum(told) / len(told)
    assert share > 0.9, f"only {share:.0%} of the decisions were told without the reference"


# --- reloading -------------------------------------------------------------------------------


def test_a_reload_builds_the_new_index_aside_while_the_old_one_keeps_matching(
    tmp_path: Path, slack_double: SlackDouble, clock: FixedClock
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    usfk = rules / "usfk.yaml"
    usfk.write_text("name: usfk\nquery: USFK (cut* OR withdraw*)\n", encoding="utf-8")
    for i in range(1500):  # enough files that loading them takes a while
        text = f"name: topic-{i}\nquery: topic{i} (alpha{i} OR beta{i})\n"
        (rules / f"topic-{i}.yaml").write_text(text, encoding="utf-8")
    config = write_config(tmp_path, {"wire": "http://127.0.0.1:9/never-polled.xml"}, rules=rules)
    article = make_article(title="USFK cuts troops", summary="", content="topic7 beta7")

    async def scenario() -> None:
        app = make_app(config, slack_double, clock)
        try:
            await app.load_rules()
            old = app.rt.rules.index
            assert names(old.matches(article)) == ["topic-7", "usfk"]
            usfk.write_text("name: usfk\nquery: USFK japan\n", encoding="utf-8")
            reload = asyncio.create_task(app.load_rules())
            during = []
            while not reload.done():  # the event loop is free: matching goes on meanwhile
                index = app.rt.rules.index  # after the swap the reload still writes a little
                during.append((index is old, names(index.matches(article))))
                await asyncio.sleep(0.01)
            await reload
            assert sum(was_old for was_old, _ in during) >= 2, "the reload held the event loop"
            assert all(found == ["topic-7", "usfk"] for was_old, found in during if was_old)
            assert all(found == ["topic-7"] for was_old, found in during if not was_old)
            assert [was_old for was_old, _ in during] == sorted(  # swapped once, never back
                (was_old for was_old, _ in during), reverse=True
            )
            assert app.rt.rules.index is not old
            assert app.rt.rules.index.generation > old.generation
            assert names(app.rt.rules.index.matches(article)) == ["topic-7"]  # the new one
        finally:
            await app.close()

    asyncio.run(scenario())


def test_index_scan_is_linear_on_pathological_titles() -> None:
    """RELIABILITY case 32: a 30,000-character title decided in well under a second."""
    queries = ["aa* NEAR/2 x", '"1,000" OR 가가*', "{US}", "aaa", "주주 OR 가", '"가 가" OR 가가']
    index = RuleIndex([rule(q, name=str(i)) for i, q in enumerate(queries)])
    started = time.perf_counter()
    for title in (
        "a." * 15_000,
        "1,000" * 6_000,
        "a" * 30_000 + "X",
        "가" * 30_000,
        "U.S." * 7_500,
        "주 " * 15_000,  # a Hangul term across eojeols at each word
        "가 " * 15_000,
    ):
        index.matches(make_article(title=title, summary="", content=""))
    assert time.perf_counter() - started < 2.0


def test_a_near_over_many_close_places_is_paired_in_linear_time() -> None:
    """RELIABILITY case 32 for a NEAR given its hits from its terms' places: each of 2,000
    places of a side close to several of the other's (pairing them all would take seconds)."""
    rules = [rule("army NEAR/2 troop*", name="near"), rule('"us army" ONEAR/1 army', name="onear")]
    article = make_article(title="us army troops " * 2_000, summary="", content="")
    started = time.perf_counter()
    found = RuleIndex(rules).matches(article)
    assert time.perf_counter() - started < 2.0
    assert [len(match.hits) for _, match in found] == [4_000, 4_000]


# --- workers receive each index once ---------------------------------------------------------


class RecordingPool(Executor):
    """A real worker process that notes, for each call, whether the rule index went along."""

    def __init__(self) -> None:
        self.pool = make_worker_pool(1)
        self.carried: list[bool] = []

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        given = [*args, *getattr(fn, "args", ()), *getattr(fn, "keywords", {}).values()]
        self.carried += [a.payload is not None for a in given if isinstance(a, Shipped)]
        return self.pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.pool.shutdown(wait, cancel_futures=cancel_futures)


def test_a_worker_is_sent_the_index_once_per_rule_load_and_polls_name_it_after(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "korea.yaml").write_text("name: korea\nquery: Korea\n", encoding="utf-8")
    item = Item("k-1", "Korea and Japan", "Talks in Seoul.", clock.now())
    for path in ("/a.xml", "/b.xml"):  # always a 200, so that every poll reaches a worker
        feed_server.add(path, rss([item]), etag=None, last_modified=None)
    urls = {"a": feed_server.url("/a.xml"), "b": feed_server.url("/b.xml")}
    config = load_config(write_config(tmp_path, urls, rules=rules))
    pool = RecordingPool()

    async def scenario() -> None:
        rt = Runtime(
            clock=clock,
            store=Store.open(config.database),
            sender=SlackSender(TOKEN, base_url=slack_double.base_url),
            admin_channel=None,
            make_workers=lambda: pool,
        )
        app = App(config, rt, Fetcher(fetch_policy(config)))
        try:
            await app.load_rules()
            a, b = config.feeds
            assert (await app.poll(a)).status == "ok"
            assert pool.carried == [False, True]  # asked by generation, then sent along
            await app.poll(b)
            await app.poll(a)
            assert pool.carried == [False, True, False, False]  # kept by the worker
            (rules / "japan.yaml").write_text("name: japan\nquery: Japan\n", encoding="utf-8")
            await app.load_rules()
            await app.poll(b)
            assert pool.carried == [False, True, False, False, False, True]  # a new generation
        finally:
            await app.close()

    asyncio.run(scenario())


def test_a_hit_made_without_its_init_equals_the_dataclass_made_with_it() -> None:
    made = _hit("USFK", "title", 3, 7, "forces")
    assert made == Hit("USFK", "title", 3, 7, "forces")
    assert hash(made) == hash(Hit("USFK", "title", 3, 7, "forces"))
    # every field is set: a field added to Hit must be added to `_hit` too
    assert set(vars(made)) == {f.name for f in fields(Hit)}
