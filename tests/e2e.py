"""Helpers for end-to-end tests: feeds built from articles, a bot wired to loopback servers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from bot.app import App
from bot.clock import FixedClock
from bot.config import load_config
from tests.slackdouble import TOKEN, SlackDouble

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Item:
    guid: str
    title: str
    body: str
    published: datetime
    link: str = ""


def rss(items: list[Item], title: str = "Loopback Wire") -> str:
    """An RSS 2.0 document; text is XML-escaped exactly once, as a publisher would."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<rss version="2.0"><channel><title>{escape(title)}</title>',
        "<link>https://wire.example/</link><description>test feed</description>",
    ]
    for item in items:
        link = item.link or f"https://wire.example/{item.guid}"
        parts.append(
            f"<item><title>{escape(item.title)}</title><link>{escape(link)}</link>"
            f'<guid isPermaLink="false">{escape(item.guid)}</guid>'
            f"<pubDate>{format_datetime(item.published)}</pubDate>"
            f"<description>{escape(item.body)}</description></item>"
        )
    parts.append("</channel></rss>")
    return "\n".join(parts)


def sample_item(path: Path, published: datetime, guid: str = "sample-1") -> Item:
    """The real sample article as a feed item: its headline and its paragraphs."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    text = [line for line in lines if line]
    title = text[1]  # the first line is the page's date banner, then the headline
    body = " ".join(text[3:])  # after the headline and the timestamp line
    return Item(guid=guid, title=title, body=body, published=published)


def write_config(
    tmp_path: Path,
    feeds: dict[str, str],
    *,
    rules: Path | None = None,
    backlog: str = "24h",
    admin: bool | str = False,
    deadline: str = "5s",
    feed_lines: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
) -> Path:
    """config.yaml for `feeds` (name: URL) on loopback; `admin`: True or the admin channel's
    name; `extra`: more top-level lines (e.g. display_timezone, channels)."""
    lines = [
        f"rules: {rules or REPO / 'rules'}",
        *([] if rules else [f"aliases: {REPO / 'aliases'}"]),  # the shipped rules use them
        f"database: {tmp_path / 'state.db'}",
        "slack:",
        '  default_channel: "#news-alerts"',
    ]
    if admin:
        lines.append(f'  admin_channel: "{admin if isinstance(admin, str) else "#newswatch-ops"}"')
    lines += ["workers: 1", "fetch:", f"  deadline: {deadline}", "  allow_private: [127.0.0.0/8]"]
    lines += [*extra, "feeds:"]
    for name, url in feeds.items():
        lines += [
            f"  - name: {name}",
            f"    url: {url}",
            "    interval: 1m",
            f"    backlog: {backlog}",
            *(f"    {line}" for line in feed_lines),
        ]
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_app(config_path: Path, slack: SlackDouble, clock: FixedClock) -> App:
    env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": slack.base_url}
    return App.create(load_config(config_path), clock=clock, env=env)


def message_text(message: dict[str, object]) -> str:
    """Everything a person could read in a message: fallback text and every block's text."""
    import json

    return str(message.get("text", "")) + json.dumps(message.get("blocks", []), ensure_ascii=False)


async def run_once(config_path: Path, slack: SlackDouble, clock: FixedClock) -> list[str]:
    """Start the bot on `config_path`, poll every feed once, deliver, stop; the poll statuses."""
    app = make_app(config_path, slack, clock)
    try:
        return [outcome.status for outcome in await app.run_once()]
    finally:
        await app.close()


def with_app(
    config_path: Path, slack: SlackDouble, clock: FixedClock, body: Callable[[App], Awaitable[None]]
) -> None:
    """Run `body` on a bot started on `config_path`, closing the bot whatever happens."""

    async def main() -> None:
        app = make_app(config_path, slack, clock)
        try:
            await body(app)
        finally:
            await app.close()

    asyncio.run(main())
