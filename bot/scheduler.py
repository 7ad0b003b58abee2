"""Ticks the bot: feed polls, outbox sender, rule-file checks (the only APScheduler importer)."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.models import FeedConfig

log = logging.getLogger("newswatch.scheduler")

JITTER_FRACTION = 0.1  # each poll moves by up to ±10 % of its interval ...
MAX_JITTER = timedelta(seconds=60)  # ... and never by more than a minute
START_SPREAD = timedelta(seconds=10)  # first polls spread over this, not all at once
DELIVERY_INTERVAL = timedelta(seconds=1)  # the outbox pass: due retries and paced alerts
RULE_CHECK_INTERVAL = timedelta(seconds=2)  # rule and alias edits take effect within seconds


def poll_trigger(feed: FeedConfig) -> IntervalTrigger:
    jitter = min(feed.interval * JITTER_FRACTION, MAX_JITTER)
    return IntervalTrigger(
        seconds=feed.interval.total_seconds(), jitter=int(jitter.total_seconds()), timezone=UTC
    )


class Scheduler:
    """Polls each feed on its interval (never two polls of one feed at once, missed runs
    coalesced into one), runs the sender every few seconds and, given `check_rules`, looks for
    edited rule and alias files every RULE_CHECK_INTERVAL."""

    def __init__(
        self,
        feeds: Sequence[FeedConfig],
        poll: Callable[[FeedConfig], Awaitable[object]],
        deliver: Callable[[], Awaitable[object]],
        rng: random.Random | None = None,
        start_spread: timedelta = START_SPREAD,
        check_rules: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._feeds = tuple(feeds)
        self._start_spread = start_spread
        self._poll = poll
        self._deliver = deliver
        self._check_rules = check_rules
        self._rng = rng or random.Random()
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._scheduler.add_listener(self._skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self.skipped_runs = 0

    def start(self) -> None:
        """Start on the running event loop; the first poll of each feed comes within seconds."""
        now = datetime.now(UTC)
        for feed in self._feeds:
            first = now + self._start_spread * self._rng.random()
            self._scheduler.add_job(
                self._poll,
                poll_trigger(feed),
                args=[feed],
                id=f"poll:{feed.name}",
                name=f"poll {feed.name}",
                next_run_time=first,
            )
        self._scheduler.add_job(
            self._deliver,
            IntervalTrigger(seconds=DELIVERY_INTERVAL.total_seconds(), timezone=UTC),
            id="deliver",
            name="deliver pending alerts",
            next_run_time=now,
        )
        if self._check_rules is not None:
            self._scheduler.add_job(
                self._check_rules,
                IntervalTrigger(seconds=RULE_CHECK_INTERVAL.total_seconds(), timezone=UTC),
                id="check-rules",
                name="reload edited rule and alias files",
            )
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def _skipped(self, event: JobExecutionEvent) -> None:
        self.skipped_runs += 1
        log.info("job=%s run skipped (still running or missed)", event.job_id)
