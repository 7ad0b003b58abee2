"""Small builders of value objects (and rule files) for tests: change only what a test is about."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.models import AlertContent, Article

# Every way a feed could try to notify people or reach a channel (RELIABILITY case 1).
MENTIONS = (
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam^S1>",
    "<@U1>",
    "<#C1>",
    "<!date^0^{date}|x>",
    "&lt;!here&gt;",
    "<!channel|channel>",
    "<@U1|boss>",
)


def alert(**changes: Any) -> AlertContent:
    base: dict[str, Any] = {
        "channel": "#news",
        "title": "Chip makers rally",
        "link": "https://news.example/markets/chips?id=7&src=rss",
        "source": "Example Daily",
        "published": datetime(2025, 7, 31, 5, 38, tzinfo=UTC),
        "rules": ("chips",),
        "terms": ("chip",),
        "summary": ("Shares of \x02chip\x03 makers rose.",),
    }
    base.update(changes)
    return AlertContent(**base)


def article(**changes: Any) -> Article:
    base: dict[str, Any] = {
        "feed": "wire",
        "feed_key": "k",
        "cross_key": "url:https://news.example/a",
        "title": "A title",
        "link": "https://news.example/a",
        "summary": "",
        "content": "",
        "published": datetime(2025, 7, 31, 6, 0, tzinfo=UTC),
        "source": "Wire",
    }
    base.update(changes)
    return Article(**base)


def displayed_texts(text: object, blocks: object) -> list[str]:
    """Everything Slack would display: the fallback text and every text inside the blocks."""
    found = [str(text or "")]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value)

    walk(blocks)
    return found


def write(folder: Path, name: str, text: str) -> Path:
    """A UTF-8 file `name` in `folder` (created as needed) holding `text`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
