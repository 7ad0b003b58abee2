"""Which articles are new, and which of them alert: pure decisions over what the store knows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.models import AlertContent, Article, Candidate


@dataclass(frozen=True)
class Selection:
    new_articles: tuple[Article, ...]  # to be recorded as seen
    alerts: tuple[tuple[Article, AlertContent], ...]  # to be queued
    held_back: int  # new matching articles not alerted because they predate the backlog window


def within_backlog(article: Article, backlog: timedelta | None, now: datetime) -> bool:
    """On a feed's first poll, only articles published inside the backlog window alert.

    An undated article cannot be placed in the window, so it alerts only with `backlog: all`.
    """
    if backlog is None:
        return True
    if article.published is None:
        return False
    return article.published >= now - backlog


def select(
    candidates: Sequence[Candidate],
    unseen: Iterable[str],
    *,
    first_poll: bool,
    backlog: timedelta | None,
    now: datetime,
) -> Selection:
    unseen_keys = set(unseen)
    new = [c for c in candidates if c.article.feed_key in unseen_keys]
    alerts: list[tuple[Article, AlertContent]] = []
    held_back = 0
    for candidate in new:
        if not candidate.alerts:
            continue
        if first_poll and not within_backlog(candidate.article, backlog, now):
            held_back += 1
            continue
        alerts.extend((candidate.article, alert) for alert in candidate.alerts)
    return Selection(tuple(c.article for c in new), tuple(alerts), held_back)
