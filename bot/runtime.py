"""The running bot's shared parts: clock, store, worker pool, database thread, sender, notices."""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from bot.clock import Clock
from bot.errors import IndexMissing
from bot.noise import NoiseSettings
from bot.pacing import Bucket, Pace
from bot.rules import RuleSet
from bot.slack import Sender
from bot.store import Store
from bot.story import StoryPolicy

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("newswatch")


def make_worker_pool(workers: int) -> Executor:
    """Processes for parsing and matching, so CPU work never stalls the event loop."""
    count = workers or max(1, os.cpu_count() or 1)
    return ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("spawn"))


@dataclass
class Runtime:
    """What every stage of a running bot shares; the rules in force are swapped as a whole."""

    clock: Clock
    store: Store
    sender: Sender
    admin_channel: str | None
    make_workers: Callable[[], Executor]
    rules: RuleSet = field(default_factory=RuleSet)
    sending_paused_until: datetime | None = None  # set when Slack rejects the token
    pace: Pace = field(default_factory=Pace)
    buckets: dict[str, Bucket] = field(default_factory=dict)  # per channel (ID when known)
    config_fingerprint: str = ""  # parked alerts are retried when this changes
    db_thread: Executor = field(default_factory=lambda: ThreadPoolExecutor(1, "newswatch-db"))
    noise: NoiseSettings = field(default_factory=NoiseSettings)  # quiet hours, display timezone
    noise_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # caps: one plan at a time
    _grouped: dict[Callable[..., None], list[tuple[Any, asyncio.Future[None]]]] = field(
        default_factory=dict, repr=False
    )
    _group_writers: dict[Callable[..., None], asyncio.Task[None]] = field(
        default_factory=dict, repr=False
    )
    stories: StoryPolicy = field(default_factory=StoryPolicy)  # near-duplicates go in threads

    def __post_init__(self) -> None:
        self.workers = self.make_workers()

    async def db_grouped(self, write_many: Callable[[Sequence[T]], None], item: T) -> None:
        """Write `item` with the other items given meanwhile, in one call (group commit).

        The first write starts at once; the items that arrive while it runs are written
        together next, in one transaction, and so on. Each caller returns once its own item is
        committed. If a group fails, its items are retried one by one, so that a bad item
        fails only its own caller.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._grouped.setdefault(write_many, []).append((item, future))
        if write_many not in self._group_writers:
            self._group_writers[write_many] = asyncio.create_task(self._write_groups(write_many))
        await future

    async def _write_groups(self, write_many: Callable[[Sequence[Any]], None]) -> None:
        try:
            while group := self._grouped.pop(write_many, []):
                try:
                    await self.db(write_many, [item for item, _ in group])
                except Exception:
                    for item, future in group:
                        await self._write_alone(write_many, item, future)
                    continue
                for _, future in group:
                    if not future.done():  # its caller may have been cancelled meanwhile
                        future.set_result(None)
        finally:  # in the same step as the last (empty) look: a later item starts a new writer
            del self._group_writers[write_many]

    async def _write_alone(
        self, write_many: Callable[[Sequence[Any]], None], item: Any, future: asyncio.Future[None]
    ) -> None:
        try:
            await self.db(write_many, [item])
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(None)

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store call on the database thread (one at a time, off the event loop)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.db_thread, functools.partial(fn, *args, **kwargs))

    async def cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run pure CPU-bound work in the worker pool; a pool whose worker died is replaced."""
        loop = asyncio.get_running_loop()
        workers = self.workers
        try:
            return await loop.run_in_executor(workers, fn, *args)
        except BrokenExecutor:
            if self.workers is workers:
                log.error("a worker process died; starting a new pool")
                workers.shutdown(wait=False, cancel_futures=True)
                self.workers = self.make_workers()
            raise

    async def cpu_matching(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, rules=…, **kwargs)` in the worker pool with the rule index in force. The
        index travels to each worker once per rule load: a call names its generation, and a
        worker lacking it raises IndexMissing and is sent the index."""
        index = self.rules.index
        try:
            return await self.cpu(functools.partial(fn, *args, rules=index.ship(), **kwargs))
        except IndexMissing:
            shipped = index.ship(with_index=True)
            return await self.cpu(functools.partial(fn, *args, rules=shipped, **kwargs))

    async def notice(self, key: str, message: str, *, active: bool = True) -> None:
        """Tell the operator about a problem (active) or its end, once each: log + admin channel."""
        changed = await self.db(self.store.set_notice, key, active, message, self.clock.now())
        if not changed:
            return
        if active:
            log.warning("notice: %s", message)
        else:
            log.info("notice resolved: %s", message)
        if self.admin_channel:  # through the outbox: sent in order, retried, never lost
            prefix = "Problem" if active else "Resolved"
            await self.db(
                self.store.queue_notice,
                self.admin_channel,
                f"{prefix}: {message}",
                self.clock.now(),
            )

    async def resolve(self, key: str, message: str) -> None:
        await self.notice(key, message, active=False)

    async def close(self) -> None:
        await asyncio.gather(*self._group_writers.values(), return_exceptions=True)
        await self.sender.close()
        self.workers.shutdown(wait=True, cancel_futures=True)
        self.db_thread.shutdown(wait=True)
        self.store.close()
