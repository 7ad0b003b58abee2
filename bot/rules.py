"""rules/*.yaml → validated Rules; a broken file keeps its last good version running."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from bot.aliases import AliasSet, load_aliases
from bot.config import valid_channel
from bot.errors import QuerySyntaxError, RuleError
from bot.expr import Expr, check_query, combine, describe, never_matches
from bot.index import RuleIndex
from bot.models import FIELDS, Rule
from bot.noisekeys import NOISE_KEYS, read_noise
from bot.query import Aliases, parse_query
from bot.yamlfile import Document, YamlProblem, parse_yaml, read_yaml, yaml_files

STRUCTURED = ("all", "any", "none")
RULE_KEYS = frozenset(
    {"name", "description", "query", "channel", "fields", "feeds", *STRUCTURED, *NOISE_KEYS}
)
RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


@dataclass(frozen=True)
class RuleSet:
    """The rules in force, the errors found loading them, and which files run a stale version."""

    rules: tuple[Rule, ...] = ()
    errors: tuple[RuleError, ...] = ()
    stale: tuple[str, ...] = ()  # paths whose last good version is kept after a broken edit
    sources: tuple[tuple[str, str], ...] = ()  # (path, text) of every file that loaded cleanly
    aliases: AliasSet = field(default_factory=AliasSet)  # the alias sets the rules were built with

    @cached_property
    def index(self) -> RuleIndex:
        """The rules compiled into one index (bot/index.py), built on first use."""
        return RuleIndex(self.rules)

    def by_name(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)


def load_rule(
    path: Path,
    default_channel: str,
    known_feeds: Iterable[str] | None = None,
    aliases: Aliases | None = None,
) -> Rule:
    """Read one rule file; raise RuleError with file, line, column and reason."""
    return _load(path, None, default_channel, known_feeds, aliases)[0]


def load_rule_text(
    text: str,
    path: Path,
    default_channel: str,
    known_feeds: Iterable[str] | None = None,
    aliases: Aliases | None = None,
) -> Rule:
    """Like load_rule, from text already read (a file's last good version, say)."""
    return _load(path, text, default_channel, known_feeds, aliases)[0]


def _load(
    path: Path,
    text: str | None,
    default_channel: str,
    known_feeds: Iterable[str] | None,
    aliases: Aliases | None = None,
) -> tuple[Rule, str]:
    """The rule and the exact text it was read from (the file's, unless `text` is given)."""
    try:
        doc = read_yaml(path) if text is None else parse_yaml(text, path)
    except YamlProblem as exc:
        raise RuleError(path, exc.reason, exc.line, exc.column) from exc
    feeds = None if known_feeds is None else set(known_feeds)
    return _read_rule(doc, default_channel, feeds, aliases or {}), doc.text


def load_rules(
    directory: Path,
    default_channel: str,
    previous: RuleSet | None = None,
    known_feeds: Iterable[str] | None = None,
    snapshots: dict[str, str] | None = None,
    aliases: Aliases | None = None,
) -> RuleSet:
    """Load every rule file; a broken file keeps its last good version (if any) and says why.

    The last good version is the rule from `previous` (the set running now) or, at start-up,
    the file's text from `snapshots` (kept in the store). `@name` in queries comes from `aliases`.
    """
    feeds = None if known_feeds is None else set(known_feeds)
    old = {rule.path: rule for rule in previous.rules} if previous else {}
    rules: list[Rule] = []
    errors: list[RuleError] = []
    stale: list[str] = []
    sources: list[tuple[str, str]] = []
    names: dict[str, str] = {}
    for path in yaml_files(directory):
        try:
            rule, source = _load(path, None, default_channel, feeds, aliases)
            sources.append((str(path), source))  # the text that loaded, read once
        except RuleError as exc:
            errors.append(exc)
            kept = old.get(str(path)) or _from_snapshot(
                (snapshots or {}).get(str(path)), path, default_channel, feeds, aliases
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


def load_library(
    rules_dir: Path,
    aliases_dir: Path | None,
    default_channel: str,
    previous: RuleSet | None = None,
    known_feeds: Iterable[str] | None = None,
    snapshots: dict[str, str] | None = None,
) -> RuleSet:
    """The alias sets, then every rule built with them; errors of both, each with its file."""
    aliases = load_aliases(aliases_dir, previous.aliases if previous else None, snapshots)
    rules = load_rules(rules_dir, default_channel, previous, known_feeds, snapshots, aliases.terms)
    return replace(
        rules,
        errors=aliases.errors + rules.errors,
        stale=aliases.stale + rules.stale,
        sources=aliases.sources + rules.sources,  # both kept as last good versions
        aliases=aliases,
    )


def _from_snapshot(
    text: str | None,
    path: Path,
    default_channel: str,
    feeds: set[str] | None,
    aliases: Aliases | None,
) -> Rule | None:
    if text is None:
        return None
    try:
        return load_rule_text(text, path, default_channel, feeds, aliases)
    except RuleError:
        return None


def _read_rule(
    doc: Document, default_channel: str, known_feeds: set[str] | None, aliases: Aliases
) -> Rule:
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
    if "name" not in data:
        raise fail("missing required key 'name'")
    structured = [key for key in STRUCTURED if key in data]
    if "query" in data and structured:
        raise RuleError(
            path,
            f"a rule has either 'query' or all/any/none, not both ({structured[0]!r} here)",
            doc.key_line(structured[0]),
        )
    if "query" not in data and not structured:
        raise fail("missing required key 'query' (or the structured all/any/none)")
    name = data["name"]
    if not isinstance(name, str) or not RULE_NAME.match(name):
        raise fail("name must be letters, digits, '.', '_' or '-' (at most 80)", "name")
    if not isinstance(data.get("description", ""), str):
        raise fail("description must be text", "description")
    fields = _fields(data.get("fields"), doc)
    if structured:
        expr = _structured(doc, {k: data[k] for k in structured}, (), aliases)
        try:
            check_query(expr)
        except QuerySyntaxError as exc:
            raise RuleError(path, exc.reason, doc.key_line(structured[0])) from exc
        query = describe(expr)
    else:
        query = data["query"]
        if not isinstance(query, str):
            raise fail("query must be a string (quote it)", "query")
        expr = _parse(doc, ("query",), query, aliases, check=True)
    if (never := never_matches(expr, fields)) is not None:
        reason, column = never
        if structured:
            raise RuleError(path, f"can never match: {reason}", doc.key_line(structured[0]))
        line, col = doc.position_in(("query",), max(column - 1, 0))
        raise RuleError(path, f"query: can never match: {reason}", line, col)
    channel = data.get("channel", default_channel)
    if not valid_channel(channel):
        raise fail(
            "channel must look like '#korea-security' (lower case) or a channel ID", "channel"
        )
    return Rule(
        name=name,
        query=query,
        channel=channel,
        fields=fields,
        feeds=_feeds(data.get("feeds"), doc, known_feeds),
        path=str(path),
        expr=expr,
        **read_noise(doc),
    )


def _parse(
    doc: Document, keys: tuple[object, ...], text: str, aliases: Aliases, *, check: bool
) -> Expr:
    """Parse the query string at `keys`; an error points at its line and column in the file."""
    try:
        return parse_query(text, aliases, check=check)
    except QuerySyntaxError as exc:
        line, column = doc.position_in(keys, max(exc.column - 1, 0))
        label = ".".join(str(k) if isinstance(k, str) else f"[{k}]" for k in keys)
        raise RuleError(
            doc.path, f"{label.replace('.[', '[')}: {exc.reason}", line, column
        ) from exc


def _structured(
    doc: Document, node: dict[str, Any], keys: tuple[object, ...], aliases: Aliases
) -> Expr:
    """`all:` / `any:` / `none:` lists of query strings or nested mappings, as one expression."""
    parts: dict[str, list[Expr]] = {key: [] for key in STRUCTURED}
    for key, items in node.items():
        where = (*keys, key)
        if key not in STRUCTURED:
            raise RuleError(
                doc.path, f"unknown key {key!r} (expected all, any or none)", doc.key_line(*where)
            )
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not items:
            raise RuleError(
                doc.path, f"{key} must be a non-empty list of queries", doc.line(*where)
            )
        for i, item in enumerate(items):
            if isinstance(item, str):
                parts[key].append(_parse(doc, (*where, i), item, aliases, check=False))
            elif isinstance(item, dict) and item:
                parts[key].append(_structured(doc, item, (*where, i), aliases))
            else:
                raise RuleError(
                    doc.path,
                    f"each item of {key} is a query string or a mapping of all/any/none",
                    doc.line(*where, i),
                )
    return combine(parts["all"], parts["any"], parts["none"])


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
