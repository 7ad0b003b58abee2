"""An alert's content as the JSON the outbox keeps, and back."""

from __future__ import annotations

import json
from datetime import datetime

from bot.models import AlertContent


def encode_content(content: AlertContent) -> str:
    return json.dumps(
        {
            "channel": content.channel,
            "title": content.title,
            "link": content.link,
            "source": content.source,
            "published": content.published.isoformat() if content.published else None,
            "rules": list(content.rules),
            "terms": list(content.terms),
            "summary": list(content.summary),
            **({"mentions": list(content.mentions)} if content.mentions else {}),
        },
        ensure_ascii=False,
    )


def decode_content(text: str) -> AlertContent:
    data = json.loads(text)
    published = data.get("published")
    return AlertContent(
        channel=data["channel"],
        title=data["title"],
        link=data.get("link"),
        source=data["source"],
        published=datetime.fromisoformat(published) if published else None,
        rules=tuple(data["rules"]),
        terms=tuple(data["terms"]),
        summary=tuple(data["summary"]),
        mentions=tuple(data.get("mentions") or ()),
    )
