"""Wires config, rules, store, fetcher, worker pool and sender into a running bot."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import sys
from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.clock import Clock, SystemClock
from bot.config import Config
from bot.deliver import DeliveryReport, deliver_due
from bot.fetch import Fetcher, FetchPolicy
from bot.hold import release_due
from bot.models import FeedConfig
from bot.noise import NoiseSettings
from bot.pacing import Pace
from bot.poll import (
    FROM_STORE,
    FromStore,
    PollOutcome,
    current_polling,
    poll_feed,
    tell_if_failing_too_long,
)
from bot.rules import RuleSet, load_library
from bot.runtime import Runtime, make_worker_pool
from bot.scheduler import START_SPREAD, Scheduler
from bot.slack import Sender, SlackSender, TerminalSender
from bot.store import FeedState, Store
from bot.watch import FileWatch

log = logging.getLogger("newswatch")

MAX_DRAIN_PASSES = 100_000  # a bound for `run --once`; each pass moves at least one alert
ARCHIVE_PRUNE_EVERY = timedelta(hours=1)  # articles past the retention go this often


def make_sender(env: Mapping[str, str], tz: tzinfo) -> Sender:
    """Slack when SLACK_BOT_TOKEN is set (SLACK_API_URL overrides the API), else the terminal."""
    token = env.get("SLACK_BOT_TOKEN", "").strip()
    if not token:
        return TerminalSender(sys.stdout, tz=tz)
    return SlackSender(token, base_url=env.get("SLACK_API_URL") or None, tz=tz)


def fetch_policy(config: Config) -> FetchPolicy:
    return FetchPolicy(
        deadline=config.fetch.deadline,
        max_bytes=config.fetch.max_bytes,
        allow_private=config.fetch.allow_private,
        max_concurrent=config.fetch.concurrency,
        max_per_host=config.fetch.per_host,
        page_interval=config.fetch.page_interval,
    )


def config_fingerprint(config: Config, rule_sources: tuple[tuple[str, str], ...]) -> str:
    """A digest of what decides where alerts go: Slack settings and the rule files' text."""
    digest = hashlib.sha256(repr(config.slack).encode())
    for path, source in sorted(rule_sources):
        digest.update(b"\0" + path.encode() + b"\0" + source.encode())
    return digest.hexdigest()[:32]


