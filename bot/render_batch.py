"""Render a batch of held alerts (a digest, a catch-up, quiet hours) as one Slack message."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, tzinfo

from bot.mention import mentions_text
from bot.models import AlertContent, Batch, Message
from bot.render import (
    MAX_HEADLINE,
    MAX_NAME,
    MAX_SECTION,
    MAX_TEXT,
    MAX_URL,
    _clean,
    _entities,
    _fit,
    _mrkdwn,
    _when,
    safe_url,
)

MAX_SHOWN = 25  # alerts listed in one message; the rest are counted ("and N more")
BLOCKS_BUDGET = 10_000  # characters of listed lines in blocks, under slack.py's 12,000 budget
_TITLES = {"digest": "Digest", "catch-up": "Catch-up", "quiet": "Held during quiet hours"}


def render_batch(batch: Batch, tz: tzinfo = UTC) -> Message:
    """One message: a heading (mentions, kind, rule, count), one line per alert (linked
    headline · source · time in `tz`), capped with "and N more" within Slack's limits."""
    heading = _heading(batch, tz)
    lines: list[str] = []
    used = 0
    for index, item in enumerate(batch.items[:MAX_SHOWN]):
        line = _line(item, tz, _also(batch, index))
        if used + len(line) + 1 > BLOCKS_BUDGET:
            break
        lines.append(line)
        used += len(line) + 1
    more = batch.total - len(lines)
    blocks: list[dict[str, object]] = [{"type": "section", "text": _mrkdwn(heading)}]
    section: list[str] = []
    for line in lines:
        if section and sum(len(s) + 1 for s in section) + len(line) > MAX_SECTION:
            blocks.append({"type": "section", "text": _mrkdwn("\n".join(section))})
            section = []
        section.append(line)
    if section:
        blocks.append({"type": "section", "text": _mrkdwn("\n".join(section))})
    if more > 0:
        blocks.append({"type": "context", "elements": [_mrkdwn(f"and {more} more")]})
    text = heading
    shown = 0
    for line in lines:
        if len(text) + 1 + len(line) + 20 > MAX_TEXT:  # room left for "and N more"
            break
        text += "\n" + line
        shown += 1
    if batch.total > shown:
        text += f"\nand {batch.total - shown} more"
    return Message(channel=batch.channel, text=text, blocks=tuple(blocks))


def _heading(batch: Batch, tz: tzinfo) -> str:
    title = _TITLES.get(batch.kind, "Held alerts")
    count = f"{batch.total} {'match' if batch.total == 1 else 'matches'}"
    parts = [f"*{title}*"]
    if batch.rule:
        parts.append(_fit(batch.rule, MAX_NAME))
    parts.append(count)
    if batch.since is not None:
        parts.append(f"since {_when(batch.since, tz)}")
    heading = " · ".join(parts)
    mentions = mentions_text(batch.mentions)
    return f"{mentions} {heading}" if mentions else heading


def _line(item: AlertContent, tz: tzinfo, also: tuple[str, ...] = ()) -> str:
    title = _fit(item.title, MAX_HEADLINE) or "(untitled)"
    url = safe_url(item.link)
    link = _entities(url) if url and len(url) <= MAX_URL else None
    headline = f"<{link}|{title}>" if link else title
    source = _fit(item.source, MAX_NAME) or "unknown source"
    line = f"• {headline} · {source} · {_when(item.published, tz)}"
    if also:
        line += f" · also reported by {_others(also, _fit)}"
    return line


def _also(batch: Batch, index: int) -> tuple[str, ...]:
    """The sources of the copies of item `index` held with it (folded into its line)."""
    return batch.also[index] if index < len(batch.also) else ()


def _others(sources: tuple[str, ...], fit: Callable[[str, int], str]) -> str:
    """Up to three source names, then "and N more"."""
    names = [fit(s, MAX_NAME) or "unknown source" for s in sources[:3]]
    rest = len(sources) - len(names)
    return ", ".join(names) + (f" and {rest} more" if rest > 0 else "")


def render_terminal_batch(batch: Batch, tz: tzinfo = UTC) -> str:
    """A batch for a terminal: heading, then one line per alert."""
    title = _TITLES.get(batch.kind, "Held alerts")
    head = f"[{_clean(batch.channel)}] {title}"
    if batch.rule:
        head += f" · {_clean(batch.rule)}"
    lines = [f"{head} · {batch.total} matches"]
    for index, item in enumerate(batch.items[:MAX_SHOWN]):
        url = safe_url(item.link) or ""
        also = _also(batch, index)
        extra = f" · also reported by {_others(also, _cut)}" if also else ""
        lines.append(
            f"  - {_clean(item.title)[:MAX_HEADLINE] or '(untitled)'} · {_clean(item.source)} · "
            f"{_when(item.published, tz)}{extra} {url}".rstrip()
        )
    if batch.total > len(lines) - 1:
        lines.append(f"  and {batch.total - (len(lines) - 1)} more")
    return "\n".join(lines)


def _cut(text: str, limit: int) -> str:
    return _clean(text)[:limit]
