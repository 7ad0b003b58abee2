"""What keeping seen keys bounded costs: marking the keys a poll lists, and the hourly prune.

    .venv/bin/python benchmarks/bench_retention.py [--feeds 50] [--items 50] [--polls 20]

Each feed lists `--items` articles and gains two per poll. The same polls are recorded twice in
the same process, into two databases: without `present` (the baseline: seen keys only
inserted) and with it (every listed key marked as last listed now, one batched UPDATE); CPU
per `record_poll` and the ratio. Then one prune pass (`prune_kept`) over the second database
after a jump past the retention, and how many keys it kept and removed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bot` importable
    sys.path.insert(0, str(REPO))

from bot.models import Article  # noqa: E402
from bot.store import Store  # noqa: E402

START = datetime(2025, 7, 31, tzinfo=UTC)


def article(feed: int, entry: int) -> Article:
    return Article(
        f"feed{feed}", f"k{entry}", f"url:{feed}/{entry}", f"Title {entry}", None, "", "", None, "S"
    )


def record(store: Store, args: argparse.Namespace, mark: bool) -> float:
    """CPU seconds per record_poll over the steady polls (after each feed's first)."""
    for feed in range(args.feeds):
        first = [article(feed, e) for e in range(args.items)]
        store.record_poll(f"feed{feed}", "u", first, [], etag=None, last_modified=None, now=START)
    cpu = 0.0
    for poll in range(1, args.polls + 1):
        now = START + timedelta(minutes=poll)
        for feed in range(args.feeds):
            end = args.items + 2 * poll
            new = [article(feed, end - 2), article(feed, end - 1)]
            listed = [f"k{e}" for e in range(end - args.items, end)]
            began = time.process_time()
            store.record_poll(
                f"feed{feed}",
                "u",
                new,
                [],
                etag=None,
                last_modified=None,
                now=now,
                present=listed if mark else (),
            )
            cpu += time.process_time() - began
    return cpu / (args.polls * args.feeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=50)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--polls", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        figures: dict[bool, float] = {}
        for run, mark in enumerate((False, True, False, True)):  # the first two warm up
            store = Store.open(Path(folder) / f"run{run}.db")
            try:
                figures[mark] = record(store, args, mark)
                if run < 3:
                    continue
                now = START + timedelta(days=2, minutes=args.polls)
                began = time.process_time()
                pruned = store.prune_kept(now, timedelta(days=1))
                cpu = time.process_time() - began
                end = args.items + 2 * args.polls
                listed = [f"k{e}" for e in range(end - args.items, end)]
                lost = sum(len(store.unseen(f"feed{f}", listed)) for f in range(args.feeds))
            finally:
                store.close()
        without, with_marks = figures[False], figures[True]
        print(
            f"record_poll, 2 new of {args.items} listed: {without * 1000:.3f} ms CPU without "
            f"marking, {with_marks * 1000:.3f} ms with; ratio {with_marks / without:.2f}"
        )
        print(
            f"prune pass a day past the retention: {pruned.seen} keys gone from their feeds "
            f"removed, {lost} listed keys lost (must be 0), {cpu * 1000:.1f} ms CPU"
        )


if __name__ == "__main__":
    main()
