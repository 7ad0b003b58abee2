"""Strict YAML reading that remembers where each value came from (the only PyYAML importer)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAX_YAML_BYTES = 1024 * 1024  # a rule or config file larger than this is a mistake or an attack
YAML_SUFFIXES = (".yaml", ".yml")


def yaml_files(directory: Path | None) -> list[Path]:
    """The YAML files in `directory`, sorted by name; none when it is unset or missing."""
    if directory is None or not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file())


class YamlProblem(Exception):
    """Raised with a 1-based line (and column) where the YAML is unacceptable."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        super().__init__(reason)


@dataclass(frozen=True)
class Located:
    """A scalar's position in the source and how it was written (for columns inside it)."""

    line: int  # 1-based line of the value's first character
    column: int  # 1-based column of the value's first character
    style: str | None  # None (plain), "'", '"', "|" or ">"
    end_line: int


class Document:
    """Plain Python data from one YAML file, with the location of every key and scalar."""

    def __init__(
        self, path: Path, text: str, data: Any, where: dict[tuple[object, ...], Located]
    ) -> None:
        self.path = path
        self.text = text
        self.data = data
        self._where = where

    def where(self, *keys: object) -> Located | None:
        """Where the value at `keys` (mapping keys / list indexes) was written."""
        return self._where.get(tuple(keys))

    def line(self, *keys: object) -> int | None:
        found = self._where.get(tuple(keys))
        return found.line if found else None

    def key_line(self, *keys: object) -> int | None:
        """The line of the key itself (for 'unknown key' errors)."""
        found = self._where.get((*keys, "<key>"))
        return found.line if found else self.line(*keys)

    def position_in(self, keys: tuple[object, ...], offset: int) -> tuple[int, int]:
        """Line and column of character `offset` inside the string scalar at `keys`.

        Lines of a multi-line scalar are taken as joined by one character (a newline or a
        folding space), which is how YAML joins them unless lines are blank.
        """
        loc = self._where[keys]
        lines = self.text.splitlines()
        if loc.style in ("|", ">"):
            row, first_col = loc.line, None  # content starts on the line after the indicator
        else:
            row, first_col = loc.line - 1, loc.column - 1 + (1 if loc.style else 0)
        remaining = offset
        while row < len(lines):
            raw = lines[row]
            if first_col is not None:
                start, first_col = first_col, None
            else:
                start = len(raw) - len(raw.lstrip(" "))
            length = len(raw) - start
            if remaining <= length:
                return row + 1, start + remaining + 1
            remaining -= length + 1
            row += 1
        return loc.line, loc.column


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases/anchors (alias bombs) and without duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise YamlProblem("YAML aliases (*name) are not allowed", event.start_mark.line + 1)
        event = self.peek_event()  # type: ignore[no-untyped-call]
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise YamlProblem("YAML anchors (&name) are not allowed", event.start_mark.line + 1)
        return super().compose_node(parent, index)


def _to_python(
    node: yaml.Node, path: tuple[object, ...], where: dict[tuple[object, ...], Located]
) -> Any:
    if node.tag not in _PLAIN_TAGS:
        raise YamlProblem(f"YAML tag {node.tag} is not allowed", node.start_mark.line + 1)
    mark, end = node.start_mark, node.end_mark
    style = getattr(node, "style", None)
    where[path] = Located(mark.line + 1, mark.column + 1, style, end.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _StrictLoader.construct_object(_LOADER_FOR_SCALARS, key_node)
            if isinstance(key, list | dict):
                raise YamlProblem("mapping keys must be plain names", key_node.start_mark.line + 1)
            if key in result:
                raise YamlProblem(
                    f"duplicate key {key!r}",
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
            where[(*path, key, "<key>")] = Located(
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
                None,
                key_node.end_mark.line + 1,
            )
            result[key] = _to_python(value_node, (*path, key), where)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*path, i), where) for i, item in enumerate(node.value)]
    return _StrictLoader.construct_object(_LOADER_FOR_SCALARS, node)


_LOADER_FOR_SCALARS = _StrictLoader("")
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp")
)


def parse_yaml(text: str, path: Path) -> Document:
    """Parse one YAML document; raise YamlProblem with the line where it goes wrong."""
    if len(text.encode("utf-8", errors="replace")) > MAX_YAML_BYTES:
        raise YamlProblem(f"file is larger than {MAX_YAML_BYTES} bytes")
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
    except YamlProblem:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise YamlProblem(
            reason or "invalid YAML",
            mark.line + 1 if mark else None,
            mark.column + 1 if mark else None,
        ) from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}") from exc
    finally:
        loader.dispose()
    where: dict[tuple[object, ...], Located] = {}
    try:
        data = None if node is None else _to_python(node, (), where)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise YamlProblem(str(exc.problem), mark.line + 1 if mark else None) from exc
    return Document(path, text, data, where)


def read_yaml(path: Path) -> Document:
    """Read and parse `path`; size is checked before the whole file is read."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise YamlProblem(f"cannot read file: {exc.strerror or exc}") from exc
    if size > MAX_YAML_BYTES:
        raise YamlProblem(f"file is larger than {MAX_YAML_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlProblem(f"cannot read file as UTF-8: {exc}") from exc
    return parse_yaml(text, path)
