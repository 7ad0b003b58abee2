"""Kill the real bot process at random points during delivery, restart it, count at the double.

Shared by tests/test_crash.py (a few rounds) and benchmarks/crash_delivery.py (many). The bot
runs as `python -m bot run` in its own process group with short backoff settings; the Slack
double runs in the calling process and answers every post after a short delay, so kills land
before, during and after posts, including after the double accepted a message but before the
bot read the answer (the unknown outcome that message metadata reconciles).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.store import Store
from bot.story import StoryGrouping, StoryPolicy, signature
from tests.factories import alert, article
from tests.slackdouble import TOKEN, SlackDouble

REPO = Path(__file__).resolve().parents[1]
EMPTY_FEED = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title>'
    "<link>https://quiet.example/</link><description>no items</description></channel></rss>"
)


@dataclass(frozen=True)
class CrashTally:
    alerts: int
    sent_once: int
    lost: int
    duplicated: int  # alerts that appeared more than once
    out_of_order: int  # channels whose messages are not in alert order
    kills: int
    found_after_crash: int  # posts the double accepted whose answer died with the bot: found
    history_lookups: int
    seconds: float
    misthreaded: int = 0  # with stories: replies outside their story's thread, wrong counts


STORY_COPIES = 3  # with stories: each story is queued as a first report and two copies


def story_text(story: int, copy: int) -> str:
    """Sixty made-up words for a story; each copy changes two of them (a near-duplicate)."""
    rng = random.Random(story)
    words = [f"w{rng.randrange(10**6)}" for _ in range(60)]
    words[copy * 7 % 60] = words[(copy * 13 + 5) % 60] = f"copy{copy}"
    return " ".join(words)


def prepare(workdir: Path, channels: int, per_channel: int, stories: bool = False) -> Path:
    """A config with fast pacing and short backoff, and a database of queued alerts; with
    `stories`, every `STORY_COPIES` alerts of a channel are copies of one story."""
    rules = workdir / "rules"
    rules.mkdir(parents=True, exist_ok=True)
    feed = workdir / "quiet.xml"
    feed.write_text(EMPTY_FEED, encoding="utf-8")
    config = workdir / "config.yaml"
    config.write_text(
        "\n".join(
            [
                f"rules: {rules}",
                f"database: {workdir / 'state.db'}",
                "slack:",
                '  default_channel: "#news-alerts"',
                "  rate: 20",
                "  burst: 5",
                "  retry_base: 0.2s",
                "workers: 1",
                "feeds:",
                "  - name: quiet",
                f"    url: {feed}",
                "    interval: 1h",
                "",
            ]
        ),
        encoding="utf-8",
    )
    store = Store.open(workdir / "state.db")
    now = datetime.now(UTC)
    pairs = []
    for n in range(per_channel):
        for c in range(channels):
            key = f"url:https://wire.example/{c}/{n}"
            title, text, source = f"crash {c} {n}", "", "Wire"
            if stories:
                story, copy = divmod(n, STORY_COPIES)
                text, source = story_text(c * 1000 + story, copy), f"Source {copy}"
            content = alert(channel=f"#crash-{c}", title=title, link=None, source=source)
            pairs.append((article(feed_key=key, cross_key=key, summary=text), content))
    grouping = None
    if stories:
        signatures = {a.feed_key: signature(a) for a, _ in pairs}
        grouping = StoryGrouping(StoryPolicy(), signatures)
    store.record_poll(
        "wire", "u", [a for a, _ in pairs], pairs, etag=None, last_modified=None, now=now,
        stories=grouping,
    )  # fmt: skip
    store.close()
    return config


def _start(config: Path, double: SlackDouble, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, SLACK_BOT_TOKEN=TOKEN, SLACK_API_URL=double.base_url)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(config), "run"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,  # its own process group: the worker dies with it
        )


def _kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def _pending(config: Path) -> int:
    store = Store.open(config.parent / "state.db")
    try:
        counts = store.alert_counts()
        return counts.pending + counts.parked
    finally:
        store.close()


def run_crashes(
    workdir: Path,
    double: SlackDouble,
    *,
    rounds: int,
    channels: int = 3,
    per_channel: int = 8,
    seed: int = 0,
    answer_delay: float = 0.1,
    settle: float = 60.0,
    stories: bool = False,
) -> CrashTally:
    """`rounds` times: start the bot, kill it (SIGKILL to its process group) at a random point,
    mostly soon after its first post. Then run it once more until nothing is pending (and,
    with `stories`, until every story's first message shows its count)."""
    rng = random.Random(seed)
    config = prepare(workdir, channels, per_channel, stories)
    log = workdir / "bot.log"
    double.delay(answer_delay, times=None)
    started = time.monotonic()
    kills = 0
    for _ in range(rounds):
        if _pending(config) == 0:
            break
        before = len(double.posts())
        process = _start(config, double, log)
        try:
            if rng.random() < 0.2:  # sometimes while it starts, before any post
                time.sleep(rng.uniform(0.0, 0.6))
            else:  # mostly once it posts: before, during or after the next answers
                deadline = time.monotonic() + 15
                while len(double.posts()) == before and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, answer_delay * 3))
        finally:
            _kill(process)
        kills += 1
    process = _start(config, double, log)
    try:
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and (
            _pending(config) or (stories and _misthreaded(double, channels, per_channel))
        ):
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            _kill(process)
    seen: Counter[int] = Counter()
    out_of_order = 0
    for c in range(channels):
        ids = []
        for message in double.messages(f"#crash-{c}"):
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            ids.append(int(payload["alert_id"]))
            seen[ids[-1]] += 1
        firsts = list(dict.fromkeys(ids))
        out_of_order += firsts != sorted(firsts)
    total = channels * per_channel
    return CrashTally(
        alerts=total,
        sent_once=sum(1 for n in range(1, total + 1) if seen[n] == 1),
        lost=sum(1 for n in range(1, total + 1) if seen[n] == 0),
        duplicated=sum(1 for n in range(1, total + 1) if seen[n] > 1),
        out_of_order=out_of_order,
        kills=kills,
        found_after_crash=log.read_text(errors="replace").count("(found ts="),
        history_lookups=sum(1 for r in double.requests if r.method == "conversations.history"),
        seconds=time.monotonic() - started,
        misthreaded=_misthreaded(double, channels, per_channel) if stories else 0,
    )


def _misthreaded(double: SlackDouble, channels: int, per_channel: int) -> int:
    """Replies outside their story's thread, and first messages not showing their count."""
    wrong = 0
    for c in range(channels):
        heads: dict[int, str] = {}  # story: ts of its first message
        for message in double.messages(f"#crash-{c}"):
            n = int(message["text"].split(f"crash {c} ")[1].split()[0])
            story, copy = divmod(n, STORY_COPIES)
            if copy == 0:
                heads[story] = message["ts"]
                expected = f"also reported by {min(STORY_COPIES, per_channel - n) - 1} other"
                wrong += expected not in message["text"]
            else:
                wrong += message.get("thread_ts") != heads.get(story)
    return wrong
