"""Soak: the real bot over 500 changing loopback feeds for 30 simulated minutes (case 36).

    .venv/bin/python benchmarks/soak.py [--feeds 500] [--items 50] [--channels 20]
        [--interval 5] [--minutes 30] [--new 2] [--hosts 20] [--workers 2] [--jumps 1]
        [--no-tracemalloc]

tests/soak.py does the work: feeds and the Slack double (with Slack's fair limit, 1/s per
channel after a burst of 3) in a child process, both on the bot's FixedClock; each feed gains
`--new` entries per interval, one entry in 20 matches one of `--channels` rules. The bot (App,
its worker pool, SQLite store, slack-sdk client) is driven one simulated second at a time as
the scheduler drives it. Then the clock jumps past the archive retention (1 day), `--jumps`
times, each followed by one more interval, to show what pruning keeps. Figures:

- each interval's wall time against the interval (the load the bot would carry in real time);
- the bot's Python heap (tracemalloc) and RSS after each interval, last third against first;
- Slack's view: messages per (channel, article), most posts to one channel in one simulated
  second and in one minute, the double's 429s;
- the database size and its growing tables per interval, and after the retention.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bot` and `tests` importable
    sys.path.insert(0, str(REPO))

from tests.soak import TABLES, Cycle, FeedPlan, Soak, run_soak, thirds  # noqa: E402


def cycle_line(cycle: Cycle, interval: float) -> str:
    rows = cycle.rows
    return (
        f"{cycle.index:>3} {cycle.polls:>6} {cycle.wall:7.2f} s {cycle.wall / interval:6.3f}"
        f" {cycle.worst_second:6.2f} s {cycle.traced_mb:7.2f} {cycle.rss_mb:7.1f}"
        f" {cycle.workers_rss_mb:7.1f} {cycle.db_bytes / 2**20:7.1f}"
        f" {cycle.table_bytes.get('archive', 0) / 2**20:7.1f}"
        f" {rows['archive']:>8} {rows['seen_articles']:>8} {rows['alerts']:>6}"
        f" {rows['story_members']:>6} {rows['held_alerts']:>5} {rows['pages']:>7}"
        f" {rows['freelist_pages']:>6}"
    )


def report(soak: Soak, wall: float) -> None:
    plan = soak.plan
    interval = plan.interval.total_seconds()
    print(
        f"{plan.feeds} feeds x {plan.items} entries, {plan.new_per_interval} new per feed per "
        f"{interval / 60:g} min, 1 in {plan.match_every} matching over {plan.channels} channels; "
        f"{soak.seconds / 60:g} simulated min in {wall:.0f} s of wall time"
    )
    print(
        "  # polls    wall  ÷intvl  worst s  heapMB   rssMB workrMB    dbMB  archMB  archive"
        "     seen alerts storym  held   pages  free"
    )
    for cycle in soak.cycles:
        print(cycle_line(cycle, interval))
    print(f"each time the clock jumps {soak.retention} (past the retention), one more interval:")
    for cycle in soak.pruned:
        print(cycle_line(cycle, interval))

    steady = soak.cycles[1:] or soak.cycles  # interval 0 holds the first poll of every feed
    print()
    print(
        f"cycle time: worst interval {max(c.wall for c in steady) / interval:.3f} of its "
        f"length after the first poll, {soak.cycles[0].wall / interval:.3f} with it; worst "
        f"simulated second {max(c.worst_second for c in soak.cycles):.2f} s of real time "
        f"({max((c.worst_second for c in soak.pruned), default=0):.2f} s after a jump, every "
        "feed due in one tick)"
    )
    print(
        f"polls per feed in {soak.seconds / 60:g} min: {soak.polls_per_feed[0]}-"
        f"{soak.polls_per_feed[1]} (interval {interval / 60:g} min with jitter)"
    )
    for name, values in (
        ("heap (tracemalloc)", [c.traced_mb for c in steady]),
        ("bot RSS", [c.rss_mb for c in steady]),
        ("workers' RSS", [c.workers_rss_mb for c in steady]),
    ):
        first, last = thirds(values)
        ratio = last / first if first else float("nan")
        print(
            f"memory, {name}: first third {first:.2f} MB, last third {last:.2f} MB "
            f"(last ÷ first {ratio:.3f}); peak {max(values):.2f} MB"
        )
    counts = soak.per_article.values()
    missing = soak.expected - set(soak.per_article)
    print(
        f"Slack: {len(soak.per_article)} (channel, article) pairs, messages per pair "
        f"min {min(counts, default=0)} max {max(counts, default=0)}; expected {len(soak.expected)}"
        f", missing {len(missing)}, unexpected {len(set(soak.per_article) - soak.expected)}, "
        f"other messages {soak.untitled}; alerts left unsent {soak.pending}"
    )
    print(
        f"pace: most posts to one channel in one simulated second {soak.most_in_one_second} "
        f"(burst 3), in one minute {soak.most_per_minute} (at most 3 + 60 at 1/s); "
        f"429s from the fair limiter {soak.limited}"
    )
    if not soak.pruned:
        return
    last, pruned = soak.cycles[-1], soak.pruned[-1]
    print("  table          rows: end of run, after the last jump;  KB in use: end, after")
    for table in TABLES:
        kb = [cycle.table_bytes.get(table, 0) // 1024 for cycle in (last, pruned)]
        print(
            f"  {table:<14} {last.rows[table]:>10} {pruned.rows[table]:>10}"
            f"          {kb[0]:>10} {kb[1]:>10}"
        )
    print(
        f"database: {last.db_bytes / 2**20:.1f} MB at the end of the run, "
        f"{pruned.db_bytes / 2**20:.1f} MB after the last jump and one more interval "
        f"({pruned.rows['freelist_pages']} free pages of {pruned.rows['pages']})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--interval", type=float, default=5.0, help="minutes")
    parser.add_argument("--minutes", type=float, default=30.0, help="simulated minutes")
    parser.add_argument("--new", type=int, default=2, help="new entries per feed per interval")
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jumps", type=int, default=1, help="jumps past the retention")
    parser.add_argument("--no-tracemalloc", action="store_true", help="RSS only (faster)")
    args = parser.parse_args()
    plan = FeedPlan(
        args.feeds,
        args.items,
        args.channels,
        timedelta(minutes=args.interval),
        new_per_interval=args.new,
    )
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        soak = run_soak(
            plan,
            Path(folder),
            duration=timedelta(minutes=args.minutes),
            hosts=args.hosts,
            workers=args.workers,
            trace_memory=not args.no_tracemalloc,
            jumps=args.jumps,
        )
    report(soak, time.perf_counter() - began)
    return 0


if __name__ == "__main__":
    sys.exit(main())
