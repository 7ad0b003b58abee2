"""The store's archive: every polled article for the retention, its full-text search, pruning.

The table is portable SQLAlchemy Core; the full-text index is the backend's own. On SQLite (the
embedded default) it is the FTS5 table of migration 4 (schema.ARCHIVE_FTS_SQLITE, `trigram`
tokenizer: Korean words are found inside the eojeol carrying their particle), queried here in
raw SQL since SQLAlchemy has no FTS5 construct. A PostgreSQL implementation would add a
`tsvector` column (or a trigram GIN index, for the same Korean behaviour) in its own migration
and a branch of `search_archive`; until then, search on another backend raises SearchError
while archiving, backtests and pruning work everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.errors import SearchError
from bot.models import Article
from bot.search import excerpt, plan_search
from bot.store.content import decode_content
from bot.store.database import Database
from bot.store.schema import UTCDateTime, alerts, archive
from bot.summarize import MARK_END, MARK_START

MAX_ARCHIVED_TITLE_CHARS = 1_000  # as normalize caps titles
MAX_ARCHIVED_TEXT_CHARS = 65_536  # summary and content, each: a backtest reads no further
READ_BATCH = 500  # archived articles read per query while a backtest walks a window
SNIPPET_TOKENS = 64  # the most FTS5 allows; a trigram token is about one character
FTS_ERRORS = ("fts5", "syntax error", "unterminated string", "no such column", "unknown special")


@dataclass(frozen=True)
class ArchivedArticle:
    """An article as it was polled, when it was first seen, and its place in time (`at`:
    published, else first seen)."""

    article: Article
    first_seen_at: datetime
    at: datetime


@dataclass(frozen=True)
class SearchHit:
    """One archived article found by a search, with a snippet (terms marked \\x02 … \\x03)."""

    feed: str
    title: str
    link: str | None
    source: str
    at: datetime
    snippet: str


@dataclass(frozen=True)
class ArchiveSpan:
    """How many articles the archive holds and the times they cover (None when empty)."""

    count: int
    oldest: datetime | None  # the earliest `at`
    first_seen: datetime | None  # the earliest first sighting still kept


def archive_articles(
    conn: Connection, insert: Any, feed: str, articles: Sequence[Article], now: datetime
) -> None:
    """Keep `articles`, first seen `now` (in the caller's transaction; a repeat is ignored)."""
    if not articles:
        return
    conn.execute(
        insert(archive).on_conflict_do_nothing(),
        [
            {
                "feed": feed,
                "feed_key": a.feed_key,
                "cross_key": a.cross_key,
                "title": a.title[:MAX_ARCHIVED_TITLE_CHARS],
                "summary": a.summary[:MAX_ARCHIVED_TEXT_CHARS],
                "content": a.content[:MAX_ARCHIVED_TEXT_CHARS],
                "link": a.link,
                "source": a.source,
                "published": a.published,
                "first_seen_at": now,
                "at": a.published if a.published is not None and a.published <= now else now,
            }
            for a in articles
        ],
    )


class ArchiveStore(Database):
    """Polled articles kept for the retention: walked by backtests, searched, pruned."""

    def prune_archive(self, before: datetime) -> int:
        """Forget the articles first seen before `before`; returns how many."""
        with self._tx() as conn:
            result = conn.execute(archive.delete().where(archive.c.first_seen_at < before))
        return max(result.rowcount, 0)

    def archive_span(self) -> ArchiveSpan:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.count(), sa.func.min(archive.c.at), sa.func.min(archive.c.first_seen_at)
                )
            ).one()
        return ArchiveSpan(int(row[0]), row[1], row[2])

    def archived(self, since: datetime, until: datetime) -> Iterator[ArchivedArticle]:
        """The archived articles whose `at` falls in [since, until), a batch per transaction."""
        last = 0
        while True:
            with self._tx() as conn:
                rows = conn.execute(
                    sa.select(archive)
                    .where(archive.c.at >= since, archive.c.at < until, archive.c.id > last)
                    .order_by(archive.c.id)
                    .limit(READ_BATCH)
                ).all()
            if not rows:
                return
            last = rows[-1].id
            for row in rows:
                yield _archived(row)

    def alerted_rules(self, channel: str, cross_keys: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """For each article key alerted in `channel`, the rules its alert named."""
        found: dict[str, tuple[str, ...]] = {}
        keys = list(dict.fromkeys(cross_keys))
        with self._tx() as conn:
            for start in range(0, len(keys), 500):
                rows = conn.execute(
                    sa.select(alerts.c.cross_key, alerts.c.content).where(
                        alerts.c.channel == channel,
                        alerts.c.kind.is_(None),
                        alerts.c.cross_key.in_(keys[start : start + 500]),
                    )
                ).all()
                for key, content in rows:
                    found[key] = decode_content(content).rules
        return found

    def search_archive(
        self, query: str, *, since: datetime | None = None, limit: int = 20
    ) -> list[SearchHit]:
        """Archived articles matching `query` (see search.plan_search), newest first.

        The query is bound as a parameter, never spliced into the SQL. A query the index
        cannot parse raises SearchError.
        """
        if self.engine.dialect.name != "sqlite":
            raise SearchError(query, f"full-text search needs SQLite; this is {self.engine.name}")
        try:
            plan = plan_search(query)
        except ValueError as exc:
            raise SearchError(query, str(exc)) from None
        where = ["a.at >= :since"]
        params: dict[str, Any] = {"since": since or _EPOCH, "limit": limit}
        for i, word in enumerate(plan.substrings):
            params[f"s{i}"] = f"%{_like_escaped(word)}%"
            where.append(
                "(" + " OR ".join(f"a.{f} LIKE :s{i} ESCAPE '\\'" for f in _TEXT_FIELDS) + ")"
            )
        if plan.match is not None:
            params["match"] = plan.match
            sql = (
                "SELECT a.*, snippet(archive_fts, -1, :mark_start, :mark_end, '…', "
                f"{SNIPPET_TOKENS}) AS snip FROM archive_fts "
                "JOIN archive a ON a.id = archive_fts.rowid "
                f"WHERE archive_fts MATCH :match AND {' AND '.join(where)} "
                "ORDER BY a.at DESC, a.id DESC LIMIT :limit"
            )
            params.update(mark_start=MARK_START, mark_end=MARK_END)
        else:
            sql = (
                f"SELECT a.*, NULL AS snip FROM archive a WHERE {' AND '.join(where)} "
                "ORDER BY a.at DESC, a.id DESC LIMIT :limit"
            )
        statement = sa.text(sql).columns(
            at=UTCDateTime(), published=UTCDateTime(), first_seen_at=UTCDateTime()
        )
        with self._tx() as conn:
            try:
                rows = conn.execute(statement, params).all()
            except sa.exc.OperationalError as exc:
                reason = str(exc.orig)
                if not any(word in reason for word in FTS_ERRORS):
                    raise
                raise SearchError(query, f"not a valid search ({reason})") from exc
        return [_hit(row, plan.substrings) for row in rows]


_TEXT_FIELDS = ("title", "summary", "content")
_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def _like_escaped(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _hit(row: Any, substrings: Sequence[str]) -> SearchHit:
    snippet = row.snip
    if snippet is None:  # found by scanning: mark the first word where it occurs
        word = substrings[0] if substrings else ""
        text = next(
            (t for t in (row.title, row.summary, row.content) if word.casefold() in t.casefold()),
            row.title,
        )
        snippet = excerpt(text, word)
    return SearchHit(row.feed, row.title, row.link, row.source, row.at, snippet)


def _archived(row: Any) -> ArchivedArticle:
    article = Article(
        feed=row.feed,
        feed_key=row.feed_key,
        cross_key=row.cross_key,
        title=row.title,
        link=row.link,
        summary=row.summary,
        content=row.content,
        published=row.published,
        source=row.source,
    )
    return ArchivedArticle(article, row.first_seen_at, row.at)
