"""Polling a misbehaving loopback server: moves, 410, Retry-After, backoff, hints, silence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.clock import FixedClock
from bot.fetch import Fetcher, FetchPolicy
from bot.schedule import BACKOFF_CAP, MAX_JITTER, RETRY_AFTER_CAP
from bot.store import FeedState
from tests import e2e
from tests.e2e import Item, make_app, message_text, rss
from tests.feedserver import FeedServer, feed_route, gzip_bomb, status_route
from tests.slackdouble import SlackDouble

pytestmark = pytest.mark.timeout(120)

OPS = "#newswatch-ops"


def write_config(tmp_path: Path, feeds: dict[str, str], **options: Any) -> Path:
    """The end-to-end config with the admin channel on, where the notices arrive."""
    return e2e.write_config(tmp_path, feeds, admin=True, **options)


def run(
    config: Path, slack: SlackDouble, clock: FixedClock, steps: Callable[[App], Awaitable[None]]
) -> None:
    async def scenario() -> None:
        app = make_app(config, slack, clock)
        try:
            await steps(app)
        finally:
            await app.close()

    asyncio.run(scenario())


async def once(app: App) -> dict[str, str]:
    return {o.feed: o.status for o in await app.run_once()}


async def state(app: App, name: str) -> FeedState:
    found = await app.rt.db(app.rt.store.feed_state, name)
    assert found is not None
    return found


def notices(slack: SlackDouble) -> list[str]:
    return [message_text(m) for m in slack.messages(OPS)]


def item(clock: FixedClock, guid: str = "n-1", title: str = "Jeju weather") -> Item:
    return Item(guid, title, "Rain in the afternoon.", clock.now())


# --- redirects (case 21) -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 308])
def test_three_permanent_redirects_in_a_row_move_the_feed_and_are_told_once(
    tmp_path: Path,
    feed_server: FeedServer,
    slack_double: SlackDouble,
    clock: FixedClock,
    status: int,
) -> None:
    new_url = feed_server.url("/new.xml")
    feed_server.add_redirect("/old.xml", new_url, status)
    feed_server.add("/new.xml", rss([item(clock)]))
    config = write_config(tmp_path, {"wire": feed_server.url("/old.xml")})

    async def steps(app: App) -> None:
        for poll in range(1, 4):
            assert (await once(app))["wire"] in ("ok", "not-modified")
            moved = (await state(app, "wire")).polling.effective_url
            assert moved == (new_url if poll == 3 else None)
            clock.advance(minutes=2)
        await once(app)
        await once(app)

    run(config, slack_double, clock, steps)
    assert len(feed_server.requests_for("/old.xml")) == 3  # then straight to the new URL
    assert len(feed_server.requests_for("/new.xml")) == 5
    (told,) = notices(slack_double)
    assert "moved permanently" in told and new_url in told and "config.yaml" in told


@pytest.mark.parametrize(
    "hops",
    [(302,), (307,), (302, 301)],  # the last: a permanent hop behind a temporary one
    ids=["302", "307", "301-behind-302"],
)
def test_a_chain_with_a_temporary_redirect_never_moves_the_feed(
    tmp_path: Path,
    feed_server: FeedServer,
    slack_double: SlackDouble,
    clock: FixedClock,
    hops: tuple[int, ...],
) -> None:
    paths = ["/old.xml", *(f"/hop-{n}.xml" for n in range(1, len(hops))), "/new.xml"]
    for status, (here, there) in zip(hops, pairwise(paths), strict=True):
        feed_server.add_redirect(here, feed_server.url(there), status)
    feed_server.add("/new.xml", rss([item(clock)]))
    config = write_config(tmp_path, {"wire": feed_server.url("/old.xml")})

    async def steps(app: App) -> None:
        for _ in range(5):
            await once(app)
            clock.advance(minutes=2)
        assert (await state(app, "wire")).polling.effective_url is None

    run(config, slack_double, clock, steps)
    assert len(feed_server.requests_for("/old.xml")) == 5
    assert notices(slack_double) == []


def test_a_new_config_url_resets_the_move_and_resolves_its_notice(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    feed_server.add_redirect("/old.xml", feed_server.url("/new.xml"), 301)
    feed_server.add("/new.xml", rss([item(clock)]))
    feed_server.add("/newest.xml", rss([item(clock)]))
    old_config = write_config(tmp_path, {"wire": feed_server.url("/old.xml")})

    async def moved(app: App) -> None:
        for _ in range(3):
            await once(app)
            clock.advance(minutes=2)

    run(old_config, slack_double, clock, moved)
    new_config = write_config(tmp_path, {"wire": feed_server.url("/newest.xml")})

    async def changed(app: App) -> None:
        await once(app)
        polling = (await state(app, "wire")).polling
        assert polling.effective_url is None and polling.moved_count == 0

    run(new_config, slack_double, clock, changed)
    assert len(feed_server.requests_for("/newest.xml")) == 1
    told = notices(slack_double)
    assert len(told) == 2 and "Resolved" in told[1] and "new url" in told[1]


# --- 410 Gone (case 22) --------------------------------------------------------------------------


def test_a_gone_feed_stops_with_a_visible_reason_until_its_url_changes(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    feed_server.add_status("/gone.xml", 410)
    feed_server.add("/other.xml", rss([item(clock)]))
    feed_server.add("/back.xml", rss([item(clock)]))
    quiet = ("silent_after: never",)
    config = write_config(
        tmp_path,
        {"gone": feed_server.url("/gone.xml"), "other": feed_server.url("/other.xml")},
        feed_lines=quiet,
    )

    async def steps(app: App) -> None:
        assert await once(app) == {"gone": "disabled", "other": "ok"}
        gone = await state(app, "gone")
        assert gone.polling.disabled_reason is not None
        assert "410" in gone.polling.disabled_reason
        for _ in range(3):
            clock.advance(days=2)
            assert (await once(app))["gone"] == "disabled"
        await app.plan(timedelta(0))
        clock.advance(minutes=2)
        assert await app.tick() == 1  # only the other feed starts
        await app.settle()
        assert app.next_polls()["gone"] is None

    run(config, slack_double, clock, steps)
    assert len(feed_server.requests_for("/gone.xml")) == 1
    (told,) = notices(slack_double)
    assert "gone" in told and "410" in told

    config = write_config(
        tmp_path,
        {"gone": feed_server.url("/back.xml"), "other": feed_server.url("/other.xml")},
        feed_lines=quiet,
    )

    async def re_enabled(app: App) -> None:
        assert (await once(app))["gone"] == "ok"

    run(config, slack_double, clock, re_enabled)
    assert "Resolved" in notices(slack_double)[-1]


# --- Retry-After (case 23) -----------------------------------------------------------------------


@pytest.mark.parametrize("form", ["seconds", "http-date"])
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_holds_the_feed_back_and_no_other(
    tmp_path: Path,
    feed_server: FeedServer,
    slack_double: SlackDouble,
    clock: FixedClock,
    status: int,
    form: str,
) -> None:
    # The server dates its answer by the real clock, as servers do; the bot's clock is fixed.
    when = datetime.now(UTC) + timedelta(seconds=3600)
    value = "3600" if form == "seconds" else format_datetime(when, usegmt=True)
    feed_server.add_status("/busy.xml", status, headers={"Retry-After": value})
    feed_server.add("/other.xml", rss([item(clock)]))
    config = write_config(
        tmp_path, {"busy": feed_server.url("/busy.xml"), "other": feed_server.url("/other.xml")}
    )
    started = clock.now()

    async def steps(app: App) -> None:
        assert await once(app) == {"busy": "error", "other": "ok"}
        polling = (await state(app, "busy")).polling
        assert polling.next_poll_at is not None
        assert polling.next_poll_at >= started + timedelta(seconds=3590)
        clock.advance(minutes=59)
        assert await once(app) == {"busy": "held", "other": "not-modified"}
        clock.set(polling.next_poll_at)
        assert (await once(app))["busy"] == "error"

    run(config, slack_double, clock, steps)
    assert len(feed_server.requests_for("/busy.xml")) == 2
    assert len(feed_server.requests_for("/other.xml")) == 3


def test_an_absurd_retry_after_is_capped(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    ten_years = str(10 * 365 * 86400)
    feed_server.add_status("/busy.xml", 429, headers={"Retry-After": ten_years})
    config = write_config(tmp_path, {"busy": feed_server.url("/busy.xml")})

    async def steps(app: App) -> None:
        await once(app)
        at = (await state(app, "busy")).polling.next_poll_at
        assert at is not None
        assert clock.now() + RETRY_AFTER_CAP <= at <= clock.now() + RETRY_AFTER_CAP + MAX_JITTER

    run(config, slack_double, clock, steps)


# --- persistent failure and recovery (case 24) ---------------------------------------------------


def test_a_failing_feed_backs_off_to_the_cap_is_told_once_and_recovers_on_its_own(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    failures = [status_route(500, body=b"oops")] * 20
    feed_server.add_sequence("/wire.xml", [*failures, feed_route(rss([item(clock)]))])
    config = write_config(tmp_path, {"wire": feed_server.url("/wire.xml")})
    delays: list[timedelta] = []

    async def steps(app: App) -> None:
        for _ in range(20):
            polled_at = clock.now()
            assert await once(app) == {"wire": "error"}
            wire = await state(app, "wire")
            assert wire.polling.next_poll_at is not None
            delays.append(wire.polling.next_poll_at - polled_at)
            assert await once(app) == {"wire": "held"}  # nothing before the backoff ends
            clock.set(wire.polling.next_poll_at)
        assert wire.consecutive_failures == 20 and wire.last_error == "HTTP 500"
        assert await once(app) == {"wire": "ok"}
        back = await state(app, "wire")
        assert back.consecutive_failures == 0 and back.polling.failing_since is None
        assert back.polling.next_poll_at is not None
        assert back.polling.next_poll_at - clock.now() <= timedelta(minutes=1, seconds=6)

    run(config, slack_double, clock, steps)
    assert len(feed_server.requests_for("/wire.xml")) == 21
    assert delays[1] > delays[0] * 1.5 and delays[3] > delays[2] * 1.5  # exponential
    assert max(delays) <= BACKOFF_CAP * 1.1 and delays[-1] >= BACKOFF_CAP * 0.9
    told = notices(slack_double)
    assert len(told) == 2
    assert "wire has been failing for" in told[0] and "polls in a row): HTTP 500" in told[0]
    assert "polling again" in told[1]


# --- failing for longer than a threshold ---------------------------------------------------------


def test_a_failing_feed_is_told_once_it_has_failed_for_its_threshold_not_after_a_count(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    feed_server.add_status("/wire.xml", 500)
    config = write_config(
        tmp_path, {"wire": feed_server.url("/wire.xml")}, feed_lines=("failing_after: 10m",)
    )
    told_at: list[int] = []  # after which failed poll the notice was there

    async def steps(app: App) -> None:
        started = clock.now()
        for poll in range(1, 7):
            assert await once(app) == {"wire": "error"}
            if notices(slack_double) and not told_at:
                told_at.append(poll)
                assert clock.now() - started >= timedelta(minutes=10)
            elif not told_at:
                assert clock.now() - started < timedelta(minutes=10)
            wire = await state(app, "wire")
            assert wire.polling.next_poll_at is not None
            clock.set(wire.polling.next_poll_at)

    run(config, slack_double, clock, steps)
    # 1-minute interval, backoff 1, 2, 4, 8 min (±10 %): the fifth failure is past 10 minutes.
    assert told_at == [5]
    told = notices(slack_double)
    assert len(told) == 1
    assert "wire has been failing for 1" in told[0] and "(5 polls in a row): HTTP 500" in told[0]


def test_a_feed_held_back_for_hours_is_told_by_the_tick_when_its_threshold_passes(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    feed_server.add_status("/busy.xml", 503, headers={"Retry-After": "86400"})
    feed_server.add("/other.xml", rss([item(clock)]))
    config = write_config(
        tmp_path,
        {"busy": feed_server.url("/busy.xml"), "other": feed_server.url("/other.xml")},
        feed_lines=("failing_after: 1h",),
    )

    async def steps(app: App) -> None:
        await app.plan(timedelta(0))
        assert await app.tick() == 2
        await app.settle()
        await app.drain()
        assert notices(slack_double) == []  # one failure, just now
        clock.advance(minutes=59)
        await app.tick()
        await app.settle()
        await app.drain()
        assert notices(slack_double) == []
        clock.advance(minutes=2)  # an hour of failing; the next try is 23 hours away
        await app.tick()
        await app.settle()
        await app.tick()  # told once, not on every tick
        await app.drain()
        told = notices(slack_double)
        assert len(told) == 1
        assert "busy has been failing for 1 h 1 min (1 poll in a row): HTTP 503" in told[0]
        assert "next try at" in told[0]
        feed_server.add("/busy.xml", rss([item(clock)]))
        clock.advance(hours=24)
        await app.tick()
        await app.settle()
        await app.drain()

    run(config, slack_double, clock, steps)
    assert len(feed_server.requests_for("/busy.xml")) == 2  # told without polling it again
    told = notices(slack_double)
    assert len(told) == 2 and "busy is polling again" in told[1]


def test_run_once_tells_a_held_back_feed_failing_past_its_threshold(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    feed_server.add_status("/busy.xml", 429, headers={"Retry-After": "86400"})
    config = write_config(
        tmp_path, {"busy": feed_server.url("/busy.xml")}, feed_lines=("failing_after: 2h",)
    )

    async def steps(app: App) -> None:
        assert await once(app) == {"busy": "error"}
        clock.advance(hours=1)
        assert await once(app) == {"busy": "held"}
        assert notices(slack_double) == []
        clock.advance(hours=1)
        assert await once(app) == {"busy": "held"}
        assert await once(app) == {"busy": "held"}

    run(config, slack_double, clock, steps)
    assert len(feed_server.requests_for("/busy.xml")) == 1
    told = notices(slack_double)
    assert len(told) == 1 and "busy has been failing for 2 h (1 poll in a row): HTTP 429" in told[0]


# --- feed hints ----------------------------------------------------------------------------------


def test_ttl_and_max_age_lengthen_the_interval_within_bounds(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    with_ttl = rss([item(clock)]).replace("<description>test feed", "<ttl>30</ttl><description>x")
    feed_server.add("/ttl.xml", with_ttl)
    feed_server.add("/cached.xml", rss([item(clock)]), headers={"Cache-Control": "max-age=86400"})
    feed_server.add("/plain.xml", rss([item(clock)]))
    config = write_config(
        tmp_path,
        {
            "ttl": feed_server.url("/ttl.xml"),
            "cached": feed_server.url("/cached.xml"),
            "plain": feed_server.url("/plain.xml"),
        },
    )

    async def steps(app: App) -> None:
        await once(app)
        for name, expected in (("ttl", 30), ("cached", 60), ("plain", 1)):
            at = (await state(app, name)).polling.next_poll_at
            assert at is not None
            assert abs(at - clock.now() - timedelta(minutes=expected)) <= MAX_JITTER, name

    run(config, slack_double, clock, steps)


# --- silence -------------------------------------------------------------------------------------


def test_a_feed_silent_past_its_threshold_is_told_once_and_again_when_it_speaks(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    feed_server.add("/wire.xml", rss([item(clock)]))
    config = write_config(
        tmp_path, {"wire": feed_server.url("/wire.xml")}, feed_lines=("silent_after: 1d",)
    )

    async def steps(app: App) -> None:
        await once(app)
        clock.advance(hours=12)
        await once(app)
        assert notices(slack_double) == []
        clock.advance(hours=13)
        assert await once(app) == {"wire": "not-modified"}
        clock.advance(hours=6)
        await once(app)
        feed_server.add("/wire.xml", rss([item(clock, "n-2", "Busan port"), item(clock)]))
        clock.advance(hours=1)
        await once(app)

    run(config, slack_double, clock, steps)
    told = notices(slack_double)
    assert len(told) == 2
    assert "no new articles for 1 days 1 h" in told[0]
    assert "Resolved" in told[1] and "new articles again" in told[1]


# --- every fault at once (cases 25, 29, 30, 35) --------------------------------------------------


def test_every_misbehaving_feed_fails_alone_within_the_deadline(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    good = Item(
        "u-1", "USFK troop levels under review", "28,500 U.S. troops in Korea.", clock.now()
    )
    feed_server.add("/good.xml", rss([good]))
    feed_server.add_trickle("/trickle.xml", rss([good]).encode(), interval=0.5)
    feed_server.add_endless("/endless.xml")
    feed_server.add_huge_length("/huge.xml", 10 * 1024**3)
    bomb = gzip_bomb(64 * 1024 * 1024)
    feed_server.add("/bomb.xml", bomb, headers={"Content-Encoding": "gzip"})
    feed_server.add_hang("/hang.xml")
    feed_server.add_redirect("/loop.xml", feed_server.url("/loop.xml"), 302)
    feed_server.add_status("/missing.xml", 404)
    korean = rss([Item("k-1", "주한미군 감축 논의 똠", "뷁", clock.now())])
    feed_server.add(
        "/euc-kr.xml",
        korean.replace("utf-8", "euc-kr").encode("cp949"),
        headers={"Content-Type": "application/rss+xml; charset=utf-8"},
    )
    feed_server.add("/html.xml", "<html><body>Maintenance</body></html>")
    entities = ['<!ENTITY l0 "lol">'] + [
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)
    ]
    laughs = rss([item(clock)]).replace("<rss ", f"<!DOCTYPE rss [{''.join(entities)}]><rss ")
    feed_server.add("/laughs.xml", laughs.replace("Jeju weather", "Jeju &l9;"))
    paths = [
        "good", "trickle", "endless", "huge", "bomb", "hang", "loop", "missing", "euc-kr", "html",
        "laughs",
    ]  # fmt: skip
    config = write_config(
        tmp_path,
        {name: feed_server.url(f"/{name}.xml") for name in paths},
        deadline="2s",
    )
    statuses: dict[str, str] = {}

    async def steps(app: App) -> None:
        statuses.update(await once(app))
        for name in paths:
            polling = (await state(app, name)).polling
            assert polling.next_poll_at is not None and polling.next_poll_at > clock.now()

    started = time.monotonic()
    run(config, slack_double, clock, steps)
    assert time.monotonic() - started < 20
    assert statuses.pop("good") == "ok" and statuses.pop("euc-kr") == "ok"
    assert statuses.pop("laughs") in ("ok", "degraded")  # the DTD is gone, the item stays
    assert set(statuses.values()) == {"error"}
    assert len(slack_double.messages("#korea-security")) == 2  # both good feeds' articles


# --- concurrency and the tick --------------------------------------------------------------------


def test_fetches_stay_within_the_per_host_and_global_limits(
    feed_server: FeedServer, clock: FixedClock
) -> None:
    feed_server.add_slow("/slow.xml", rss([item(clock)]), delay=0.2)
    with FeedServer() as second:
        second.add_slow("/slow.xml", rss([item(clock)]), delay=0.2)
        urls = [feed_server.url(f"/slow.xml?{i}") for i in range(12)]
        urls += [second.url(f"/slow.xml?{i}") for i in range(12)]

        async def fetch_all(policy: FetchPolicy) -> int:
            fetcher = Fetcher(policy)
            try:
                await asyncio.gather(
                    *(fetcher.fetch("f", url, etag=None, last_modified=None) for url in urls)
                )
            finally:
                await fetcher.aclose()
            return fetcher.most_in_flight

        assert asyncio.run(fetch_all(FetchPolicy(max_per_host=3, max_concurrent=64))) == 6
        assert feed_server.most_in_flight == 3 and second.most_in_flight == 3
        assert asyncio.run(fetch_all(FetchPolicy(max_per_host=4, max_concurrent=5))) == 5


def test_the_tick_starts_only_due_feeds_and_a_clock_jump_gives_one_poll_each(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    feed_server.add("/a.xml", rss([item(clock)]))
    feed_server.add("/b.xml", rss([item(clock)]))
    config = write_config(
        tmp_path, {"a": feed_server.url("/a.xml"), "b": feed_server.url("/b.xml")}
    )

    async def steps(app: App) -> None:
        await app.plan(timedelta(0))
        assert await app.tick() == 2
        assert await app.tick() == 0  # still in flight: never two polls of one feed
        await app.settle()
        assert await app.tick() == 0  # not due yet
        due = app.next_polls()
        assert all(at is not None and at > clock.now() for at in due.values())
        clock.advance(hours=10)  # the host slept: many intervals missed
        assert await app.tick() == 2
        await app.settle()
        assert await app.tick() == 0  # one poll each, not a burst

    run(config, slack_double, clock, steps)
    assert len(feed_server.requests_for("/a.xml")) == 2


def test_a_restarted_bot_keeps_each_feeds_schedule(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    feed_server.add_status("/busy.xml", 429, headers={"Retry-After": "3600"})
    config = write_config(tmp_path, {"busy": feed_server.url("/busy.xml")})
    run(config, slack_double, clock, once)  # type: ignore[arg-type]

    async def restarted(app: App) -> None:
        await app.plan(timedelta(0))
        assert await app.tick() == 0  # the Retry-After survives the restart
        clock.advance(minutes=61)
        assert await app.tick() == 1
        await app.settle()

    run(config, slack_double, clock, restarted)
    assert len(feed_server.requests_for("/busy.xml")) == 2
