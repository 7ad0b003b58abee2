"""Edits to config.yaml that keep its comments and layout (ruamel.yaml round-trip; its one user)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from bot.config import Config, load_config
from bot.errors import ConfigError


@dataclass(frozen=True)
class NewFeed:
    """A feed to append to `feeds:`; optional keys are written only when they differ from the
    defaults."""

    name: str
    url: str
    full_text: bool = False
    interval: str | None = None  # e.g. "15m"


def add_feeds(path: Path, new: Sequence[NewFeed]) -> Config:
    """Append `new` to the `feeds:` list of the config at `path`, every other line untouched.

    The edited text is checked as a whole (load_config) before it replaces the file, in one
    rename: a bad edit leaves the file as it was. Returns the config as it now stands.
    """
    text = path.read_text(encoding="utf-8")
    try:
        _, indent, offset = load_yaml_guess_indent(text)
        yaml = YAML(typ="rt")
        yaml.indent(mapping=max(2, indent - offset), sequence=indent, offset=offset)
        yaml.preserve_quotes = True
        yaml.width = 4096  # long URLs stay on one line
        data = yaml.load(text)
    except YAMLError as exc:
        raise ConfigError(path, f"cannot edit: {exc}") from exc
    feeds = data.get("feeds") if isinstance(data, dict) else None
    if feeds is None:
        feeds = data["feeds"] = CommentedSeq()
    if not isinstance(feeds, list):
        raise ConfigError(path, "cannot add feeds: `feeds` is not a list")
    for feed in new:
        entry = CommentedMap([("name", feed.name), ("url", feed.url)])
        if feed.interval is not None:
            entry["interval"] = feed.interval
        if feed.full_text:
            entry["full_text"] = True
        feeds.append(entry)
    out = io.StringIO()
    yaml.dump(data, out)
    return _replace(path, out.getvalue())


def _replace(path: Path, text: str) -> Config:
    """Write `text` beside `path`, check it as a config, then move it over `path`."""
    temp = path.with_name(f".{path.name}.new")
    temp.write_text(text, encoding="utf-8")
    try:
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o7777)
        load_config(temp)
    except ConfigError as exc:
        temp.unlink(missing_ok=True)
        raise ConfigError(path, f"the edit was not saved: {exc.reason}", exc.line) from exc
    os.replace(temp, path)
    return load_config(path)
