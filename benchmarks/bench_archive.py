"""What the archive costs a poll, and how fast backtest and search read it back.

    .venv/bin/python benchmarks/bench_archive.py [--copies 10]

Real Korean feeds from the shared corpus (read in place) are parsed, normalized and matched by
the function a poll's worker runs (`process_body`, the shipped rules), then written as a poll
writes them (`Store.record_poll`, archive included), `--copies` times under new keys, on a
fresh SQLite file. Beside it, in the same run: the archive's own insert (`archive_articles`,
FTS5 triggers included) into other fresh files, poll by poll: as shipped, with FTS5's default
automerge (as before migration 9; the ratio of the two is printed) and without the index.
Then a backtest of a shipped rule over the whole archive and a few searches. Per-article
figures are per new article. Times are CPU seconds of this one process (SQLite runs in it), so
other load on the machine does not blur them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bot` and `tests` importable
    sys.path.insert(0, str(REPO))

from bot.backtest import match_archive  # noqa: E402
from bot.models import Article  # noqa: E402
from bot.rules import load_library  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.store.archive import archive_articles  # noqa: E402
from bot.work import process_body  # noqa: E402
from tests.shared import CORPUS  # noqa: E402

NOW = datetime(2022, 8, 2, tzinfo=UTC)
FEEDS = ("kr-merged-politics-2022-07-31.xml", "kr-merged-international-2022-07-30.xml")
QUERIES = ("주한미군", "주한미군 사드", "사드", '"troop" OR 전작권')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10, help="times each feed is re-keyed")
    args = parser.parse_args()
    folder = CORPUS / "feeds"
    if not folder.is_dir():
        sys.exit(f"the shared corpus is not available: {folder}")
    ruleset = load_library(REPO / "rules", REPO / "aliases", "#news-alerts")
    bodies = [(name, (folder / name).read_bytes()) for name in FEEDS]

    started = time.process_time()
    polls: list[tuple[str, list[Article]]] = []
    for copy in range(args.copies):
        for name, body in bodies:
            processed = process_body(
                body, {}, name, f"https://corpus.example/{name}", ruleset.rules, NOW
            )
            polls.append((name, [rekeyed(c.article, copy) for c in processed.candidates]))
    worker_cpu = time.process_time() - started
    articles = sum(len(a) for _, a in polls)

    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "poll.db")
        started = time.process_time()
        for feed, batch in polls:
            store.record_poll(
                feed, "https://corpus.example/", batch, [], etag=None, last_modified=None, now=NOW
            )
        record_wall = time.process_time() - started

        # The archive insert alone, each way twice, interleaved (the best of two counts): as
        # shipped; with FTS5's default automerge (4), as before migration 9; without the FTS5
        # index at all (its triggers dropped), which shows what the index itself costs.
        ways = ("shipped", "automerge 4", "no index")
        best = dict.fromkeys(ways, float("inf"))
        for round_ in range(2):
            for way in ways:
                seconds = archive_alone(Path(tmp) / f"{way}-{round_}.db", polls, way)
                best[way] = min(best[way], seconds)
        archive_wall = best["shipped"]

        rule = ruleset.by_name("usfk-troop-levels")
        started = time.process_time()
        archived = ((a.article, a.at) for a in store.archived(NOW - timedelta(days=400), NOW))
        matched, scanned = match_archive(rule, archived)
        backtest_wall = time.process_time() - started

        searches = []
        for query in QUERIES:
            started = time.process_time()
            hits = store.search_archive(query, limit=20)
            searches.append((query, len(hits), time.process_time() - started))
        size = (Path(tmp) / "poll.db").stat().st_size
        store.close()

    per = 1000 / articles
    print(f"{articles} new articles in {len(polls)} polls of {len(FEEDS)} real Korean feeds")
    print(f"parse+normalize+match (process_body, CPU): {worker_cpu * per:.3f} ms/article")
    print(f"record_poll with the archive (CPU):     {record_wall * per:.3f} ms/article")
    print(f"  of which the archive insert alone:     {archive_wall * per:.3f} ms/article")
    print(
        f"archive insert alone, FTS5 automerge 4 (before): {best['automerge 4'] * per:.3f} "
        f"ms/article; shipped ÷ before: {best['shipped'] / best['automerge 4']:.2f}"
    )
    print(
        f"archive insert alone, no FTS5 index:           {best['no index'] * per:.3f} "
        f"ms/article; the index is {1 - best['no index'] / archive_wall:.0%} of the insert"
    )
    total = worker_cpu + record_wall
    print(
        f"archive ÷ (process_body + record_poll): {archive_wall / total:.0%}; "
        f"archive ÷ record_poll: {archive_wall / record_wall:.0%}"
    )
    print(f"database size: {size / articles / 1024:.1f} KiB/article (archive, index and the rest)")
    print(
        f"backtest usfk-troop-levels: {scanned} articles in {backtest_wall:.2f} s "
        f"({scanned / backtest_wall:,.0f} articles/s), {len(matched)} matched"
    )
    for query, count, wall in searches:
        print(f"search {query!r}: {count} hits in {wall * 1000:.1f} ms")


def archive_alone(path: Path, polls: list[tuple[str, list[Article]]], way: str) -> float:
    """CPU seconds to archive every poll's articles, a transaction per poll, into a fresh file."""
    store = Store.open(path)
    with store.engine.begin() as conn:
        if way == "automerge 4":
            conn.exec_driver_sql(
                "INSERT INTO archive_fts(archive_fts, rank) VALUES ('automerge', 4)"
            )
        elif way == "no index":
            conn.exec_driver_sql("DROP TRIGGER archive_fts_insert")
    started = time.process_time()
    for feed, batch in polls:
        with store.engine.begin() as conn:
            archive_articles(conn, store._insert, feed, batch, NOW)
    seconds = time.process_time() - started
    store.close()
    return seconds


def rekeyed(article: Article, copy: int) -> Article:
    """The same article under keys of its own, as if a new one."""
    return replace(
        article,
        feed_key=f"{article.feed_key}#{copy}",
        cross_key=f"{article.cross_key}#{copy}",
    )


if __name__ == "__main__":
    main()
