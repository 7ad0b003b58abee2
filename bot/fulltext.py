"""Full text for feeds that give only teasers: each new article's page, fetched once, its main
text put in place of the feed's before matching."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping, Sequence, Set
from concurrent.futures import BrokenExecutor
from dataclasses import replace
from datetime import datetime, timedelta

from bot.dedup import within_backlog
from bot.discover import header_charset
from bot.errors import FetchError, PageDeferred
from bot.extract import main_text
from bot.fetch import Fetcher
from bot.models import Article, ArticlePage, Candidate, FeedConfig
from bot.runtime import Runtime
from bot.work import Processed, match_articles

log = logging.getLogger("newswatch.fulltext")

PAGE_TYPES = ("text/html", "application/xhtml+xml")
NO_MAIN_TEXT = "the page has no main text"

# Page fetches under way, per fetcher (one per running bot), by cross-feed key: two feeds
# polled at once that carry the same article share one fetch (None: its host deferred it).
_IN_FLIGHT: weakref.WeakKeyDictionary[Fetcher, dict[str, asyncio.Task[ArticlePage | None]]] = (
    weakref.WeakKeyDictionary()
)


def wanted(
    candidates: Sequence[Candidate],
    unseen: Set[str],
    *,
    first_poll: bool,
    backlog: timedelta | None,
    now: datetime,
) -> list[Article]:
    """The articles worth a page fetch: new ones with a link that may alert (on a feed's first
    poll, only those inside the backlog window), each cross-feed key once."""
    chosen: dict[str, Article] = {}
    for candidate in candidates:
        article = candidate.article
        if article.feed_key not in unseen or not article.link:
            continue
        if first_poll and not within_backlog(article, backlog, now):
            continue
        chosen.setdefault(article.cross_key, article)
    return list(chosen.values())


def newest_first(articles: Sequence[Article], cap: int) -> tuple[list[Article], list[Article]]:
    """The `cap` newest articles (undated ones last, feed order among equals), and the rest."""
    order = sorted(
        range(len(articles)),
        key=lambda i: (articles[i].published is None, -_stamp(articles[i]), i),
    )
    chosen = set(order[:cap])
    return (
        [a for i, a in enumerate(articles) if i in chosen],
        [a for i, a in enumerate(articles) if i not in chosen],
    )


def _stamp(article: Article) -> float:
    return article.published.timestamp() if article.published is not None else 0.0


def page_type_refused(headers: Mapping[str, str]) -> str | None:
    """Why a response is no web page (its Content-Type), or None when it may be one."""
    kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not kind or kind in PAGE_TYPES:
        return None
    return f"not a web page (Content-Type {kind})"


def page_input(body: bytes, headers: Mapping[str, str]) -> bytes | str:
    """The page as the extractor should read it: decoded by the charset the server declared,
    else bytes for the extractor to decode by the page's own `<meta>` or by guessing."""
    charset = header_charset(headers.get("content-type"))
    if charset:
        try:
            return body.decode(charset, errors="replace")
        except LookupError:
            pass
    return body


def with_text(article: Article, text: str | None) -> Article | None:
    """The article with the page's text as its content, if that text says more than the
    feed did; None when the feed's own text is as long (a paywall page, a teaser page)."""
    if not text:
        return None
    own = max(len(article.content.strip()), len(article.summary.strip()))
    if len(text) <= own:
        return None
    return replace(article, content=text)


