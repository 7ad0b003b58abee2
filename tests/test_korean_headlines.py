"""Korean works as well as English: real headlines from the shared corpus, read in place by id.

Each row names a corpus item, a query, and whether the query must match the item's headline.
"""

from __future__ import annotations

import json
from functools import cache

import pytest

from benchmarks.rule_quality import load_rules
from bot.match import Document, evaluate, match_rule
from bot.query import parse_query
from tests.shared import CORPUS, need

ITEMS = CORPUS / "items.jsonl"

# (item id, query, must match, what it shows)
TABLE = [
    ("ff86a0dae9d7", '"주한미군 감축"', True, "spaced 주한 미군 with a particle after 감축"),
    ("ff86a0dae9d7", "주한미군 NEAR/1 감축", True, "spaced eojeols count as the words they are"),
    ("3ede87ec6741", '"주한미군 감축"', True, "after quoted speech and an ellipsis"),
    ("3ede87ec6741", "title:(주한미군 ONEAR/2 감축)", True, "ordered, in the title"),
    ("3ede87ec6741", "감축 ONEAR/2 주한미군", False, "wrong order"),
    ("b5bc2eb64cca", '"주한미군 감축"', False, "감축 comes first, far from 주한미군"),
    ("b5bc2eb64cca", "주한미군 NEAR/2 감축", True, "either order within two words"),
    ("b5bc2eb64cca", "주한미군 NEAR/1 감축", False, "two words apart"),
    ("452ee226b0ab", '"주한미군 역할"', True, "phrase of two eojeols"),
    ("452ee226b0ab", "주한미군 NEAR/3 감축", False, "no cut in this one"),
    ("9215bc100c1f", "주한미군 NEAR/5 (감축 OR 철수)", False, "USFK as an actor only"),
    ("e9280ec395a4", "주한미군 ONEAR/1 (유지 OR 확대)", True, "a middle dot separates words"),
    ("1c00ff9a30cc", "주한미군", False, "주한 美대사대리: Hanja breaks the run"),
    ("d4f1028936a6", "주한미군", False, "주한 미국 is not 주한미군"),
    ("d4f1028936a6", '"한미 동맹"', True, "written 한미동맹 without the space"),
    ("0ef22ba583ae", '"전작권 전환"', True, "OPCON transfer"),
    ("3be074d46eb0", "{FOC} 전작권", True, "exact-case acronym beside Hangul"),
    ("3be074d46eb0", "{foc}", False, "exact case refuses another case"),
]

# (item id, shipped rule, must match)
SHIPPED = [
    ("c716462d31df", "usfk-troop-levels", True),
    ("ff86a0dae9d7", "usfk-troop-levels", True),
    ("24a2b4a431f2", "usfk-troop-levels", True),
    ("f883c6b4c23a", "usfk-troop-levels", False),
    ("4986ea937712", "usfk-troop-levels", False),
    ("45ff36fc6896", "usfk-troop-levels", False),
    ("3be074d46eb0", "opcon-transfer", True),
    ("94cb0568707c", "opcon-transfer", True),
    ("5b4aafb4264a", "opcon-transfer", False),
]


@cache
def headlines() -> dict[str, str]:
    wanted = {row[0] for row in TABLE} | {row[0] for row in SHIPPED}
    found = {}
    with need(ITEMS).open(encoding="utf-8") as lines:
        for line in lines:
            item = json.loads(line)
            if item["id"] in wanted:
                found[item["id"]] = item["title"]
    return found


def headline(item_id: str) -> Document:
    title = headlines().get(item_id)
    assert title is not None, f"item {item_id} is not in the corpus"
    return Document.from_fields({"title": title})


@pytest.mark.parametrize(("item_id", "query", "expected", "why"), TABLE)
def test_query_on_a_real_korean_headline(
    item_id: str, query: str, expected: bool, why: str
) -> None:
    assert (evaluate(parse_query(query), headline(item_id)) is not None) is expected, why


@pytest.mark.parametrize(("item_id", "rule", "expected"), SHIPPED)
def test_shipped_rule_on_a_real_korean_headline(item_id: str, rule: str, expected: bool) -> None:
    assert (match_rule(load_rules()[rule], headline(item_id)) is not None) is expected
