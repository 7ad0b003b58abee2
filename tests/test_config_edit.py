"""Adding feeds to config.yaml keeps every comment and line of the file as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.config import load_config
from bot.configedit import NewFeed, add_feeds
from bot.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    return Path(shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml"))


def test_feeds_are_appended_and_every_other_line_is_kept(shipped: Path) -> None:
    before = shipped.read_text(encoding="utf-8")
    config = add_feeds(
        shipped,
        [
            NewFeed("wire", "https://wire.example/rss?a=1&b=2"),
            NewFeed("hanbando", "https://rss.hanbando.example/politics.xml", full_text=True),
        ],
    )
    after = shipped.read_text(encoding="utf-8")
    assert after == before + (
        "  - name: wire\n"
        "    url: https://wire.example/rss?a=1&b=2\n"
        "  - name: hanbando\n"
        "    url: https://rss.hanbando.example/politics.xml\n"
        "    full_text: true\n"
    )
    assert [f.name for f in config.feeds][-2:] == ["wire", "hanbando"]
    assert config.feeds[-1].full_text and not config.feeds[-2].full_text


def test_a_file_with_flush_lists_and_quoted_values_keeps_its_style(tmp_path: Path) -> None:
    text = (
        "# my config\n"
        'slack: {default_channel: "#news"}\n'
        "feeds:\n"
        "- name: 'one'   # the first\n"
        '  url: "https://one.example/rss"\n'
        "\n"
        "# trailing note\n"
    )
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    add_feeds(path, [NewFeed("two", "https://two.example/rss")])
    after = path.read_text(encoding="utf-8")
    for line in text.splitlines():
        assert line in after.splitlines()
    assert "- name: two\n  url: https://two.example/rss\n" in after
    assert [f.name for f in load_config(path).feeds] == ["one", "two"]


def test_an_edit_that_would_break_the_config_is_not_saved(shipped: Path) -> None:
    before = shipped.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="the edit was not saved: duplicate feed name"):
        add_feeds(shipped, [NewFeed("yonhap-en", "https://elsewhere.example/rss")])
    assert shipped.read_text(encoding="utf-8") == before
    assert [p.name for p in shipped.parent.iterdir()] == ["config.yaml"]  # no temp file left