async def fill_full_text(
    rt: Runtime,
    fetcher: Fetcher,
    feed: FeedConfig,
    processed: Processed,
    unseen: Set[str],
    *,
    first_poll: bool,
    now: datetime,
) -> Processed:
    """`processed` with the new articles' full text in place and their alerts matched again.

    Pages already fetched for the same article (by any feed) are taken from the store; each
    other page is fetched once, and its outcome, text or failure, is kept. A failure leaves
    the feed's own text: the article is matched as the feed gave it. At most
    `feed.full_text_max` pages are fetched per poll (the newest articles'); the others, and
    those whose host asked us to wait (Retry-After), keep the feed's text, are not counted
    as failures and are not fetched later: the article has been matched (and alerted) by then.
    """
    articles = wanted(
        processed.candidates, unseen, first_poll=first_poll, backlog=feed.backlog, now=now
    )
    if not articles:
        return processed
    cached = await rt.db(rt.store.cached_pages, [a.cross_key for a in articles])
    in_flight = _IN_FLIGHT.setdefault(fetcher, {})
    shared = {a.cross_key: in_flight[a.cross_key] for a in articles if a.cross_key in in_flight}
    to_fetch = [a for a in articles if a.cross_key not in cached and a.cross_key not in shared]
    to_fetch, over_cap = newest_first(to_fetch, feed.full_text_max)
    owned: dict[str, asyncio.Task[ArticlePage | None]] = {}
    for article in to_fetch:  # shared: another feed's poll is fetching it right now
        task = asyncio.create_task(_page(rt, fetcher, feed, article))
        owned[article.cross_key] = in_flight[article.cross_key] = task
    try:
        answers = list(await asyncio.gather(*owned.values()))
        fresh = [p for p in answers if p is not None]
        await rt.db(rt.store.record_pages, feed.name, fresh, now)
    finally:
        for key, task in owned.items():
            task.cancel()  # no-op once done; ends the fetches of a cancelled poll
            if in_flight.get(key) is task:
                del in_flight[key]
    borrowed = [p for p in [await _shared(task) for task in shared.values()] if p is not None]
    pages = {**cached, **{p.cross_key: p for p in (*fresh, *borrowed)}}
    log.info(
        "feed=%s full_text fetched=%d failed=%d stored=%d over_cap=%d deferred=%d",
        feed.name,
        len(fresh),
        sum(1 for p in fresh if p.text is None),
        len(cached),
        len(over_cap),
        len(answers) - len(fresh),
    )
    changed: dict[str, Article] = {}  # by feed key: a story twice in one feed gets it twice
    for candidate in processed.candidates:
        article = candidate.article
        page = pages.get(article.cross_key)
        if article.feed_key in unseen and page is not None:
            better = with_text(article, page.text)
            if better is not None:
                changed[article.feed_key] = better
    if not changed:
        return processed
    try:
        rematched, signatures = await rt.cpu_matching(match_articles, list(changed.values()))
    except BrokenExecutor:
        log.warning("feed=%s full text not matched: a worker process died", feed.name)
        return processed
    by_key = {c.article.feed_key: c for c in rematched}
    candidates = tuple(by_key.get(c.article.feed_key, c) for c in processed.candidates)
    return replace(
        processed, candidates=candidates, signatures={**processed.signatures, **signatures}
    )


async def _shared(task: asyncio.Task[ArticlePage | None]) -> ArticlePage | None:
    """Another poll's fetch of the same page; its poll records it."""
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.cancelled():
            raise  # this poll itself is being cancelled
        return ArticlePage("", None, "cancelled")


async def _page(
    rt: Runtime, fetcher: Fetcher, feed: FeedConfig, article: Article
) -> ArticlePage | None:
    """Fetch one article's page and extract its main text; every failure becomes the reason.
    None when the page's host asked us to wait: nothing was fetched, nothing failed."""
    assert article.link is not None
    try:
        fetched = await fetcher.fetch_page(feed.name, article.link)
        refused = page_type_refused(fetched.headers)
        if refused is not None:
            return ArticlePage(article.cross_key, None, refused)
        text = await rt.cpu(main_text, page_input(fetched.body, fetched.headers), fetched.url)
    except PageDeferred as exc:
        log.info("feed=%s page %s deferred: %s", feed.name, article.link, exc.reason)
        return None
    except FetchError as exc:
        log.info("feed=%s page %s not fetched: %s", feed.name, article.link, exc.reason)
        return ArticlePage(article.cross_key, None, exc.reason)
    except BrokenExecutor:
        return ArticlePage(article.cross_key, None, "the worker process extracting it died")
    if text is None:
        return ArticlePage(article.cross_key, None, NO_MAIN_TEXT)
    return ArticlePage(article.cross_key, text)
