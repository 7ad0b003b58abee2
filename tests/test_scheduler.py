"""The scheduler drives polls and deliveries; a hanging feed holds up no other feed."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from bot.clock import SystemClock
from tests.e2e import Item, make_app, rss, write_config
from tests.feedserver import FeedServer
from tests.slackdouble import SlackDouble


def test_running_bot_polls_every_feed_and_posts_while_another_feed_hangs(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble
) -> None:
    clock = SystemClock()
    item = Item(
        "u-1", "USFK troop levels under review", "28,500 U.S. troops in Korea.", clock.now()
    )
    feed_server.add("/good.xml", rss([item]))
    feed_server.add_hang("/stuck.xml")
    config = write_config(
        tmp_path, {"stuck": feed_server.url("/stuck.xml"), "good": feed_server.url("/good.xml")}
    )

    async def scenario() -> float:
        app = make_app(config, slack_double, clock)
        stop = asyncio.Event()
        started = time.monotonic()
        runner = asyncio.create_task(app.run_forever(stop, start_spread=timedelta(0)))
        try:
            async with asyncio.timeout(30):
                while not slack_double.messages("#korea-security"):
                    await asyncio.sleep(0.05)  # waiting for a real server, not for time to pass
            return time.monotonic() - started
        finally:
            stop.set()
            await runner
            await app.close()

    elapsed = asyncio.run(scenario())
    assert len(slack_double.messages("#korea-security")) == 1
    assert elapsed < 5.0, "the alert came without waiting for the stuck feed's deadline"
