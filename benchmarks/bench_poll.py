"""Polling 1,000 feeds on loopback: a first poll and a steady-state (all 304) poll, timed.

    .venv/bin/python benchmarks/bench_poll.py [--feeds 1000] [--items 50] [--hosts 20]

The feeds are served by tests/feedserver.py servers (one per "host", each on its own port) in
a separate process, so the figures are the bot's own; like most servers between two polls ten
minutes apart, they close each connection after answering. The bot runs as `run --once` does: the
real App on a fresh SQLite database, its worker pool, the fetch limits from the defaults.
Beside each pass, a straightforward loop measured in the same run: one feed after another,
httpx GET then feedparser (first poll), or a conditional GET answered 304 (steady state).
CPU seconds count the bot process and its parsing workers; peak memory is the largest RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bot` and `tests` importable
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bot.app import App  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.rules import load_library  # noqa: E402
from bot.work import process_body  # noqa: E402
from tests.e2e import Item, rss  # noqa: E402
from tests.feedserver import FeedServer  # noqa: E402


@dataclass(frozen=True)
class Figures:
    wall: float
    cpu: float  # this process and its reaped children (the parsing workers)
    workers_cpu: float  # the children's share
    peak_mb: float


def feed_body(feed: int, items: int) -> str:
    now = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)
    return rss(
        [
            Item(
                f"feed{feed}-item{i}",
                f"Regional weather report {i} from station {feed}",
                "Light rain in the morning, clearing later; winds from the north-west. " * 4,
                now - timedelta(minutes=i),
            )
            for i in range(items)
        ],
        title=f"Station {feed}",
    )


def serve(hosts: int, feeds: int, items: int, pipe: Connection) -> None:
    """In a child process: start the servers, send their ports, serve until told to stop."""
    servers = [FeedServer() for _ in range(hosts)]
    for server in servers:
        server.__enter__()
    for feed in range(feeds):
        servers[feed % hosts].add(f"/feed{feed}.xml", feed_body(feed, items))
    pipe.send([server.port for server in servers])
    pipe.recv()
    for server in servers:
        server.close()


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds of this process, and of its children reaped so far (the parsing workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # kilobytes on Linux


@contextmanager
def measured(into: list[Figures]) -> Iterator[None]:
    wall, (own, children) = time.perf_counter(), cpu_seconds()
    yield
    own_after, children_after = cpu_seconds()
    workers = children_after - children
    total = own_after - own + workers
    into.append(Figures(time.perf_counter() - wall, total, workers, peak_mb()))


def write_config(folder: Path, urls: list[str]) -> Path:
    lines = [
        f"rules: {REPO / 'rules'}",
        f"aliases: {REPO / 'aliases'}",  # the shipped rules use them
        f"database: {folder / 'state.db'}",
        "slack:",
        '  default_channel: "#news-alerts"',
        "fetch:",
        "  allow_private: [127.0.0.0/8]",
        "feeds:",
    ]
    for index, url in enumerate(urls):
        lines += [f"  - name: feed{index}", f"    url: {url}", "    interval: 10m"]
    path = folder / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def bot_passes(config: Path, bot: list[Figures]) -> list[dict[str, int]]:
    """A running bot's first pass over every feed, then a second (steady-state) pass.

    Start-up (reading the config, opening the store) is outside the timings. The parsing
    workers are shut down at the end of the first pass, so that their CPU time is counted
    (a child's CPU time is known once it is reaped); the steady-state pass needs none.
    """
    app = App.create(load_config(config), env={})
    counts: list[dict[str, int]] = []
    try:
        for _ in range(2):
            with measured(bot):
                outcomes = await app.run_once()
                app.rt.workers.shutdown(wait=True)
            app.rt.workers = app.rt.make_workers()
            tally: dict[str, int] = {}
            for outcome in outcomes:
                tally[outcome.status] = tally.get(outcome.status, 0) + 1
            counts.append(tally)
    finally:
        await app.close()
    return counts


def sequential(urls: list[str], etags: dict[str, str]) -> int:
    """The straightforward loop: one feed after another, fetched, then parsed, normalized and
    matched by the same function the bot's workers run; 304 when we have its ETag."""
    rules = load_library(REPO / "rules", REPO / "aliases", "#news-alerts").index
    entries = 0
    with httpx.Client(timeout=30) as client:
        for index, url in enumerate(urls):
            headers = {"If-None-Match": etags[url]} if url in etags else {}
            response = client.get(url, headers=headers)
            if response.status_code == 304:
                continue
            etags[url] = response.headers.get("etag", "")
            now = datetime.now(UTC)
            found = process_body(
                response.content, dict(response.headers), f"feed{index}", url, rules, now
            )
            entries += len(found.candidates)
    return entries


def line(name: str, ours: Figures, base: Figures) -> str:
    return (
        f"{name:<19} wall {ours.wall:6.2f} s  cpu {ours.cpu:6.2f} s"
        f" (workers {ours.workers_cpu:5.2f})  peak {ours.peak_mb:4.0f} MB"
        f"  | sequential wall {base.wall:6.2f} s  cpu {base.cpu:6.2f} s"
        f"  | wall ratio {base.wall / ours.wall:5.1f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=20)
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    ours, near = context.Pipe()
    server = context.Process(target=serve, args=(args.hosts, args.feeds, args.items, near))
    server.start()
    ports: list[int] = ours.recv()
    urls = [f"http://127.0.0.1:{ports[i % args.hosts]}/feed{i}.xml" for i in range(args.feeds)]
    bot: list[Figures] = []
    base: list[Figures] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = write_config(Path(folder), urls)
            first, steady = asyncio.run(bot_passes(config, bot))
        etags: dict[str, str] = {}
        with measured(base):
            parsed = sequential(urls, etags)
        with measured(base):
            sequential(urls, etags)
    finally:
        ours.send("stop")
        server.join()

    print(f"{args.feeds} feeds x {args.items} items on {args.hosts} loopback servers")
    print(f"first poll outcomes: {first}; steady state: {steady}; sequential parsed {parsed}")
    print(line("first poll", bot[0], base[0]))
    print(line("steady state (304)", bot[1], base[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
