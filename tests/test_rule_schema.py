"""The published JSON Schema for rule files agrees with the loader, and the shipped rules use it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from bot.errors import RuleError
from bot.rules import load_rule
from bot.yamlfile import parse_yaml
from tests.e2e import REPO

SCHEMA_PATH = REPO / "schema" / "rule.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))

# Documents whose structure decides; the query language itself is beyond a schema (check does it).
VALID = [
    "name: a\nquery: korea\n",
    "name: a.b-c_1\nquery: korea\nchannel: '#korea-security'\nfields: [title]\nfeeds: [x]\n",
    "name: a\nquery: korea\nchannel: C0123456\nfields: summary\nfeeds: x\ndescription: d\n",
    "name: a\nall: [korea, troops]\n",
    "name: a\nany: korea\n",
    "name: a\nall: [korea]\nnone: [japan]\n",
    "name: a\nall:\n  - any: [a, b]\n  - none: [c]\n    all: [d]\n",
    "name: a\nquery: korea\ndelivery: immediate\nmax_per_hour: 5\nmention: here\n",
    "name: a\nquery: korea\ndelivery: {digest: '0 9 * * *', timezone: Asia/Seoul}\n",
    "name: a\nquery: korea\ndelivery:\n  digest: 0 9 * * 1-5\n  timezone: UTC\nmax_per_hour: 1\n",
    "name: a\nquery: korea\nmention: '<!subteam^S0ALLY>'\n",
    "name: a\nquery: korea\nmention: '<@U024BE7LH>'\n",
]
INVALID = [
    "name: a\n",
    "query: korea\n",
    "- name: a\n",
    "name: a\nquery: korea\nall: [x]\n",
    "name: 'a b'\nquery: korea\n",
    "name: a\nquery: 3\n",
    "name: a\nquery: '   '\n",
    "name: a\nquery: korea\nchannel: general\n",
    "name: a\nquery: korea\nchannel: '#General'\n",
    "name: a\nquery: korea\nfields: [body]\n",
    "name: a\nquery: korea\nfields: []\n",
    "name: a\nquery: korea\nfeeds: [1]\n",
    "name: a\nquery: korea\ncolour: red\n",
    "name: a\nquery: korea\ndescription: [x]\n",
    "name: a\nall: []\n",
    "name: a\nall: [x, 3]\n",
    "name: a\nall:\n  - some: [x]\n",
    "name: a\nall:\n  - {}\n",
    "name: a\nquery: korea\ndelivery: digest\n",
    "name: a\nquery: korea\ndelivery: {digest: '0 9 * * *'}\n",
    "name: a\nquery: korea\ndelivery: {digest: '0 9 * * *', timezone: UTC, every: 2}\n",
    "name: a\nquery: korea\nmax_per_hour: 0\n",
    "name: a\nquery: korea\nmax_per_hour: '5'\n",
    "name: a\nquery: korea\nmention: '@here'\n",
    "name: a\nquery: korea\nmention: '<!everyone>'\n",
    "name: a\nquery: korea\nmention: '<@U1> <!channel>'\n",
]


def schema_accepts(text: str) -> bool:
    data = parse_yaml(text, Path("r.yaml")).data
    return not list(Draft202012Validator(SCHEMA).iter_errors(data))


def loader_accepts(text: str, tmp_path: Path) -> bool:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_rule(path, "#news-alerts", known_feeds=["x"])
    except RuleError:
        return False
    return True


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("text", VALID + INVALID)
def test_schema_and_loader_agree(text: str, tmp_path: Path) -> None:
    expected = text in VALID
    assert schema_accepts(text) is expected
    assert loader_accepts(text, tmp_path) is expected


@pytest.mark.parametrize("path", sorted((REPO / "rules").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_rules_name_the_schema_and_satisfy_it(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../schema/rule.schema.json\n")
    assert schema_accepts(text)


def test_the_pre_commit_hook_runs_check() -> None:
    (hook,) = parse_yaml((REPO / ".pre-commit-hooks.yaml").read_text("utf-8"), Path("h")).data
    assert (hook["id"], hook["entry"], hook["args"]) == ("newswatch-check", "newswatch", ["check"])
    assert hook["pass_filenames"] is False
