"""`newswatch feeds`: each feed's status, last success and error, failures, next poll, moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.app import App
from bot.clock import FixedClock
from bot.health import FeedHealth, feed_health, render_table
from bot.models import FeedConfig
from bot.store import Store
from tests.e2e import Item, rss
from tests.feedserver import FeedServer
from tests.slackdouble import SlackDouble
from tests.test_cli import newswatch
from tests.test_polling import run, write_config


def test_the_health_table_shows_every_feeds_state(
    tmp_path: Path, feed_server: FeedServer, slack_double: SlackDouble, clock: FixedClock
) -> None:
    news = Item("n-1", "Jeju weather", "Rain.", clock.now())
    feed_server.add("/ok.xml", rss([news]))
    feed_server.add_status("/broken.xml", 500)
    feed_server.add_status("/gone.xml", 410)
    feed_server.add_redirect("/old.xml", feed_server.url("/new.xml"), 301)
    feed_server.add("/new.xml", rss([news]))
    feed_server.add_status("/busy.xml", 429, headers={"Retry-After": "7200"})
    feeds = {name: feed_server.url(f"/{name}.xml") for name in ("ok", "broken", "gone", "busy")}
    feeds["moved"] = feed_server.url("/old.xml")
    config = write_config(tmp_path, feeds)

    async def three_polls(app: App) -> None:
        for _ in range(3):
            clock.advance(hours=1)
            await app.run_once()

    run(config, slack_double, clock, three_polls)
    with_new = write_config(tmp_path, {**feeds, "new-feed": feed_server.url("/ok.xml")})

    store = Store.open(tmp_path / "state.db")
    try:
        configured = [
            FeedConfig(name, url, timedelta(minutes=1), None)
            for name, url in {**feeds, "new-feed": feed_server.url("/ok.xml")}.items()
        ]
        rows = {row.name: row for row in feed_health(configured, store.feed_states(), clock.now())}
    finally:
        store.close()
    assert rows["ok"].status == "ok" and rows["ok"].articles_seen == 1
    assert rows["ok"].next_poll is not None and rows["ok"].last_error is None
    assert rows["broken"].status == "failing" and rows["broken"].failures == 3
    assert rows["broken"].last_error == "HTTP 500" and rows["broken"].next_reason == "backoff"
    assert rows["gone"].status == "disabled" and "410" in (rows["gone"].last_error or "")
    assert rows["busy"].next_reason == "retry-after"
    assert rows["moved"].status == "ok"
    assert rows["moved"].effective_url == feed_server.url("/new.xml")
    assert rows["new-feed"].status == "never polled"

    table = render_table(list(rows.values()))
    assert "last error: HTTP 500" in table
    assert f"polled at: {feed_server.url('/new.xml')}" in table
    assert "never (until its url changes)" in table

    result = newswatch("--config", str(with_new), "feeds")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["FEED", "STATUS"] and "NEXT POLL" in lines[0]
    assert any(line.startswith("broken ") and "failing" in line for line in lines)
    assert any(line.startswith("new-feed ") and "never polled" in line for line in lines)


def test_the_table_shows_times_in_the_display_timezone() -> None:
    at = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)
    row = FeedHealth("wire", "ok", at, None, 0, at + timedelta(minutes=10), "interval", 3, None)
    table = render_table([row], ZoneInfo("Asia/Seoul"))
    assert "2025-07-31 15:00 KST" in table and "2025-07-31 15:10 KST (interval)" in table
    assert "2025-07-31 06:00 UTC" in render_table([row])
