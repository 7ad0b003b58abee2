"""Crash delivery: SIGKILL the bot at random points many times; count alerts sent, lost, duplicated.

    .venv/bin/python benchmarks/crash_delivery.py [--runs 5] [--rounds 30] [--seed 0]

Each run queues 3 channels x 30 alerts, then starts `python -m bot run` against a loopback Slack
double, kills it (process group, SIGKILL) at a random point up to `--rounds` times, restarts it,
and finally lets it finish. The baseline runs the same kills with the double refusing
`conversations.history` (no history scope: the bot cannot reconcile and re-posts on an unknown
outcome); the second line is the bot as shipped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `tests` importable
    sys.path.insert(0, str(REPO))

from tests.crash import CrashTally, run_crashes  # noqa: E402
from tests.slackdouble import SlackDouble  # noqa: E402


def batch(runs: int, rounds: int, seed: int, history: bool) -> dict[str, float]:
    total: dict[str, float] = {f.name: 0 for f in fields(CrashTally)}
    for run in range(runs):
        double = SlackDouble()
        if not history:
            double.history_error = "missing_scope"
        double.start()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                tally = run_crashes(
                    Path(tmp), double, rounds=rounds, per_channel=30, seed=seed + run
                )
        finally:
            double.stop()
        for f in fields(CrashTally):
            total[f.name] += getattr(tally, f.name)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=30, help="kills per run (at most)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = [
        ("without history (baseline)", batch(args.runs, args.rounds, args.seed, history=False)),
        ("with reconciliation", batch(args.runs, args.rounds, args.seed, history=True)),
    ]
    print(
        f"{'':28} {'alerts':>6} {'once':>6} {'lost':>5} {'dup':>5} {'order':>5} "
        f"{'kills':>6} {'found':>6} {'secs':>6}"
    )
    for name, t in rows:
        print(
            f"{name:28} {t['alerts']:6.0f} {t['sent_once']:6.0f} {t['lost']:5.0f} "
            f"{t['duplicated']:5.0f} {t['out_of_order']:5.0f} {t['kills']:6.0f} "
            f"{t['found_after_crash']:6.0f} {t['seconds']:6.1f}"
        )
    base, ours = rows[0][1], rows[1][1]
    print(
        f"duplicates: {ours['duplicated']:.0f} vs {base['duplicated']:.0f} without "
        f"reconciliation; lost: {ours['lost']:.0f} vs {base['lost']:.0f}"
    )
    return 1 if ours["lost"] or ours["duplicated"] else 0


if __name__ == "__main__":
    sys.exit(main())
