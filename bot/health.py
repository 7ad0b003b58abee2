"""Feed health for `newswatch feeds`: each configured feed's state, as rows and as a table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo

from bot.models import FeedConfig
from bot.schedule import Polling, silent_for
from bot.store import PAGE_RETENTION, FeedState, PageCounts

HEADERS = ("FEED", "STATUS", "LAST SUCCESS", "FAILURES", "NEXT POLL", "ARTICLES")


@dataclass(frozen=True)
class FeedHealth:
    name: str
    status: str  # "ok", "failing", "silent", "disabled" or "never polled"
    last_success: datetime | None
    last_error: str | None  # shown while failing or disabled
    failures: int
    next_poll: datetime | None
    next_reason: str | None
    articles_seen: int
    effective_url: str | None  # where it is polled, when that is not the configured URL
    pages: PageCounts = field(default_factory=PageCounts)  # full-text feeds: pages fetched, failed


def feed_health(
    feeds: Sequence[FeedConfig],
    states: Sequence[FeedState],
    now: datetime,
    pages: Mapping[str, PageCounts] | None = None,
) -> list[FeedHealth]:
    """One row per configured feed, in config order (state from another URL counts as none);
    `pages`: each full-text feed's article pages, as the store counts them."""
    by_name = {state.name: state for state in states}
    rows = [_row(feed, by_name.get(feed.name), now) for feed in feeds]
    counts = pages or {}
    return [replace(row, pages=counts.get(row.name, PageCounts())) for row in rows]


def _row(feed: FeedConfig, state: FeedState | None, now: datetime) -> FeedHealth:
    if state is None or state.url != feed.url:
        return FeedHealth(feed.name, "never polled", None, None, 0, None, None, 0, None)
    polling: Polling = state.polling
    quiet = silent_for(polling, now, state.first_polled_at)
    if polling.disabled_reason is not None:
        status = "disabled"
    elif state.consecutive_failures:
        status = "failing"
    elif state.first_polled_at is None:
        status = "never polled"
    elif feed.silent_after is not None and quiet >= feed.silent_after:
        status = "silent"
    else:
        status = "ok"
    error = polling.disabled_reason or (state.last_error if state.consecutive_failures else None)
    moved = polling.effective_url if polling.effective_url != feed.url else None
    return FeedHealth(
        name=feed.name,
        status=status,
        last_success=state.last_success_at,
        last_error=error,
        failures=state.consecutive_failures,
        next_poll=polling.next_poll_at,
        next_reason=polling.next_poll_reason,
        articles_seen=state.articles_seen,
        effective_url=moved,
    )


def render_table(rows: Sequence[FeedHealth], tz: tzinfo = UTC) -> str:
    """A plain-text table (times in `tz`); errors and moved URLs on an indented line below."""
    cells = [HEADERS]
    for row in rows:
        if row.status == "disabled":
            next_poll = "never (until its url changes)"
        elif row.next_poll is None:
            next_poll = "at start"
        else:
            reason = f" ({row.next_reason})" if row.next_reason else ""
            next_poll = when(row.next_poll, tz) + reason
        cells.append(
            (
                row.name,
                row.status,
                when(row.last_success, tz),
                str(row.failures),
                next_poll,
                str(row.articles_seen),
            )
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]
    lines = []
    for index, line in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if index == 0:
            continue
        row = rows[index - 1]
        if row.last_error:
            lines.append(f"    last error: {row.last_error}")
        if row.effective_url:
            lines.append(f"    polled at: {row.effective_url} (moved; update config.yaml)")
        if row.pages.failed:
            lines.append(f"    full text: {pages_line(row.pages)}")
    return "\n".join(lines) + "\n"


def pages_line(pages: PageCounts) -> str:
    """How a feed's article pages fared, e.g. `2 of 40 pages failed in 14 days (last: …)`."""
    last = f" (last: {pages.last_error})" if pages.last_error else ""
    days = PAGE_RETENTION.days
    return f"{pages.failed} of {pages.fetched} pages failed in {days} days{last}"


def when(moment: datetime | None, tz: tzinfo = UTC) -> str:
    """A time as the table shows it: minutes, in `tz`, with the zone's abbreviation."""
    return "never" if moment is None else f"{moment.astimezone(tz):%Y-%m-%d %H:%M %Z}"
