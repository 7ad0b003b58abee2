"""Rule files beyond a query string: the structured form, alias sets, and matches explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.aliases import load_aliases, read_alias_file
from bot.errors import RuleError
from bot.explain import plain
from bot.match import Document, match_rule
from bot.models import Rule, RuleMatch
from bot.query import parse_query, parse_term
from bot.rules import load_library, load_rule
from bot.summarize import summarize
from bot.work import alerts_for, matches_for
from tests.factories import article, write

ALIASES = {"usfk": (parse_term("USFK"), parse_term("U.S. Forces Korea"))}


# --- the structured form -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("structured", "query"),
    [
        ("all: [troops, korea]", "troops korea"),
        ("any: [troops, forces]", "troops OR forces"),
        ("all: [korea]\nnone: [japan, china]", "korea NOT japan NOT china"),
        (
            "all: [korea]\nany: [troops, forces]\nnone: [japan]",
            "korea (troops OR forces) NOT japan",
        ),
        ("any:\n  - all: [a, b]\n  - all: [c, d]", "(a b) OR (c d)"),
        ("all:\n  - any: [a, b]\n  - any: ['c OR d']", "(a OR b) (c OR d)"),
        (
            "all: ['\"South Korea\"', 'troop* NEAR/5 withdraw*']",
            '"South Korea" troop* NEAR/5 withdraw*',
        ),
        ("all: [korea, 'a b']\nnone: ['NOT troops']", "korea a b troops"),
        ("all: [x]\nnone:\n  - any: [y, z]", "x NOT (y OR z)"),
        ("any: [title:korea, '@usfk']", "title:korea OR @usfk"),
    ],
)
def test_structured_form_compiles_to_the_same_ast_as_the_query(
    tmp_path: Path, structured: str, query: str
) -> None:
    quoted = query.replace("'", "''")
    a = load_rule(write(tmp_path, "a.yaml", f"name: a\n{structured}\n"), "#x", aliases=ALIASES)
    b = load_rule(write(tmp_path, "b.yaml", f"name: b\nquery: '{quoted}'\n"), "#x", aliases=ALIASES)
    assert a.expr == b.expr
    assert a.query == str(b.expr)  # the canonical text stands in for the query


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        ("name: a\nquery: x\nall: [y]\n", 3, None, "either 'query' or all/any/none"),
        ("name: a\n", None, None, "missing required key 'query' (or the structured"),
        ("name: a\nnone: [x]\n", 2, None, "needs a term that must be present"),
        ("name: a\nall: []\n", 2, None, "non-empty list"),
        ("name: a\nall: [x, 3]\n", 2, None, "query string or a mapping"),
        ("name: a\nall:\n  - x\n  - 'y OR (z'\n", 4, 11, "all[1]: unbalanced '('"),
        ("name: a\nall:\n  - some: [x]\n", 3, None, "unknown key 'some'"),
        ("name: a\nany:\n  - all: [x, 'NOT']\n", 3, 15, "NOT needs a term"),
    ],
)
def test_structured_form_mistakes_name_their_place(
    tmp_path: Path, text: str, line: int | None, column: int | None, reason: str
) -> None:
    with pytest.raises(RuleError) as caught:
        load_rule(write(tmp_path, "r.yaml", text), "#x")
    assert reason in caught.value.reason
    assert (caught.value.line, caught.value.column) == (line, column)


# --- alias sets ----------------------------------------------------------------------------


def test_alias_files_give_each_name_its_terms(tmp_path: Path) -> None:
    path = write(
        tmp_path, "a.yaml", 'usfk: [USFK, "U.S. Forces Korea", 주한미군, "{ROK}", troop*]\nx: one\n'
    )
    found = read_alias_file(path)
    assert [t.text for t in found["usfk"]] == [
        "USFK",
        "U.S. Forces Korea",
        "주한미군",
        "ROK",
        "troop*",
    ]
    assert found["usfk"][1].words == ("us", "forces", "korea")
    assert found["usfk"][3].cased == ("ROK",)
    assert [t.text for t in found["x"]] == ["one"]


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        ("USFK: [x]\n", 1, None, "lower-case"),
        ("usfk: {a: b}\n", 1, None, "must be a list of terms"),
        ("usfk:\n  - x\n  - a OR b\n", 3, 5, "separate entries"),
        ("usfk: [x, '(y']\n", 1, 12, "one term or phrase"),
        ("- x\n", 1, None, "maps names to lists"),
        ("usfk: [x\n", 2, 1, ""),
        ("usfk: !!python/object/apply:os.system [echo]\n", 1, None, "tag"),
        ("a: &x [y]\nb: *x\n", 1, None, "anchors"),
        ("usfk: [x]\nusfk: [y]\n", 2, 1, "duplicate key"),
    ],
)
def test_alias_file_mistakes_name_their_place(
    tmp_path: Path, text: str, line: int, column: int | None, reason: str
) -> None:
    with pytest.raises(RuleError) as caught:
        read_alias_file(write(tmp_path, "a.yaml", text))
    assert reason in caught.value.reason
    assert (caught.value.line, caught.value.column) == (line, column)


def test_an_alias_edit_changes_every_rule_that_uses_it(tmp_path: Path) -> None:
    rules, aliases = tmp_path / "rules", tmp_path / "aliases"
    write(rules, "a.yaml", "name: a\nquery: '@usfk cut*'\n")
    write(rules, "b.yaml", "name: b\nquery: '@usfk NEAR/3 withdraw*'\n")
    write(aliases, "x.yaml", "usfk: [USFK]\n")
    korean = Document.from_fields({"title": "주한미군 cuts and withdrawal"})
    before = load_library(rules, aliases, "#x")
    assert not any(match_rule(r, korean) for r in before.rules)
    write(aliases, "x.yaml", "usfk: [USFK, 주한미군]\n")
    after = load_library(rules, aliases, "#x", previous=before)
    assert all(match_rule(r, korean) for r in after.rules)


def test_a_broken_alias_file_keeps_its_last_good_aliases(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", "usfk: [USFK]\n")
    good = load_aliases(tmp_path)
    write(tmp_path, "x.yaml", "usfk: [USFK\n")
    kept = load_aliases(tmp_path, previous=good)
    assert kept.terms == good.terms and kept.stale == (str(tmp_path / "x.yaml"),)
    assert load_aliases(tmp_path).terms == {}  # no last good version known


def test_at_start_up_a_broken_alias_file_runs_the_version_kept_in_the_store(
    tmp_path: Path,
) -> None:
    rules, aliases = tmp_path / "rules", tmp_path / "aliases"
    write(rules, "a.yaml", "name: a\nquery: '@usfk'\n")
    alias_file = write(aliases, "x.yaml", "usfk: [USFK]\n")
    first = load_library(rules, aliases, "#x")
    kept = dict(first.sources)
    assert kept[str(alias_file)] == "usfk: [USFK]\n"
    alias_file.write_text("usfk: [USFK\n", encoding="utf-8")  # broken while the bot was down
    restarted = load_library(rules, aliases, "#x", snapshots=kept)
    assert [r.name for r in restarted.rules] == ["a"]
    assert restarted.stale == (str(alias_file),)
    assert [str(e.path) for e in restarted.errors] == [str(alias_file)]


# --- explained matches ---------------------------------------------------------------------


def test_every_match_names_its_terms_fields_and_sentences(tmp_path: Path) -> None:
    rules, aliases = tmp_path / "rules", tmp_path / "aliases"
    write(aliases, "x.yaml", "usfk: [USFK, 주한미군]\n")
    write(rules, "a.yaml", "name: a\nquery: '@usfk NEAR/4 (cut* OR 감축)'\n")
    ruleset = load_library(rules, aliases, "#x")
    art = article(
        title="USFK cuts ahead",
        content="Seoul is calm. Officials say 주한미군 감축 is not planned. Nothing else.",
    )
    ((_, match),) = matches_for(art, ruleset.rules)
    assert [(e.field, e.terms) for e in match.evidence] == [
        ("title", ("@usfk: USFK", "cut*")),
        ("content", ("@usfk: 주한미군", "감축")),
    ]
    assert plain(match.evidence[1].sentence) == "Officials say 주한미군 감축 is not planned."
    assert "\x02주한미군 감축\x03" in match.evidence[1].sentence


def test_the_alert_summary_shows_the_sentences_the_explanation_found(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    write(rules, "a.yaml", "name: a\nquery: 'troops NEAR/3 Korea'\n")
    ruleset = load_library(rules, None, "#x")
    art = article(
        summary="A short summary about troops.",
        content="Markets were quiet. Nothing here. US troops in South Korea stay. Weather mild.",
    )
    ((_, match),) = matches_for(art, ruleset.rules)
    body = [e.sentence for e in match.evidence if e.field == "content"]
    assert [plain(s) for s in body] == ["US troops in South Korea stay."]
    (alert,) = alerts_for(art, ruleset.rules)
    assert body[0] in alert.summary  # the same sentence, the terms marked the same way


def test_summary_prefers_the_field_where_the_terms_were_found() -> None:
    art = article(summary="US troops in Korea.", content="A much longer body that never names it.")
    match = RuleMatch("r", ("troops",), ())
    assert plain(summarize(art, [match])[0]).startswith("A much longer body")
    rule = Rule("r", "troops", "#x", expr=parse_query("troops"))
    found = match_rule(rule, Document.from_article(art))
    assert found is not None
    assert plain(summarize(art, [found])[0]) == "US troops in Korea."
