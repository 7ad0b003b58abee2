"""Rule files: strict validation with file:line:column, hostile YAML, last good versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import RuleError
from bot.rules import load_rule, load_rules
from tests.factories import write

GOOD = """\
# a comment
name: troops
channel: "#korea-security"
query: >-
  (troops OR forces)
  AND korea
"""


def test_a_valid_rule_is_typed_and_compiled(tmp_path: Path) -> None:
    rule = load_rule(write(tmp_path, "r.yaml", GOOD), "#news-alerts")
    assert rule.name == "troops"
    assert rule.channel == "#korea-security"
    assert rule.fields == ("title", "summary", "content")
    assert rule.feeds is None
    assert rule.expr is not None


def test_rule_without_channel_uses_the_default(tmp_path: Path) -> None:
    rule = load_rule(write(tmp_path, "r.yaml", "name: a\nquery: korea\n"), "#news-alerts")
    assert rule.channel == "#news-alerts"


def test_query_syntax_error_points_inside_a_multiline_query(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", GOOD.replace("AND korea", "AND (korea"))
    with pytest.raises(RuleError) as caught:
        load_rule(path, "#news-alerts")
    assert caught.value.path == path
    assert caught.value.line == 6  # the line holding the unbalanced parenthesis
    assert caught.value.column == 7
    assert "query" in caught.value.reason


def test_a_regular_expression_rule_is_refused_at_load_naming_file_line_and_column(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "redos.yaml", "name: redos\nquery: |\n  USFK\n  ^(a+)+$\n")
    with pytest.raises(RuleError) as caught:
        load_rule(path, "#news-alerts")
    assert (caught.value.path, caught.value.line, caught.value.column) == (path, 4, 3)
    assert "regular-expression syntax" in caught.value.reason


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("name: a\nquery: korea\nchanel: '#x'\n", 3, "unknown key 'chanel'"),
        ("name: a\n", None, "missing required key 'query'"),
        ("name: a\nquery: korea\nfields: [title, body]\n", 3, "unknown field 'body'"),
        ("name: a\nquery: korea\nchannel: general\n", 3, "channel must look like"),
        ("name: a\nquery: 010\n", 2, "query must be a string"),
        ("name: a\nquery: on\n", 2, "query must be a string"),
        ("name: a\nquery: korea\nquery: japan\n", 3, "duplicate key"),
        ("name: a\nquery: !!python/object/apply:os.system ['true']\n", 2, "not allowed"),
        ("a: &x [1, 2]\nb: *x\n", 1, "anchors"),
        ("name: a\nquery: [unclosed\n", 3, ""),
    ],
)
def test_bad_rule_files_are_rejected_with_line_and_reason(
    tmp_path: Path, text: str, line: int | None, reason: str
) -> None:
    path = write(tmp_path, "r.yaml", text)
    with pytest.raises(RuleError) as caught:
        load_rule(path, "#news-alerts")
    assert caught.value.line == line
    assert reason in caught.value.reason


def test_oversized_rule_file_is_rejected_before_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "name: a\nquery: korea\n# " + "x" * 2_000_000 + "\n")
    with pytest.raises(RuleError, match="larger than"):
        load_rule(path, "#news-alerts")


def test_unknown_feed_is_an_error_when_feeds_are_known(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "name: a\nquery: korea\nfeeds: [nope]\n")
    with pytest.raises(RuleError, match="unknown feed 'nope'"):
        load_rule(path, "#news-alerts", known_feeds=["yonhap"])


def test_a_broken_file_does_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "name: a\nquery: korea\n")
    write(tmp_path, "b.yaml", "name: b\nquery: (korea\n")
    ruleset = load_rules(tmp_path, "#news-alerts")
    assert [r.name for r in ruleset.rules] == ["a"]
    assert len(ruleset.errors) == 1 and ruleset.errors[0].path.name == "b.yaml"


def test_a_broken_edit_keeps_the_last_good_version(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "name: a\nquery: korea\n")
    first = load_rules(tmp_path, "#news-alerts")
    path.write_text("name: a\nquery: korea AND\n", encoding="utf-8")
    second = load_rules(tmp_path, "#news-alerts", previous=first)
    assert [r.query for r in second.rules] == ["korea"]
    assert second.stale == (str(path),)
    assert second.errors and second.errors[0].line == 2


def test_a_snapshot_is_the_last_good_version_at_start_up(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "name: a\nquery: (korea\n")
    ruleset = load_rules(tmp_path, "#news-alerts", snapshots={str(path): "name: a\nquery: korea\n"})
    assert [r.query for r in ruleset.rules] == ["korea"]
    assert ruleset.stale == (str(path),)


def test_duplicate_rule_names_keep_the_first(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "name: same\nquery: korea\n")
    write(tmp_path, "b.yaml", "name: same\nquery: japan\n")
    ruleset = load_rules(tmp_path, "#news-alerts")
    assert [r.query for r in ruleset.rules] == ["korea"]
    assert "duplicate rule name" in ruleset.errors[0].reason


def test_clean_files_are_offered_as_snapshots(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "name: a\nquery: korea\n")
    ruleset = load_rules(tmp_path, "#news-alerts")
    assert dict(ruleset.sources) == {str(path): "name: a\nquery: korea\n"}
