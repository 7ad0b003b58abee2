"""A soak run: the real bot over many changing loopback feeds, through simulated time.

The feeds (tests/feedserver.py) and the Slack double (tests/slackdouble.py, with Slack's fair
rate limit) run in a child process, so the bot's memory is its own. Both follow the bot's
FixedClock: a feed grows new entries as simulated time passes, and the double stamps each
message with the simulated time. The bot is driven as the scheduler drives it, one simulated
second at a time: tick (start the polls that are due), wait for them, deliver, check the rule
files every two seconds. The clock stands still while a second's work runs, so that work's
wall time is what the bot needs for that second of real time.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import hashlib
import multiprocessing
import os
import random
import re
import sqlite3
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

from bot.app import App
from bot.clock import FixedClock
from bot.config import load_config
from bot.scheduler import RULE_CHECK_INTERVAL, START_SPREAD
from tests.e2e import Item, message_text, rss
from tests.feedserver import FeedServer, Handler, Route, feed_route
from tests.slackdouble import TOKEN, SlackDouble

START = datetime(2025, 7, 31, 0, 0, tzinfo=UTC)
SYLLABLES = [c + v for c in "bdfghklmnprstvz" for v in "aeiou"]
TITLE = re.compile(r"Item (\d+)-(\d+)\b")
TABLES = (
    "archive",
    "seen_articles",
    "alerts",
    "story_members",
    "stories",
    "held_alerts",
    "rule_posts",
    "article_pages",
)


@dataclass(frozen=True)
class FeedPlan:
    """What the feeds hold at any simulated moment: `items` entries each, the newest first;
    `new_per_interval` new entries per feed per `interval`, the feeds out of step; one entry in
    `match_every` carries one channel's marker word."""

    feeds: int
    items: int
    channels: int
    interval: timedelta
    new_per_interval: int = 2
    match_every: int = 20  # 5 %

    def count(self, feed: int, at: datetime) -> int:
        """How many entries `feed` has published by `at` (the last `items` are in it)."""
        rate = self.new_per_interval / self.interval.total_seconds()
        phase = (feed * 37 % 100) / 100 / rate  # feeds grow at different moments
        return self.items + int(max((at - START).total_seconds() + phase, 0.0) * rate)

    def channel_of(self, feed: int, entry: int) -> int | None:
        """The channel whose rule `entry` of `feed` matches, or None (most entries)."""
        digest = int.from_bytes(hashlib.blake2b(f"{feed}:{entry}".encode(), digest_size=8).digest())
        if digest % self.match_every:
            return None
        return digest // self.match_every % self.channels

    def item(self, feed: int, entry: int) -> Item:
        rng = random.Random(feed * 1_000_003 + entry)
        words = [rng.choice(SYLLABLES) + rng.choice(SYLLABLES) for _ in range(48)]
        channel = self.channel_of(feed, entry)
        marker = f" {marker_word(channel)}" if channel is not None else ""
        rate = self.new_per_interval / self.interval.total_seconds()
        published = START + timedelta(seconds=(entry - self.items) / rate)
        title = f"Item {feed}-{entry} " + " ".join(words[:8]) + marker
        return Item(f"soak-{feed}-{entry}", title, " ".join(words[8:]) + ".", published)

    def window(self, feed: int, at: datetime) -> range:
        end = self.count(feed, at)
        return range(end - self.items, end)


