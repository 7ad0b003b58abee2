"""rules/*.yaml → validated Rules; a broken file keeps its last good version running."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import valid_channel
from bot.errors import QuerySyntaxError, RuleError
from bot.models import FIELDS, Rule
from bot.query import parse_query
from bot.yamlfile import Document, YamlProblem, parse_yaml, read_yaml

RULE_KEYS = frozenset({"name", "description", "query", "channel", "fields", "feeds"})
RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
RULE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class RuleSet:
    """The rules in force, the errors found loading them, and which files run a stale version."""

    rules: tuple[Rule, ...] = ()
    errors: tuple[RuleError, ...] = ()
    stale: tuple[str, ...] = ()  # paths whose last good version is kept after a broken edit
    sources: tuple[tuple[str, str], ...] = ()  # (path, text) of every file that loaded cleanly

    def by_name(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)


def rule_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in RULE_SUFFIXES and p.is_file())


def load_rule(path: Path, default_channel: str, known_feeds: Iterable[str] | None = None) -> Rule:
    """Read one rule file; raise RuleError with file, line, column and reason."""
    return _load(path, None, default_channel, known_feeds)[0]


def load_rule_text(
    text: str, path: Path, default_channel: str, known_feeds: Iterable[str] | None = None
) -> Rule:
    """Like load_rule, from text already read (a file's last good version, say)."""
    return _load(path, text, default_channel, known_feeds)[0]


def _load(
    path: Path, text: str | None, default_channel: str, known_feeds: Iterable[str] | None
) -> tuple[Rule, str]:
    """The rule and the exact text it was read from (the file's, unless `text` is given)."""
    try:
        doc = read_yaml(path) if text is None else parse_yaml(text, path)
    except YamlProblem as exc:
        raise RuleError(path, exc.reason, exc.line, exc.column) from exc
    feeds = None if known_feeds is None else set(known_feeds)
    return _read_rule(doc, default_channel, feeds), doc.text


def load_rules(
    directory: Path,
    default_channel: str,
    previous: RuleSet | None = None,
    known_feeds: Iterable[str] | None = None,
    snapshots: dict[str, str] | None = None,
) -> RuleSet:
    """Load every rule file; a broken file keeps its last good version (if any) and says why.

    The last good version is the rule from `previous` (the set running now) or, at start-up,
    the file's text from `snapshots` (kept in the store).
    """
    feeds = None if known_feeds is None else set(known_feeds)
    old = {rule.path: rule for rule in previous.rules} if previous else {}
    rules: list[Rule] = []
    errors: list[RuleError] = []
    stale: list[str] = []
    sources: list[tuple[str, str]] = []
    names: dict[str, str] = {}
    for path in rule_files(directory):
        try:
            rule, source = _load(path, None, default_channel, feeds)
            sources.append((str(path), source))  # the text that loaded, read once
        except RuleError as exc:
            errors.append(exc)
            kept = old.get(str(path)) or _from_snapshot(
                (snapshots or {}).get(str(path)), path, default_channel, feeds
            )
            if kept is None:
                continue
            rule = kept
            stale.append(str(path))
        if rule.name in names:
            errors.append(
                RuleError(path, f"duplicate rule name {rule.name!r} (also in {names[rule.name]})")
            )
            continue
        names[rule.name] = str(path)
        rules.append(rule)
    return RuleSet(tuple(rules), tuple(errors), tuple(stale), tuple(sources))


def _from_snapshot(
    text: str | None, path: Path, default_channel: str, feeds: set[str] | None
) -> Rule | None:
    if text is None:
        return None
    try:
        return load_rule_text(text, path, default_channel, feeds)
    except RuleError:
        return None


def _read_rule(doc: Document, default_channel: str, known_feeds: set[str] | None) -> Rule:
    path = doc.path

    def fail(reason: str, *keys: object) -> RuleError:
        return RuleError(path, reason, doc.line(*keys) if keys else None)

    data = doc.data
    if not isinstance(data, dict):
        raise fail("a rule file must be a mapping with at least 'name' and 'query'")
    for key in data:
        if key not in RULE_KEYS:
            raise RuleError(
                path,
                f"unknown key {key!r} (expected one of: {', '.join(sorted(RULE_KEYS))})",
                doc.key_line(key),
            )
    for required in ("name", "query"):
        if required not in data:
            raise fail(f"missing required key {required!r}")
    name = data["name"]
    if not isinstance(name, str) or not RULE_NAME.match(name):
        raise fail("name must be letters, digits, '.', '_' or '-' (at most 80)", "name")
    query = data["query"]
    if not isinstance(query, str):
        raise fail("query must be a string (quote it)", "query")
    try:
        expr = parse_query(query)
    except QuerySyntaxError as exc:
        line, column = doc.position_in(("query",), max(exc.column - 1, 0))
        raise RuleError(path, f"query: {exc.reason}", line, column) from exc
    channel = data.get("channel", default_channel)
    if not valid_channel(channel):
        raise fail(
            "channel must look like '#korea-security' (lower case) or a channel ID", "channel"
        )
    return Rule(
        name=name,
        query=query,
        channel=channel,
        fields=_fields(data.get("fields"), doc),
        feeds=_feeds(data.get("feeds"), doc, known_feeds),
        path=str(path),
        expr=expr,
    )


def _string_list(value: Any, key: str, doc: Document) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise RuleError(doc.path, f"{key} must be a non-empty list of names", doc.line(key))
    return value


def _fields(value: Any, doc: Document) -> tuple[str, ...]:
    if value is None:
        return FIELDS
    fields = _string_list(value, "fields", doc)
    for i, name in enumerate(fields):
        if name not in FIELDS:
            raise RuleError(
                doc.path,
                f"unknown field {name!r} (expected: {', '.join(FIELDS)})",
                doc.line("fields", i) or doc.line("fields"),
            )
    return tuple(dict.fromkeys(fields))


def _feeds(value: Any, doc: Document, known: set[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    feeds = _string_list(value, "feeds", doc)
    for i, name in enumerate(feeds):
        if known is not None and name not in known:
            raise RuleError(
                doc.path,
                f"unknown feed {name!r} (not in config.yaml)",
                doc.line("feeds", i) or doc.line("feeds"),
            )
    return tuple(dict.fromkeys(feeds))
