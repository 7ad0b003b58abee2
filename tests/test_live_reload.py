"""A running bot takes rule and alias edits without a restart (RELIABILITY.md case 34)."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import App
from bot.clock import FixedClock, SystemClock
from bot.match import Document, match_rule
from bot.scheduler import RULE_CHECK_INTERVAL
from bot.watch import WATCH_INTERVAL, FileWatch
from tests.e2e import make_app, message_text, write_config
from tests.slackdouble import SlackDouble

RULE = 'name: usfk\nchannel: "#korea-security"\nquery: >-\n  @usfk\n  (cut* OR 감축)\n'
ALIASES = "usfk: [USFK, U.S. Forces Korea]\n"


def setup(tmp_path: Path) -> Path:
    rules, aliases = tmp_path / "rules", tmp_path / "aliases"
    rules.mkdir()
    aliases.mkdir()
    (rules / "usfk.yaml").write_text(RULE, encoding="utf-8")
    (aliases / "alliance.yaml").write_text(ALIASES, encoding="utf-8")
    config = write_config(
        tmp_path, {"wire": "http://127.0.0.1:9/never-polled.xml"}, rules=rules, admin=True
    )
    text = config.read_text(encoding="utf-8")
    config.write_text(f"aliases: {aliases}\n{text}", encoding="utf-8")
    return tmp_path


def fires(app: App, text: str) -> bool:
    rule = app.rt.rules.by_name("usfk")
    return match_rule(rule, Document.from_fields({"title": text})) is not None


async def notices(app: App, slack: SlackDouble) -> list[str]:
    """The admin channel's messages once every queued notice has gone out."""
    await app.drain()
    return [message_text(m) for m in slack.messages("#newswatch-ops")]


def test_edits_take_effect_a_broken_edit_keeps_the_last_good_version_and_a_fix_recovers(
    tmp_path: Path, slack_double: SlackDouble, clock: FixedClock
) -> None:
    base = setup(tmp_path)
    rule_file, alias_file = base / "rules" / "usfk.yaml", base / "aliases" / "alliance.yaml"

    async def scenario() -> None:
        app = make_app(base / "config.yaml", slack_double, clock)
        try:
            await app.load_rules()
            assert fires(app, "USFK cuts") and not fires(app, "주한미군 감축")
            assert not await app.check_rules()  # nothing changed

            # An alias edit reaches every rule that uses the alias.
            alias_file.write_text("usfk: [USFK, U.S. Forces Korea, 주한미군]\n", encoding="utf-8")
            clock.advance(seconds=WATCH_INTERVAL.total_seconds())
            assert await app.check_rules()
            assert fires(app, "주한미군 감축")

            # A broken rule edit: the last good version keeps running, the notice says where.
            rule_file.write_text(RULE.replace("(cut*", "(cut* OR"), encoding="utf-8")
            clock.advance(seconds=WATCH_INTERVAL.total_seconds())
            assert await app.check_rules()
            assert fires(app, "USFK cuts")
            assert str(rule_file) in app.rt.rules.stale
            (problem,) = await notices(app, slack_double)
            assert f"{rule_file}:5:" in problem and "keeps running" in problem

            # Looking again within the interval reads nothing; unchanged files reload nothing.
            assert not await app.check_rules()
            clock.advance(seconds=WATCH_INTERVAL.total_seconds())
            assert not await app.check_rules()
            assert len(await notices(app, slack_double)) == 1

            # The fix takes effect and the notice is resolved.
            rule_file.write_text(RULE.replace("cut*", "withdraw*"), encoding="utf-8")
            clock.advance(seconds=WATCH_INTERVAL.total_seconds())
            assert await app.check_rules()
            assert fires(app, "USFK withdrawal") and not fires(app, "USFK cuts")
            assert not app.rt.rules.stale
            assert "loads again" in (await notices(app, slack_double))[-1]
        finally:
            await app.close()

    asyncio.run(scenario())


