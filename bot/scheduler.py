"""Ticks the bot: due polls, the outbox sender, rule-file checks (the only APScheduler importer)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger("newswatch.scheduler")

START_SPREAD = timedelta(seconds=10)  # first polls spread over this, not all at once
TICK = timedelta(seconds=1)  # how often due feeds are looked for
DELIVERY_INTERVAL = timedelta(seconds=1)  # the outbox pass: due retries and paced alerts
RULE_CHECK_INTERVAL = timedelta(seconds=2)  # rule and alias edits take effect within seconds


class Scheduler:
    """Runs `tick` every second (it starts the polls that are due; when each feed is due is
    data in the store, see schedule.py), the sender every second and, given `check_rules`, a
    look for edited rule and alias files every RULE_CHECK_INTERVAL. A late or overrunning job
    is coalesced into one run, never a burst, and counted in `skipped_runs`."""

    def __init__(
        self,
        tick: Callable[[], Awaitable[object]],
        deliver: Callable[[], Awaitable[object]],
        tick_interval: timedelta = TICK,
        check_rules: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._tick = tick
        self._tick_interval = tick_interval
        self._deliver = deliver
        self._check_rules = check_rules
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._scheduler.add_listener(self._skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self.skipped_runs = 0

    def start(self) -> None:
        """Start on the running event loop; the first tick and delivery run at once."""
        now = datetime.now(UTC)
        self._scheduler.add_job(
            self._tick,
            IntervalTrigger(seconds=self._tick_interval.total_seconds(), timezone=UTC),
            id="tick",
            name="start due polls",
            next_run_time=now,
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


WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")  # crontab numbers 0-7


def crontab_trigger(cron: str, timezone: str) -> CronTrigger:
    """A CronTrigger for five crontab fields, weekdays numbered as crontab does (0 or 7 is
    Sunday, 1-5 Monday to Friday); APScheduler 3 alone would count from Monday = 0."""
    fields = cron.split()
    if len(fields) == 5:
        fields[4] = ",".join(_weekday_names(item) for item in fields[4].split(","))
    return CronTrigger.from_crontab(" ".join(fields), timezone=ZoneInfo(timezone))


def _weekday_names(item: str) -> str:
    """One item of the weekday field with crontab's numbers spelled as names ("1-5" →
    "mon,tue,wed,thu,fri"); names, `*` and anything unreadable are left for APScheduler."""
    body, _, step_text = item.partition("/")
    low_high = body.split("-")
    if body == "*":
        low, high = 0, 6
    elif all(part.isdigit() for part in low_high) and len(low_high) in (1, 2):
        low, high = int(low_high[0]), int(low_high[-1])
        if len(low_high) == 1 and step_text:
            high = 7
    else:
        return item
    step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
    if (step_text and step is None) or not 0 <= low <= high <= 7:
        return item  # APScheduler says what is wrong with it
    if body == "*" and step is None:
        return item
    days = range(low, high + 1, step or 1)
    return ",".join(dict.fromkeys(WEEKDAYS[d] for d in days))


def cron_problem(cron: str, timezone: str) -> str | None:
    """Why `cron` (five crontab fields) in `timezone` is not a schedule, or None if it is."""
    try:
        crontab_trigger(cron, timezone)
    except (ValueError, TypeError, LookupError) as exc:
        return str(exc) or type(exc).__name__
    return None


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time at or after `after` that the crontab schedule fires, in aware UTC.

    APScheduler's CronTrigger reads the fields in `timezone`, DST included: a wall time
    skipped in spring fires an hour later (02:30 → 03:30). One repeated in autumn would fire
    at both of its instants; the second is skipped here, so a digest goes out once per
    wall-clock time (at its first instant; an hourly schedule has no second 01:30 either)."""
    trigger = crontab_trigger(cron, timezone)
    zone = ZoneInfo(timezone)
    start = after
    for _ in range(2):  # at most one repeated instant lies in the way
        fire: datetime | None = trigger.get_next_fire_time(None, start)
        if fire is None:  # a five-field crontab always fires again; be explicit all the same
            raise ValueError(f"schedule {cron!r} never fires after {after.isoformat()}")
        fire = fire.astimezone(UTC)  # (wall-clock arithmetic on a local time ignores `fold`)
        if not fire.astimezone(zone).fold:  # not the second instant of a repeated wall time
            return fire
        start = fire + timedelta(seconds=1)  # the trigger counts whole seconds
    raise ValueError(f"schedule {cron!r} never fires after {after.isoformat()}")
