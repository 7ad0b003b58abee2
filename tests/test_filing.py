"""The rule index's filing: its candidates in C and in Python are those its groups define."""

from __future__ import annotations

import pickle
from array import array
from collections.abc import Collection, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import filing
from bot.expr import Not
from bot.filing import Filer, Filing, python_candidates
from bot.index import RuleIndex
from bot.models import Rule
from bot.query import parse_term

try:
    from bot import _filing
except ImportError:  # installed without a C compiler: filing uses python_candidates
    _filing = None  # type: ignore[assignment]

needs_c = pytest.mark.skipif(
    _filing is None,
    reason="bot._filing is not built (no C compiler): the Python candidate step is in use",
)

Groups = list[list[int]]


def defined(rules: list[Groups], present: Iterable[int]) -> list[int]:
    """The candidates by their definition, from each rule's groups as filed: a rule without a
    group always, else a rule each of whose groups holds a present key."""
    keys = set(present)
    return [i for i, groups in enumerate(rules) if all(keys & set(g) for g in groups)]


def filed(rules: list[Groups], keys: int) -> Filing:
    filer = Filer()
    for groups in rules:
        filer.file(groups)
    return filer.packed(keys)


def arrays(f: Filing) -> tuple[array[int], ...]:
    return (f.filed_at, f.filed, f.records, f.always)


@st.composite
def filings(draw: st.DrawFn) -> tuple[list[Groups], int, set[int]]:
    """Random rules over few keys (so that a key files many rules), with groups of one key,
    of duplicate keys, and rules of one group or none; and a set of key ids present, some of
    them filed nowhere, negative or past the keys."""
    keys = draw(st.integers(1, 12))
    key = st.integers(0, keys - 1)
    group = st.lists(key, min_size=1, max_size=5)
    rules = draw(st.lists(st.lists(group, max_size=4), max_size=25))
    present = draw(st.sets(st.integers(-3, keys + 3), max_size=keys + 6))
    return rules, keys, present


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(filings())
def test_python_candidates_are_the_rules_whose_groups_each_hold_a_present_key(
    case: tuple[list[Groups], int, set[int]],
) -> None:
    rules, keys, present = case
    assert python_candidates(present, *arrays(filed(rules, keys))) == defined(rules, present)


@needs_c
@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(filings())
def test_the_c_candidates_are_the_python_ones(case: tuple[list[Groups], int, set[int]]) -> None:
    rules, keys, present = case
    packed = arrays(filed(rules, keys))
    expected = python_candidates(present, *packed)
    assert _filing.candidates(present, *packed) == expected
    assert _filing.candidates(sorted(present) * 2, *packed) == expected  # any iterable of ids


@needs_c
@pytest.mark.parametrize(
    ("rules", "present", "expected"),
    [
        ([], {0, 1}, []),  # no rules
        ([[[0]], [[1]], []], set(), [2]),  # empty present: only the rule without a group
        ([[], []], {5}, [0, 1]),  # rules without a group, whatever is present
        ([[[0, 0, 1]], [[1, 1]]], {1}, [0, 1]),  # duplicate keys in a group: each rule once
        ([[[0]]] * 300, {0}, list(range(300))),  # a key filing many rules
        ([[[0], [1], [2]], [[0], [1]], [[0]]], {0, 1}, [1, 2]),  # a third group absent
        ([[[0], [1, 2]], [[1], [0]]], {0, 2}, [0]),  # a second group held by its other key
        ([[[0]], [[2]]], {0, 2**70, -(2**70), -1, 3}, [0]),  # ids filed nowhere, any size
    ],
)
def test_chosen_filings_give_the_candidates_their_groups_define(
    rules: list[Groups], present: set[int], expected: list[int]
) -> None:
    packed = arrays(filed(rules, 3))
    assert defined(rules, present) == expected
    assert python_candidates(present, *packed) == expected
    assert _filing.candidates(present, *packed) == expected


@needs_c
@pytest.mark.parametrize(
    "broken",
    [
        {"filed_at": array("I")},  # no key at all
        {"filed_at": array("I", [0, 9])},  # past the rules filed
        {"filed": array("I", [3])},  # a record past the records
        {"records": array("I", [0])},  # a record without its number of groups
        {"records": array("I", [0, 2, 1, 0])},  # more groups than recorded
        {"records": array("I", [0, 1, 4, 0])},  # a group longer than the records
        {"records": array("I", [0, 1, 1, 99])},  # a key id past the keys
    ],
)
def test_the_c_step_refuses_arrays_that_point_outside_themselves(
    broken: dict[str, array[int]],
) -> None:
    parts = {
        "filed_at": array("I", [0, 1]),
        "filed": array("I", [0]),  # rule 0, filed under key 0
        "records": array("I", [0, 1, 1, 0]),  # rule 0: one other group, of key 0
        "always": array("I"),
    }
    assert _filing.candidates({0}, *parts.values()) == [0]
    parts.update(broken)
    with pytest.raises(ValueError, match="malformed filing"):
        _filing.candidates({0}, *parts.values())


@needs_c
def test_the_c_step_takes_only_arrays_of_unsigned_ints() -> None:
    good = arrays(filed([[[0]]], 1))
    with pytest.raises(TypeError, match="filed must be an array"):
        _filing.candidates({0}, good[0], array("i", [0]), *good[2:])
    with pytest.raises(TypeError):
        _filing.candidates({"a"}, *good)
    with pytest.raises(TypeError):
        _filing.candidates({0}, *good[:3])  # type: ignore[call-arg]


def test_a_filing_pickles_to_equal_arrays() -> None:
    packed = filed([[[0, 2], [1]], [], [[2]]], 3)
    assert pickle.loads(pickle.dumps(packed)) == packed
    assert packed.keys == 3


def test_a_rule_needs_non_empty_groups_and_keys_below_the_count() -> None:
    filer = Filer()
    with pytest.raises(ValueError, match="empty required group"):
        filer.file([[0], []])
    filer = Filer()
    filer.file([[4]])
    with pytest.raises(ValueError, match="not below 3"):
        filer.packed(3)


@needs_c
def test_the_rule_index_takes_its_candidates_from_the_c_step() -> None:
    assert filing.CANDIDATE_STEP == "C"


def test_an_index_files_each_rule_under_its_rarest_group_and_keeps_the_others() -> None:
    def rule(query: str, **changes: object) -> Rule:
        return Rule(name=query, query=query, channel="#news", **changes)  # type: ignore[arg-type]

    index = RuleIndex(
        [
            rule("usfk AND opcon AND 주한미군"),
            rule("opcon OR wartime"),
            rule("NOT troops", expr=Not(parse_term("troops"))),  # built in code: no group
            rule("usfk", feeds=("yonhap",)),
        ]
    )
    present = index.present(["USFK OPCON", "주한미군"])
    assert index.candidates(present) == [0, 1, 2, 3]
    assert index.candidates(present, "yonhap") == [0, 1, 2, 3]
    assert index.candidates(present, "kbs") == [0, 1, 2]
    assert index.candidates(index.present(["opcon"])) == [1, 2]
    assert index.candidates(set()) == [2]
    records: Collection[int] = index._filing.records
    assert len(records) == (2 + 2 * 2) + 2 + 2  # the first rule's two other groups, one key each
