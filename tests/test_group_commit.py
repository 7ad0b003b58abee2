"""Group commit: store writes asked for while one is being made go together, one transaction."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.clock import FixedClock
from bot.errors import StoreError
from bot.runtime import Runtime
from bot.slack import TerminalSender
from bot.store import Store
from tests.e2e import Item, make_app, rss, write_config
from tests.feedserver import FeedServer
from tests.slackdouble import SlackDouble


def make_runtime(tmp_path: Path, clock: FixedClock) -> Runtime:
    return Runtime(
        clock=clock,
        store=Store.open(tmp_path / "state.db"),
        sender=TerminalSender(io.StringIO()),
        admin_channel=None,
        make_workers=lambda: ThreadPoolExecutor(1),
    )


class Recorder:
    """A batched write that records each call's items; items named "bad" make it fail."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def write_many(self, items: Sequence[str]) -> None:
        if "bad" in items:
            raise StoreError("cannot write bad")
        self.calls.append(list(items))


def test_writes_asked_for_meanwhile_are_made_together_each_once_in_order(
    tmp_path: Path, clock: FixedClock
) -> None:
    recorder = Recorder()
    names = [f"feed{i}" for i in range(50)]

    async def scenario() -> None:
        rt = make_runtime(tmp_path, clock)
        try:
            await asyncio.gather(*(rt.db_grouped(recorder.write_many, n) for n in names))
            await rt.db_grouped(recorder.write_many, "later")  # a new writer after the last
        finally:
            await rt.close()

    asyncio.run(scenario())
    *grouped, last = recorder.calls
    assert [name for call in grouped for name in call] == names
    assert len(grouped) <= 2  # at most the first alone, then everything asked for meanwhile
    assert last == ["later"]


def test_a_bad_item_fails_only_its_own_caller(tmp_path: Path, clock: FixedClock) -> None:
    recorder = Recorder()

    async def scenario() -> list[BaseException | None]:
        rt = make_runtime(tmp_path, clock)
        try:
            items = ["first", "a", "bad", "b"]
            return await asyncio.gather(
                *(rt.db_grouped(recorder.write_many, i) for i in items), return_exceptions=True
            )
        finally:
            await rt.close()

    results = asyncio.run(scenario())
    assert results[0] is None and results[1] is None and results[3] is None
    assert isinstance(results[2], StoreError)
    written = [name for call in recorder.calls for name in call]
    assert written == ["first", "a", "b"]  # the group failed, then each was tried alone


@pytest.mark.timeout(120)
def test_a_pass_of_304_answers_records_every_feed(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    names = [f"wire{i}" for i in range(40)]
    for name in names:
        feed_server.add(
            f"/{name}.xml", rss([Item(f"{name}-1", "Jeju weather", "Rain.", clock.now())])
        )
    config = write_config(tmp_path, {n: feed_server.url(f"/{n}.xml") for n in names})

    async def scenario() -> None:
        app = make_app(config, slack_double, clock)
        try:
            await app.run_once()
            clock.advance(minutes=5)
            outcomes = await app.run_once()
            assert {o.status for o in outcomes} == {"not-modified"}
            states = {s.name: s for s in await app.rt.db(app.rt.store.feed_states)}
            for name in names:
                polled = states[name]
                assert polled.last_polled_at == polled.last_success_at == clock.now(), name
                assert polled.polling.next_poll_at is not None
                assert polled.polling.next_poll_at > clock.now(), name
        finally:
            await app.close()

    asyncio.run(scenario())