def marker_word(channel: int) -> str:
    return "soakmark" + chr(97 + channel // 26) + chr(97 + channel % 26)


def channel_name(channel: int) -> str:
    return f"#soak-{channel:02d}"


# -- the child process: feeds and Slack


class _Feeds:
    """Serves each feed's current window (one body per window, its ETag by content)."""

    def __init__(self, plan: FeedPlan, now: Synchronized[float]) -> None:
        self.plan = plan
        self.now = now
        self.lock = threading.Lock()
        self.bodies: dict[int, tuple[int, str, Route, list[tuple[int, int]]]] = {}  # feed: window
        self.served: set[tuple[int, int]] = set()  # matching entries sent in a 200
        self.requests: Counter[int] = Counter()  # per feed: one a poll

    def route(self, feed: int, handler: Handler) -> None:
        window = self.plan.window(feed, datetime.fromtimestamp(self.now.value, UTC))
        with self.lock:
            self.requests[feed] += 1
            cached = self.bodies.get(feed)
            if cached is None or cached[0] != window.stop:
                items = [self.plan.item(feed, n) for n in reversed(window)]
                data = rss(items, title=f"Soak feed {feed}").encode()
                etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
                matching = [(feed, n) for n in window if self.plan.channel_of(feed, n) is not None]
                cached = (
                    window.stop,
                    etag,
                    feed_route(data, etag=etag, last_modified=None),
                    matching,
                )
                self.bodies[feed] = cached
            if handler.headers.get("If-None-Match") != cached[1]:  # answered 200
                self.served.update(cached[3])
        cached[2](handler)


def serve(
    plan: FeedPlan, hosts: int, rate: float, burst: int, now: Synchronized[float], pipe: Connection
) -> None:
    """In a child process: feed servers and the Slack double until told to stop."""
    feeds = _Feeds(plan, now)
    servers = [FeedServer() for _ in range(hosts)]
    for server in servers:
        server.__enter__()
    for feed in range(plan.feeds):
        servers[feed % hosts].add_route(f"/feed{feed}.xml", functools.partial(feeds.route, feed))
    slack = SlackDouble()
    slack.clock = lambda: now.value
    slack.rate_limit_fair(rate, burst)
    slack.start()
    urls = [f"http://127.0.0.1:{servers[f % hosts].port}/feed{f}.xml" for f in range(plan.feeds)]
    pipe.send((urls, slack.base_url))
    while (command := pipe.recv()) != "stop":
        assert command == "report"
        posts = [(slack.channel_id(str(r.body.get("channel"))), r.at) for r in slack.posts()]
        messages = [
            (cid, message_text(m))
            for cid in sorted({c for c, _ in posts})
            for m in slack.messages(cid)
        ]
        with feeds.lock:
            served = sorted(feeds.served)
            requests = [feeds.requests[f] for f in range(plan.feeds)]
        pipe.send((messages, posts, slack.limited, served, requests))
    slack.stop()
    for server in servers:
        server.close()


# -- the bot's side


class SharedClock(FixedClock):
    """A FixedClock whose time the child process (feeds, Slack double) reads too."""

    def __init__(self, start: datetime, shared: Synchronized[float]) -> None:
        super().__init__(start)
        self.shared = shared
        shared.value = start.timestamp()

    def set(self, when: datetime) -> None:
        super().set(when)
        self.shared.value = when.timestamp()

    def advance(self, **kwargs: float) -> None:
        super().advance(**kwargs)
        self.shared.value = self.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        self.shared.value = self.now().timestamp()


@dataclass(frozen=True)
class Cycle:
    """One interval of simulated time, measured at its end."""

    index: int
    polls: int
    wall: float  # seconds of real time the bot worked in this interval
    worst_second: float  # the longest simulated second, in real seconds
    traced_mb: float  # Python heap of the bot process (tracemalloc), after a collection
    rss_mb: float  # resident set of the bot process
    workers_rss_mb: float  # resident sets of its parsing workers, together
    db_bytes: int  # database file and its WAL
    rows: dict[str, int]
    table_bytes: dict[str, int]  # pages in use per table, its indexes (and full-text index) in


@dataclass
class Soak:
    """What a soak run saw: the cycles, Slack's view, the database after pruning."""

    plan: FeedPlan
    seconds: int
    cycles: list[Cycle] = field(default_factory=list)
    per_article: Counter[tuple[str, int, int]] = field(default_factory=Counter)
    expected: set[tuple[str, int, int]] = field(default_factory=set)
    untitled: int = 0  # messages that name no soak item (notices): must be none
    most_in_one_second: int = 0  # posts to one channel within one simulated second
    most_per_minute: int = 0  # posts to one channel within one simulated minute (sliding)
    limited: int = 0  # posts the double's fair limiter (1/s after a burst) refused
    pending: int = 0  # alerts not sent at the end
    polls_per_feed: tuple[int, int] = (0, 0)  # fewest, most, in the simulated period
    pruned: list[Cycle] = field(default_factory=list)  # an interval after each jump past it
    retention: timedelta = timedelta(days=1)


def write_config(folder: Path, urls: list[str], plan: FeedPlan, workers: int) -> Path:
    rules = folder / "rules"
    rules.mkdir()
    for channel in range(plan.channels):
        (rules / f"soak-{channel:02d}.yaml").write_text(
            f'name: soak-{channel:02d}\nchannel: "{channel_name(channel)}"\n'
            f"query: {marker_word(channel)}\n",
            encoding="utf-8",
        )
    minutes = plan.interval.total_seconds() / 60
    lines = [
        f"rules: {rules}",
        f"database: {folder / 'state.db'}",
        "slack:",
        '  default_channel: "#soak-default"',
        f"workers: {workers}",
        "fetch:",
        "  allow_private: [127.0.0.0/8]",
        "archive:",
        "  retention: 1d",
        "stories:",  # shorter than the retention: a jump past it is past the window too
        "  window: 12h",
        "feeds:",
    ]
    for index, url in enumerate(urls):
        lines += [
            f"  - name: feed{index}",
            f"    url: {url}",
            f"    interval: {minutes:g}m",
            "    backlog: all",
        ]
    path = folder / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rss_mb(pid: int | str = "self") -> float:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _workers_rss_mb(app: App) -> float:
    processes = getattr(app.rt.workers, "_processes", None) or {}
    return sum(_rss_mb(pid) for pid in processes)


def _db_figures(database: Path) -> tuple[int, dict[str, int], dict[str, int]]:
    size = sum(p.stat().st_size for p in (database, Path(f"{database}-wal")) if p.exists())
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        rows["freelist_pages"] = conn.execute("PRAGMA freelist_count").fetchone()[0]
        rows["pages"] = conn.execute("PRAGMA page_count").fetchone()[0]
        owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_schema").fetchall())
        table_bytes: Counter[str] = Counter()
        for name, used in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            table = owner.get(name, name)
            table_bytes["archive" if table.startswith("archive") else table] += used
    return size, rows, dict(table_bytes)


async def _run_seconds(app: App, clock: FixedClock, seconds: int) -> tuple[float, float, int]:
    """Drive the bot `seconds` simulated seconds as the scheduler does; wall, worst, polls."""
    wall = worst = 0.0
    polls = 0
    check_every = int(RULE_CHECK_INTERVAL.total_seconds())
    for second in range(seconds):
        began = time.perf_counter()
        polls += await app.tick()
        await app.settle()
        await app.deliver()
        if second % check_every == 0:
            await app.check_rules()
        spent = time.perf_counter() - began
        wall += spent
        worst = max(worst, spent)
        clock.advance(seconds=1)
    return wall, worst, polls


async def _measure(app: App, database: Path, index: int, run: tuple[float, float, int]) -> Cycle:
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] / 2**20 if tracemalloc.is_tracing() else 0.0
    size, rows, table_bytes = await app.rt.db(_db_figures, database)
    wall, worst, polls = run
    return Cycle(
        index, polls, wall, worst, traced, _rss_mb(), _workers_rss_mb(app), size, rows, table_bytes
    )


