"""The store's article pages: full text fetched once per article, and each feed's tally of it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from bot.models import ArticlePage
from bot.store.database import Database
from bot.store.schema import article_pages

PAGE_RETENTION = timedelta(days=14)  # pages (and failures) older than this are forgotten
_LOOKUP_BATCH = 500  # cross keys per IN (...) query


@dataclass(frozen=True)
class PageCounts:
    """A feed's article pages over the retention window: fetched, failed, the last failure."""

    fetched: int = 0
    failed: int = 0
    last_error: str | None = None


class PageStore(Database):
    """Full article text, cached by cross-feed key so that no page is fetched twice."""

    def cached_pages(self, cross_keys: Iterable[str]) -> dict[str, ArticlePage]:
        """The pages already fetched (or failed) among `cross_keys`."""
        keys = list(dict.fromkeys(cross_keys))
        found: dict[str, ArticlePage] = {}
        with self._tx() as conn:
            for start in range(0, len(keys), _LOOKUP_BATCH):
                batch = keys[start : start + _LOOKUP_BATCH]
                rows = conn.execute(
                    sa.select(
                        article_pages.c.cross_key, article_pages.c.text, article_pages.c.error
                    ).where(article_pages.c.cross_key.in_(batch))
                ).all()
                found.update({r.cross_key: ArticlePage(r.cross_key, r.text, r.error) for r in rows})
        return found

    def record_pages(self, feed: str, pages: Sequence[ArticlePage], now: datetime) -> None:
        """Keep what each page fetch gave (the first answer for a key wins); forget old ones."""
        with self._tx() as conn:
            if pages:
                conn.execute(
                    self._insert(article_pages).on_conflict_do_nothing(),
                    [
                        {
                            "cross_key": p.cross_key,
                            "feed": feed,
                            "text": p.text,
                            "error": p.error,
                            "fetched_at": now,
                        }
                        for p in pages
                    ],
                )
            conn.execute(
                article_pages.delete().where(article_pages.c.fetched_at < now - PAGE_RETENTION)
            )

    def page_counts(self) -> dict[str, PageCounts]:
        """Per feed: pages fetched and failed within the retention window, the last failure."""
        failed = sa.case((article_pages.c.error.is_not(None), 1), else_=0)
        with self._tx() as conn:
            totals = conn.execute(
                sa.select(article_pages.c.feed, sa.func.count(), sa.func.sum(failed)).group_by(
                    article_pages.c.feed
                )
            ).all()
            last = conn.execute(
                sa.select(article_pages.c.feed, article_pages.c.error)
                .where(article_pages.c.error.is_not(None))
                .order_by(article_pages.c.fetched_at.desc())
            ).all()
        latest: dict[str, str] = {}
        for feed, error in last:
            latest.setdefault(feed, error)
        return {
            feed: PageCounts(int(count), int(fails or 0), latest.get(feed))
            for feed, count, fails in totals
        }
