"""Alias sets (`@usfk`) read from the aliases folder: each name stands for a list of terms.

One or more YAML files, each a mapping of alias names to lists of terms:

    usfk: [USFK, "U.S. Forces Korea", "United States Forces Korea", 주한미군]

An entry is one term as a query would write it, without quote marks: a word, several words (a
phrase), `prefix*`, or `{EXACT}` case. A name is defined once across all files. A broken file
keeps its last good version (the one running, or at start-up the text kept in the store), like
a rule file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import QuerySyntaxError, RuleError
from bot.expr import Term
from bot.query import ALIAS_NAME, parse_term
from bot.yamlfile import Document, YamlProblem, parse_yaml, read_yaml, yaml_files


@dataclass(frozen=True)
class AliasSet:
    """The alias sets in force, where each came from, and the errors found loading them."""

    terms: dict[str, tuple[Term, ...]] = field(default_factory=dict)  # never mutated
    origin: dict[str, str] = field(default_factory=dict)  # alias name → file
    errors: tuple[RuleError, ...] = ()
    stale: tuple[str, ...] = ()  # files whose last good version is kept after a broken edit
    sources: tuple[tuple[str, str], ...] = ()  # (path, text) of every file that loaded cleanly


def load_aliases(
    directory: Path | None,
    previous: AliasSet | None = None,
    snapshots: dict[str, str] | None = None,
) -> AliasSet:
    """Read every alias file; a broken one keeps its aliases from `previous` or, at start-up,
    from its text in `snapshots`."""
    terms: dict[str, tuple[Term, ...]] = {}
    origin: dict[str, str] = {}
    errors: list[RuleError] = []
    stale: list[str] = []
    sources: list[tuple[str, str]] = []
    for path in yaml_files(directory):
        try:
            found, text = _load(path, None)
            sources.append((str(path), text))
        except RuleError as exc:
            errors.append(exc)
            found = _last_good(path, previous, (snapshots or {}).get(str(path)))
            if found:
                stale.append(str(path))
        for name, value in found.items():
            if name in origin:
                errors.append(RuleError(path, f"alias {name!r} is also defined in {origin[name]}"))
                continue
            terms[name], origin[name] = value, str(path)
    return AliasSet(terms, origin, tuple(errors), tuple(stale), tuple(sources))


def _last_good(
    path: Path, previous: AliasSet | None, snapshot: str | None
) -> dict[str, tuple[Term, ...]]:
    if previous is not None:
        return {n: previous.terms[n] for n, p in previous.origin.items() if p == str(path)}
    if snapshot is None:
        return {}
    try:
        return _load(path, snapshot)[0]
    except RuleError:
        return {}


def read_alias_file(path: Path) -> dict[str, tuple[Term, ...]]:
    """One alias file; raise RuleError with file, line, column and reason."""
    return _load(path, None)[0]


def _load(path: Path, text: str | None) -> tuple[dict[str, tuple[Term, ...]], str]:
    """The aliases of one file and the exact text they were read from."""
    try:
        doc = read_yaml(path) if text is None else parse_yaml(text, path)
    except YamlProblem as exc:
        raise RuleError(path, exc.reason, exc.line, exc.column) from exc
    data = doc.data
    if data is None:
        return {}, doc.text
    if not isinstance(data, dict):
        raise RuleError(
            path, "an alias file maps names to lists of terms: usfk: [USFK, 주한미군]", 1
        )
    found: dict[str, tuple[Term, ...]] = {}
    for name, entries in data.items():
        if not isinstance(name, str) or not ALIAS_NAME.match(name):
            raise RuleError(
                path,
                f"alias name {name!r}: use lower-case letters, digits, '_' or '-'",
                doc.key_line(name),
            )
        if isinstance(entries, str):
            entries = [entries]
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise RuleError(path, f"alias {name!r} must be a list of terms", doc.line(name))
        found[name] = tuple(_entry(doc, name, i, entry) for i, entry in enumerate(entries))
    return found, doc.text


def _entry(doc: Document, name: str, index: int, text: str) -> Term:
    try:
        return parse_term(text)
    except QuerySyntaxError as exc:
        line, column = doc.position_in((name, index), max(exc.column - 1, 0))
        raise RuleError(doc.path, f"alias {name!r}: {exc.reason}", line, column) from exc
