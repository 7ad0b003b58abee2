"""Small builders of value objects for tests: change only what a test is about."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.models import AlertContent

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