class App:
    """The bot: `run_once()` for one pass over every feed, `run_forever()` on the scheduler."""

    def __init__(self, config: Config, rt: Runtime, fetcher: Fetcher) -> None:
        self.config = config
        self.rt = rt
        self.fetcher = fetcher
        self._deliver_lock = asyncio.Lock()
        self._polls: set[asyncio.Task[object]] = set()  # polls in flight, for a clean stop
        self.rule_watch = FileWatch((config.rules_dir, config.aliases_dir))
        self._due: dict[str, datetime | None] = {}  # each feed's next poll; None: disabled
        self._in_flight: set[str] = set()  # feeds being polled right now
        self._failing: dict[str, datetime] = {}  # failing feeds not yet told, since when
        self.rng = random.Random()
        self._pruned_at: datetime | None = None  # when the archive was last pruned

    @classmethod
    def create(
        cls,
        config: Config,
        *,
        clock: Clock | None = None,
        sender: Sender | None = None,
        env: Mapping[str, str] | None = None,
    ) -> App:
        tz = ZoneInfo(config.display_timezone)
        rt = Runtime(
            clock=clock or SystemClock(),
            store=Store.open(config.database),
            sender=sender or make_sender(os.environ if env is None else env, tz),
            admin_channel=config.slack.admin_channel,
            make_workers=lambda: make_worker_pool(config.workers),
            pace=Pace(
                rate=config.slack.rate, burst=config.slack.burst, retry_base=config.slack.retry_base
            ),
            noise=NoiseSettings(
                config.quiet_hours,
                config.display_timezone,
                config.stories.threshold if config.stories.enabled else None,
            ),
            stories=config.stories,
        )
        return cls(config, rt, Fetcher(fetch_policy(config), clock=rt.clock))

    async def load_rules(self) -> None:
        """(Re)load aliases and rules: good files take effect, broken ones keep their last good
        version; the new set replaces the old one in a single assignment."""
        rt, config = self.rt, self.config
        self.rule_watch.mark()  # an edit made while loading is noticed on the next check
        snapshots = await rt.db(rt.store.rule_snapshots)
        previous = rt.rules

        def build() -> RuleSet:  # in a thread: polls go on matching with the rules in force
            ruleset = load_library(
                config.rules_dir,
                config.aliases_dir,
                config.slack.default_channel,
                previous=previous if previous.rules or previous.aliases.terms else None,
                known_feeds=[f.name for f in config.feeds],
                snapshots=snapshots,
            )
            ruleset.index.ship(with_index=True)  # compiled, and pickled for the workers, here
            return ruleset

        ruleset = await asyncio.to_thread(build)
        await rt.db(rt.store.save_rule_snapshots, dict(ruleset.sources), rt.clock.now())
        rt.rules = ruleset  # rules and their index, swapped as one
        rt.config_fingerprint = config_fingerprint(config, ruleset.sources)
        retried = await rt.db(rt.store.unpark, rt.clock.now(), unless_config=rt.config_fingerprint)
        if retried:
            log.info("configuration changed: %d parked alerts are tried again", retried)
        broken = set()
        for error in ruleset.errors:
            broken.add(str(error.path))
            kept = (
                " (its last good version keeps running)" if str(error.path) in ruleset.stale else ""
            )
            await rt.notice(f"rule:{error.path}", f"{self._kind(error.path)} {error}{kept}")
        for key, _ in await rt.db(rt.store.active_notices):
            path = key.removeprefix("rule:")
            if key.startswith("rule:") and path not in broken:
                await rt.resolve(key, f"{self._kind(Path(path))} {path} loads again")
        log.info("rules loaded: %d active, %d with errors", len(ruleset.rules), len(ruleset.errors))

    async def check_rules(self) -> bool:
        """Reload aliases and rules when their files changed (run every second or two)."""
        if not self.rule_watch.changed(self.rt.clock.now()):
            return False
        log.info("rule or alias files changed; reloading")
        await self.load_rules()
        return True

    def _kind(self, path: Path) -> str:
        return "alias file" if path.parent == self.config.aliases_dir else "rule file"

    async def poll(
        self, feed: FeedConfig, state: FeedState | FromStore | None = FROM_STORE
    ) -> PollOutcome:
        task = asyncio.current_task()
        if task is not None:
            self._polls.add(task)
        try:
            outcome = await poll_feed(
                self.rt,
                self.fetcher,
                feed,
                policy=self.config.polling,
                rand=self.rng.random,
                state=state,
            )
            if outcome.queued:
                await self.deliver()
            return outcome
        finally:
            self._polls.discard(task)

    async def deliver(self) -> DeliveryReport:
        async with self._deliver_lock:  # one pass at a time keeps each channel in order
            await release_due(self.rt)  # held alerts whose time has come join the outbox
            return await deliver_due(self.rt)

    async def drain(self) -> DeliveryReport:
        """Deliver until nothing due is left but retries (notices raised meanwhile included),
        waiting for each channel's pace."""
        report = await self.deliver()
        for _ in range(MAX_DRAIN_PASSES):
            if report.paced_until is not None:
                wait = report.paced_until - self.rt.clock.now()
                await self.rt.clock.sleep(wait.total_seconds())
            elif not (report.sent or report.parked or report.reconciled or report.failed):
                break  # nothing was due, or nothing can move before a retry
            report = await self.deliver()
        return report

    async def prune_archive(self) -> int:
        """Forget archived articles first seen longer ago than the retention; how many."""
        now = self.rt.clock.now()
        self._pruned_at = now
        count = await self.rt.db(self.rt.store.prune_archive, now - self.config.archive_retention)
        if count:
            log.info("archive: %d articles past the retention removed", count)
        return count

    async def prune_state(self) -> int:
        """Forget noise-control and story rows past their use (see the store's prune_noise and
        prune_stories); batched holds are kept as long as the archive; then seen keys gone
        from their feed, delivered alerts and cleared notices past the retention (prune_kept:
        after the story and hold rows that may refer to an alert); returns how many."""
        rt, now = self.rt, self.rt.clock.now()
        count = await rt.db(rt.store.prune_noise, now, self.config.archive_retention)
        count += await rt.db(rt.store.prune_stories, now, rt.stories.window)
        if count:
            log.info("state: %d noise-control and story rows past their use removed", count)
        kept = await rt.db(rt.store.prune_kept, now, self.config.archive_retention)
        if kept.total:
            log.info(
                "state: %d seen keys, %d delivered alerts, %d cleared notices past the retention"
                " removed",
                kept.seen,
                kept.alerts,
                kept.notices,
            )
        return count + kept.total

    async def _prune_when_due(self, now: datetime) -> None:
        if self._pruned_at is not None and now - self._pruned_at < ARCHIVE_PRUNE_EVERY:
            return
        try:
            await self.prune_archive()
        except Exception:  # polling goes on; the next hour tries again
            log.exception("archive could not be pruned")
        try:
            await self.prune_state()
        except Exception:
            log.exception("noise-control and story state could not be pruned")

    async def run_once(self) -> list[PollOutcome]:
        """Poll every feed once (concurrently), deliver what is due, and return.

        The interval is not waited for, but a feed's Retry-After or backoff is, and a gone
        feed is not polled: those come back as "held" or "disabled" without a request.
        A bug in one feed's poll does not cut the others short: every feed is polled and the
        alerts delivered first, then the first unexpected error is raised.
        """
        await self.load_rules()
        states = {s.name: s for s in await self.rt.db(self.rt.store.feed_states)}
        now = self.rt.clock.now()
        due: list[FeedConfig] = []
        held: dict[str, PollOutcome] = {}
        for feed in self.config.feeds:
            polling = current_polling(feed, states.get(feed.name))
            if polling.due(now, ignore_interval=True):
                due.append(feed)
            elif polling.disabled_reason is not None:
                held[feed.name] = PollOutcome(feed.name, "disabled", error=polling.disabled_reason)
            else:
                held[feed.name] = PollOutcome(
                    feed.name,
                    "held",
                    error=polling.next_poll_reason,
                    next_poll=polling.next_poll_at,
                    failing_since=polling.failing_since,
                )
                if self._failing_too_long(feed, polling.failing_since, now):
                    await tell_if_failing_too_long(self.rt, feed, now)
        results = await asyncio.gather(
            *(self.poll(feed, states.get(feed.name)) for feed in due), return_exceptions=True
        )
        await self.drain()
        await self._prune_when_due(self.rt.clock.now())
        for feed, result in zip(due, results, strict=True):
            if isinstance(result, BaseException):
                log.error("feed=%s poll crashed", feed.name, exc_info=result)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        polled = {r.feed: r for r in results if isinstance(r, PollOutcome)}
        return [polled.get(f.name) or held[f.name] for f in self.config.feeds]

    async def plan(self, start_spread: timedelta) -> None:
        """Load when each feed is next due; feeds never polled start within `start_spread`."""
        states = {s.name: s for s in await self.rt.db(self.rt.store.feed_states)}
        now = self.rt.clock.now()
        for feed in self.config.feeds:
            polling = current_polling(feed, states.get(feed.name))
            if polling.failing_since is not None:
                self._failing[feed.name] = polling.failing_since
            if polling.disabled_reason is not None:
                self._due[feed.name] = None
            elif polling.next_poll_at is not None:
                self._due[feed.name] = polling.next_poll_at
            else:
                self._due[feed.name] = now + start_spread * self.rng.random()

    async def tick(self) -> int:
        """Start a poll of every feed that is due and not being polled; returns how many."""
        now = self.rt.clock.now()
        await self._prune_when_due(now)
        started = 0
        for feed in self.config.feeds:
            due = self._due.get(feed.name, now)
            if feed.name in self._in_flight or due is None:
                continue
            if due > now:
                if self._failing_too_long(feed, self._failing.get(feed.name), now):
                    await self._tell_failing(feed, now)
                continue
            self._in_flight.add(feed.name)
            task: asyncio.Task[object] = asyncio.create_task(self._poll_and_plan(feed))
            self._polls.add(task)
            task.add_done_callback(self._polls.discard)
            started += 1
        return started

    async def settle(self) -> None:
        """Wait for every poll in flight to finish."""
        while self._polls:
            await asyncio.gather(*self._polls, return_exceptions=True)

    def next_polls(self) -> dict[str, datetime | None]:
        """When each feed is next due, as the running bot plans it (None: disabled)."""
        return dict(self._due)

    def _failing_too_long(self, feed: FeedConfig, since: datetime | None, now: datetime) -> bool:
        return since is not None and now - since >= feed.failing_after

    async def _tell_failing(self, feed: FeedConfig, now: datetime) -> None:
        """A feed waiting out a long backoff is told when its threshold passes, not at its
        next poll, which may be hours away: nothing goes silent between two polls."""
        del self._failing[feed.name]  # once per run of failures (each failed poll rechecks)
        try:
            await tell_if_failing_too_long(self.rt, feed, now)
        except Exception:  # the tick goes on for the other feeds
            log.exception("feed=%s could not check how long it has failed", feed.name)

    async def _poll_and_plan(self, feed: FeedConfig) -> None:
        try:
            outcome = await self.poll(feed)
            self._failing.pop(feed.name, None)
            since, now = outcome.failing_since, self.rt.clock.now()
            if since is not None and not self._failing_too_long(feed, since, now):
                self._failing[feed.name] = since  # not told yet: the tick tells when due
            if outcome.status == "disabled":
                self._due[feed.name] = None
            else:
                self._due[feed.name] = outcome.next_poll or self.rt.clock.now() + feed.interval
        except Exception:  # a bug in one poll must not stop that feed's schedule
            log.exception("feed=%s poll crashed", feed.name)
            self._due[feed.name] = self.rt.clock.now() + feed.interval
        finally:
            self._in_flight.discard(feed.name)

    async def run_forever(
        self, stop: asyncio.Event, start_spread: timedelta = START_SPREAD
    ) -> None:
        """Poll and deliver on the scheduler until `stop` is set."""
        await self.load_rules()
        await self.plan(start_spread)
        scheduler = Scheduler(self.tick, self.deliver, check_rules=self.check_rules)
        scheduler.start()
        log.info(
            "newswatch running: %d feeds, %d rules",
            len(self.config.feeds),
            len(self.rt.rules.rules),
        )
        try:
            await stop.wait()
        finally:
            scheduler.shutdown()
            # Each poll's writes are one transaction, so stopping mid-poll loses nothing: an
            # interrupted poll is simply done again after the restart.
            for task in list(self._polls):
                task.cancel()
            await asyncio.gather(*self._polls, return_exceptions=True)

    async def close(self) -> None:
        await self.fetcher.aclose()
        await self.rt.close()