def test_a_broken_alias_file_keeps_its_aliases_and_names_the_line(
    tmp_path: Path, slack_double: SlackDouble, clock: FixedClock
) -> None:
    base = setup(tmp_path)
    alias_file = base / "aliases" / "alliance.yaml"

    async def scenario() -> None:
        app = make_app(base / "config.yaml", slack_double, clock)
        try:
            await app.load_rules()
            alias_file.write_text("usfk: [USFK, 'U.S. (Forces']\n", encoding="utf-8")
            clock.advance(seconds=2)
            assert await app.check_rules()
            assert fires(app, "U.S. Forces Korea to cut")  # the last good alias set
            (problem,) = await notices(app, slack_double)
            assert f"alias file {alias_file}:1:15:" in problem
            alias_file.write_text(ALIASES, encoding="utf-8")
            clock.advance(seconds=2)
            assert await app.check_rules()
            assert "loads again" in (await notices(app, slack_double))[-1]
        finally:
            await app.close()

    asyncio.run(scenario())


def test_an_edit_is_seen_within_five_seconds_even_when_size_and_time_stay(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    path = folder / "a.yaml"
    path.write_text("name: a\nquery: xx\n", encoding="utf-8")
    watch = FileWatch([folder, None])
    watch.mark()
    clock = FixedClock(datetime(2025, 1, 1, tzinfo=UTC))
    stat = path.stat()
    path.write_text("name: a\nquery: yy\n", encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert watch.changed(clock.now())
    assert not watch.changed(clock.now())
    (folder / "b.yml").write_text("name: b\nquery: zz\n", encoding="utf-8")
    assert not watch.changed(clock.now())  # within the interval: no look at the files
    clock.advance(seconds=WATCH_INTERVAL.total_seconds())
    assert watch.changed(clock.now())
    assert timedelta(seconds=5) > RULE_CHECK_INTERVAL + WATCH_INTERVAL


def test_one_broken_file_keeps_its_last_version_while_other_edits_apply_and_is_told_once(
    tmp_path: Path, slack_double: SlackDouble, clock: FixedClock
) -> None:
    base = setup(tmp_path)
    rule_file, other = base / "rules" / "usfk.yaml", base / "rules" / "other.yaml"
    other.write_text("name: other\nquery: opcon\n", encoding="utf-8")

    async def scenario() -> None:
        app = make_app(base / "config.yaml", slack_double, clock)
        try:
            await app.load_rules()
            for broken in (RULE.replace("@usfk", "@usfkk"), RULE + "channel: general\n"):
                rule_file.write_text(broken, encoding="utf-8")
                other.write_text(f"name: other\nquery: opcon{len(broken)}\n", encoding="utf-8")
                clock.advance(seconds=2)
                assert await app.check_rules()
                rules = app.rt.rules
                assert rules.by_name("other").query == f"opcon{len(broken)}"  # applied
                assert fires(app, "USFK cuts")  # the last good version
                assert [str(e.path) for e in rules.errors] == [str(rule_file)]
            # The file stayed broken across both reloads: one notice, not one per reload.
            assert len(await notices(app, slack_double)) == 1
        finally:
            await app.close()

    asyncio.run(scenario())


def test_the_running_bot_takes_an_edit_within_five_seconds(
    tmp_path: Path, slack_double: SlackDouble
) -> None:
    base = setup(tmp_path)
    rule_file = base / "rules" / "usfk.yaml"

    async def scenario() -> float:
        app = make_app(base / "config.yaml", slack_double, SystemClock())
        stop = asyncio.Event()
        runner = asyncio.create_task(app.run_forever(stop, start_spread=timedelta(hours=1)))
        try:
            async with asyncio.timeout(10):
                while not app.rt.rules.rules:
                    await asyncio.sleep(0.02)  # waiting for the start-up load, not for time
                started = time.monotonic()
                rule_file.write_text(RULE.replace("cut*", "withdraw*"), encoding="utf-8")
                while "withdraw" not in app.rt.rules.by_name("usfk").query:
                    await asyncio.sleep(0.02)  # waiting for the scheduler's check
            return time.monotonic() - started
        finally:
            stop.set()
            await runner
            await app.close()

    assert asyncio.run(scenario()) < 5.0