async def drive(
    plan: FeedPlan,
    folder: Path,
    urls: list[str],
    slack_url: str,
    shared: Synchronized[float],
    *,
    duration: timedelta,
    workers: int,
    start_spread: timedelta = START_SPREAD,
    period_end: Callable[[Soak], None] = lambda soak: None,
    jumps: int = 1,
) -> tuple[Soak, App]:
    """Run the bot through `duration` of simulated time, then `jumps` times past the archive
    retention, for one more interval each time."""
    config = load_config(write_config(folder, urls, plan, workers))
    clock = SharedClock(START, shared)
    env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": slack_url}
    app = App.create(config, clock=clock, env=env)
    app.rng = random.Random(36)
    interval = int(plan.interval.total_seconds())
    soak = Soak(plan, int(duration.total_seconds()), retention=config.archive_retention)
    await app.load_rules()
    await app.plan(start_spread)
    for index in range(soak.seconds // interval):
        run = await _run_seconds(app, clock, interval)
        soak.cycles.append(await _measure(app, config.database, index, run))
    await _finish_delivery(app, clock)
    period_end(soak)
    for jump in range(jumps):  # every article is past the retention, each time
        clock.advance(seconds=soak.retention.total_seconds())
        run = await _run_seconds(app, clock, interval)
        await _finish_delivery(app, clock)
        soak.pruned.append(await _measure(app, config.database, len(soak.cycles) + jump, run))
    soak.pending = await app.rt.db(_pending, config.database)
    return soak, app


async def _finish_delivery(app: App, clock: FixedClock) -> None:
    """Deliver what is still paced, a simulated second at a time (no polls start)."""
    for _ in range(3600):
        report = await app.deliver()
        if report.paced_until is None and not report.failed:
            return
        clock.advance(seconds=1)


def _pending(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        query = "SELECT count(*) FROM alerts WHERE status != 'sent'"
        found: int = conn.execute(query).fetchone()[0]
    return found


def judge_slack(
    soak: Soak,
    messages: list[tuple[str, str]],
    posts: list[tuple[str, float]],
    limited: int,
    served: list[tuple[int, int]],
) -> None:
    """Fill in Slack's view: messages per (channel, article), the pace, what was expected."""
    for channel_id, text in messages:
        found = TITLE.search(text)
        if found is None:
            soak.untitled += 1
            continue
        soak.per_article[(channel_id, int(found[1]), int(found[2]))] += 1
    for feed, entry in served:
        channel = soak.plan.channel_of(feed, entry)
        assert channel is not None
        soak.expected.add((SlackDouble.channel_id(channel_name(channel)), feed, entry))
    by_channel: dict[str, list[float]] = {}
    for channel_id, at in posts:
        by_channel.setdefault(channel_id, []).append(at)
    for times in by_channel.values():
        times.sort()
        for i, at in enumerate(times):
            in_second = sum(1 for t in times[i:] if t - at < 1.0)
            in_minute = sum(1 for t in times[i:] if t - at < 60.0)
            soak.most_in_one_second = max(soak.most_in_one_second, in_second)
            soak.most_per_minute = max(soak.most_per_minute, in_minute)
    soak.limited = limited


def run_soak(
    plan: FeedPlan,
    folder: Path,
    *,
    duration: timedelta,
    hosts: int,
    workers: int,
    trace_memory: bool = True,
    start_spread: timedelta = START_SPREAD,
    jumps: int = 1,
) -> Soak:
    """The whole run: start the child process, drive the bot, collect Slack's view."""
    context = multiprocessing.get_context("spawn")
    shared: Synchronized[float] = context.Value("d", START.timestamp())  # type: ignore[assignment]
    ours, theirs = context.Pipe()
    child = context.Process(target=serve, args=(plan, hosts, 1.0, 3, shared, theirs))
    child.start()
    try:
        if not ours.poll(60):
            raise RuntimeError("the feed servers and the Slack double did not start")
        urls, slack_url = ours.recv()

        def period_end(soak: Soak) -> None:  # each feed's polls in the simulated period
            ours.send("report")
            requests = ours.recv()[-1]
            soak.polls_per_feed = (min(requests), max(requests))  # one request a poll

        async def main() -> Soak:
            soak, app = await drive(
                plan,
                folder,
                urls,
                slack_url,
                shared,
                duration=duration,
                workers=workers,
                start_spread=start_spread,
                period_end=period_end,
                jumps=jumps,
            )
            await app.close()
            return soak

        if trace_memory:
            tracemalloc.start()
        try:
            soak = asyncio.run(main())
        finally:
            if trace_memory:
                tracemalloc.stop()
        ours.send("report")
        messages, posts, limited, served, _ = ours.recv()
        judge_slack(soak, messages, posts, limited, served)
    finally:
        ours.send("stop")
        child.join(30)
        if child.is_alive():
            child.kill()
    return soak


def thirds(values: list[float]) -> tuple[float, float]:
    """The mean of the first and of the last third of `values` (at least one value each)."""
    n = max(1, len(values) // 3)
    return sum(values[:n]) / n, sum(values[-n:]) / n
