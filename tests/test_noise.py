"""Noise control's pure parts: quiet-hour windows (midnight, DST), digest fire times, the
routing of alerts, batches, and the rule and config keys with their file:line errors."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import load_config
from bot.errors import ConfigError, RuleError
from bot.models import Batch, Digest, QuietHours, Rule
from bot.noise import (
    MAX_BATCH_KEPT,
    HeldRow,
    Hold,
    NoiseSettings,
    Plan,
    Recent,
    batches,
    plan_alerts,
    quiet_until,
)
from bot.render import MAX_TEXT, render_message
from bot.render_batch import render_batch, render_terminal_batch
from bot.rules import load_rule
from bot.scheduler import next_fire
from bot.slack import checked_blocks
from bot.store import Store
from bot.story import signature_of_text
from tests.factories import MENTIONS, alert, article, displayed_texts, write
from tests.test_cli import newswatch

SEOUL_NIGHT = QuietHours(time(22, 0), time(7, 0), "Asia/Seoul")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- quiet hours


@pytest.mark.parametrize(
    ("now", "end"),
    [
        (utc(2025, 7, 31, 12, 59), None),  # 21:59 in Seoul
        (utc(2025, 7, 31, 13, 0), utc(2025, 7, 31, 22, 0)),  # 22:00: starts
        (utc(2025, 7, 31, 15, 30), utc(2025, 7, 31, 22, 0)),  # 00:30, past midnight
        (utc(2025, 7, 31, 21, 59), utc(2025, 7, 31, 22, 0)),  # 06:59
        (utc(2025, 7, 31, 22, 0), None),  # 07:00: over
        (utc(2025, 7, 31, 6, 0), None),  # 15:00
    ],
)
def test_quiet_hours_over_midnight_end_at_the_next_morning(
    now: datetime, end: datetime | None
) -> None:
    assert quiet_until(SEOUL_NIGHT, now) == end


def test_quiet_hours_within_one_day() -> None:
    lunch = QuietHours(time(12, 0), time(13, 0), "UTC")
    assert quiet_until(lunch, utc(2025, 7, 31, 12, 30)) == utc(2025, 7, 31, 13, 0)
    assert quiet_until(lunch, utc(2025, 7, 31, 13, 30)) is None


def test_quiet_hours_across_the_spring_dst_change_last_one_hour_less() -> None:
    night = QuietHours(time(1, 0), time(4, 0), "America/New_York")  # 9 March 2025: 2:00 → 3:00
    start = utc(2025, 3, 9, 6, 0)  # 01:00 EST
    end = quiet_until(night, start)
    assert end == utc(2025, 3, 9, 8, 0)  # 04:00 EDT: two real hours, not three
    assert quiet_until(night, end - timedelta(seconds=1)) == end
    assert quiet_until(night, end) is None


def test_quiet_hours_across_the_autumn_dst_change_last_one_hour_more() -> None:
    night = QuietHours(time(0, 0), time(3, 0), "America/New_York")  # 2 Nov 2025: 2:00 → 1:00
    end = quiet_until(night, utc(2025, 11, 2, 4, 0))  # midnight EDT
    assert end == utc(2025, 11, 2, 8, 0)  # 03:00 EST: four real hours
    assert quiet_until(night, utc(2025, 11, 2, 6, 30)) == end  # 01:30 the second time


# -- digest times


def test_next_fire_is_nine_in_seoul_at_or_after_the_time_given() -> None:
    assert next_fire("0 9 * * *", "Asia/Seoul", utc(2025, 7, 31, 6, 0)) == utc(2025, 8, 1, 0, 0)
    assert next_fire("0 9 * * *", "Asia/Seoul", utc(2025, 8, 1, 0, 0)) == utc(2025, 8, 1, 0, 0)
    assert next_fire("0 9 * * 1-5", "Asia/Seoul", utc(2025, 8, 1, 0, 1)) == utc(2025, 8, 4, 0, 0)


@pytest.mark.parametrize(
    ("weekdays", "fires_on"),
    [("0", 3), ("7", 3), ("sun", 3), ("1-5", 4), ("mon-fri", 4), ("6", 2), ("*/2", 2), ("2,4", 5)],
)
def test_digest_weekdays_are_numbered_as_crontab_numbers_them(weekdays: str, fires_on: int) -> None:
    """0 and 7 are Sunday, 1 Monday (APScheduler 3's own numbers start at Monday = 0)."""
    friday_after_nine = utc(2025, 8, 1, 0, 1)  # Friday 1 August, 09:01 in Seoul
    fire = next_fire(f"0 9 * * {weekdays}", "Asia/Seoul", friday_after_nine)
    assert fire == utc(2025, 8, fires_on, 0, 0)


def test_a_digest_time_skipped_by_dst_fires_after_the_gap() -> None:
    fire = next_fire("30 2 * * *", "America/New_York", utc(2025, 3, 9, 5, 0))
    assert fire == utc(2025, 3, 9, 7, 30)  # 03:30 EDT, the same day


def test_a_digest_time_repeated_by_dst_fires_once_at_its_first_instant() -> None:
    """2 November 2025 in New York: 01:30 EDT (05:30 UTC), then 01:30 EST (06:30 UTC)."""
    before = next_fire("30 1 * * *", "America/New_York", utc(2025, 11, 2, 4, 0))
    assert before == utc(2025, 11, 2, 5, 30)
    between = next_fire("30 1 * * *", "America/New_York", utc(2025, 11, 2, 5, 30, 1))
    assert between == utc(2025, 11, 3, 6, 30)  # not the second 01:30 of the same night
    hourly = next_fire("30 * * * *", "America/New_York", utc(2025, 11, 2, 5, 31))
    assert hourly == utc(2025, 11, 2, 7, 30)  # 02:30 EST: 01:30 went out once already


# -- routing


def rule(name: str, **changes: object) -> Rule:
    return replace(Rule(name=name, query="x", channel="#news"), **changes)  # type: ignore[arg-type]


DAILY = Digest("0 9 * * *", "Asia/Seoul")
NOW = utc(2025, 7, 31, 6, 0)


def alerts(*rules: str, n: int = 1, channel: str = "#news") -> list[tuple[object, object]]:
    return [
        (
            article(feed_key=f"k{i}", cross_key=f"url:{i}"),
            alert(channel=channel, rules=rules, title=f"t{i}"),
        )
        for i in range(n)
    ]


def test_an_immediate_rule_posts_with_its_mention_and_a_digest_rule_holds_until_nine() -> None:
    rules = {"now": rule("now", mention="here"), "later": rule("later", digest=DAILY)}
    plan = plan_alerts(alerts("now") + alerts("later"), rules, NoiseSettings(), Recent(), NOW)
    ((_, posted),) = plan.immediate
    assert posted.mentions == ("here",)
    (held,) = plan.holds
    assert (held.kind, held.rule, held.release_at) == ("digest", "later", utc(2025, 8, 1, 0, 0))


def test_an_article_both_rules_match_posts_now_and_is_not_held_for_the_digest() -> None:
    rules = {"now": rule("now"), "later": rule("later", digest=DAILY, mention="channel")}
    plan = plan_alerts(alerts("now", "later"), rules, NoiseSettings(), Recent(), NOW)
    assert len(plan.immediate) == 1 and plan.holds == ()
    assert plan.immediate[0][1].mentions == ()  # the digest rule does not mention now


def test_a_cap_counts_the_rolling_hour_and_notes_once() -> None:
    capped = {"r": rule("r", max_per_hour=3)}
    recent = Recent(counts={"r": 1}, oldest={"r": NOW - timedelta(minutes=40)})
    plan = plan_alerts(alerts("r", n=5), capped, NoiseSettings({}, "Asia/Seoul"), recent, NOW)
    assert len(plan.immediate) == 2 and len(plan.holds) == 3
    assert {h.release_at for h in plan.holds} == {NOW + timedelta(minutes=20)}
    assert {h.kind for h in plan.holds} == {"catch-up"}
    (note,) = plan.notes
    assert "2025-07-31 15:20 KST" in note.text
    noted = replace(recent, counts={"r": 3}, noted={"r": NOW - timedelta(minutes=59)})
    assert plan_alerts(alerts("r"), capped, NoiseSettings(), noted, NOW).notes == ()
    noted = replace(noted, noted={"r": NOW - timedelta(minutes=60)})
    assert len(plan_alerts(alerts("r"), capped, NoiseSettings(), noted, NOW).notes) == 1


def test_quiet_hours_hold_the_channels_alerts_but_not_other_channels() -> None:
    settings = NoiseSettings({"#night": SEOUL_NIGHT})
    late = utc(2025, 7, 31, 14, 0)  # 23:00 in Seoul
    both = alerts("r", channel="#night") + alerts("r", channel="#day")
    plan = plan_alerts(both, {"r": rule("r")}, settings, Recent(), late)
    assert [c.channel for _, c in plan.immediate] == ["#day"]
    (held,) = plan.holds
    assert (held.kind, held.channel, held.release_at) == ("quiet", "#night", utc(2025, 7, 31, 22))


def test_a_copy_of_a_story_in_its_channel_posts_unmentioned_uncounted_or_waits_out_the_night() -> (
    None
):
    rules = {"r": rule("r", max_per_hour=1, mention="here"), "d": rule("d", digest=DAILY)}
    full = Recent(counts={"r": 1}, oldest={"r": NOW})
    copies = {("#news", "url:0")}
    plan = plan_alerts(alerts("r"), rules, NoiseSettings(), full, NOW, copies=copies)
    ((_, posted),) = plan.immediate
    assert posted.mentions == () and plan.spoke == () and plan.notes == () and plan.holds == ()
    plan = plan_alerts(alerts("d"), rules, NoiseSettings(), Recent(), NOW, copies=copies)
    assert len(plan.immediate) == 1 and plan.holds == ()
    late = utc(2025, 7, 31, 14, 0)  # 23:00 in Seoul
    night = NoiseSettings({"#news": SEOUL_NIGHT})
    plan = plan_alerts(alerts("r", n=2), rules, night, Recent(), late, copies=copies)
    ((_, waiting, due),) = plan.later
    assert due == utc(2025, 7, 31, 22) and waiting.mentions == ()
    assert plan.immediate == () and [h.cross_key for h in plan.holds] == ["url:1"]


def row(id_: int, kind: str, key: str, release: datetime, posted: bool = False) -> HeldRow:
    content = alert(title=key, mentions=("here",) if kind == "quiet" else ())
    hold = Hold(kind, "#news", "r" if kind != "quiet" else "", key, content, release)
    return HeldRow(id_, hold, release - timedelta(hours=1), posted)


def test_batches_group_due_holds_and_drop_those_posted_another_way() -> None:
    rows = [
        row(1, "digest", "a", NOW),
        row(2, "digest", "b", NOW, posted=True),
        row(3, "digest", "c", NOW + timedelta(seconds=1)),  # not due
        row(4, "quiet", "d", NOW),
        row(5, "digest", "a", NOW),  # the same article held twice: listed once
    ]
    release = batches(rows, NOW, NoiseSettings())
    assert release.dropped == (2,)
    found = {b.kind: (tuple(c.title for c in b.items), ids) for b, ids in release.batches}
    assert found == {"digest": (("a",), (1, 5)), "quiet": (("d",), (4,))}


def test_a_digest_due_in_the_channels_quiet_hours_waits_for_their_end() -> None:
    settings = NoiseSettings({"#news": SEOUL_NIGHT})
    late = utc(2025, 7, 31, 14, 0)
    assert batches([row(1, "digest", "a", late)], late, settings).batches == ()
    morning = utc(2025, 7, 31, 22, 0)  # 07:00 in Seoul
    assert len(batches([row(1, "digest", "a", late)], morning, settings).batches) == 1


def test_a_quiet_hours_batch_missed_until_the_next_night_goes_out_with_that_nights() -> None:
    settings = NoiseSettings({"#news": SEOUL_NIGHT})
    last_end, next_night = utc(2025, 7, 30, 22, 0), utc(2025, 7, 31, 14, 0)
    rows = [row(1, "quiet", "a", last_end), row(2, "quiet", "b", utc(2025, 7, 31, 22, 0))]
    assert batches(rows, next_night, settings).batches == ()
    ((batch, ids),) = batches(rows, utc(2025, 7, 31, 22, 0), settings).batches
    assert ids == (1, 2) and batch.total == 2


def test_a_batch_prints_in_a_terminal_with_its_times_in_the_display_timezone() -> None:
    items = tuple(alert(title=f"Story {n}") for n in range(30))
    out = render_terminal_batch(Batch("#news", "digest", "r", items, 31), ZoneInfo("Asia/Seoul"))
    lines = out.splitlines()
    assert lines[0] == "[#news] Digest · r · 31 matches"
    assert lines[1].startswith("  - Story 0 · Example Daily · 2025-07-31 14:38 KST https://")
    assert lines[-1] == "  and 6 more" and len(lines) == 27


# -- the keys, checked with file and line


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("delivery: weekly\n", 3, "delivery must be 'immediate' or a mapping"),
        ("delivery:\n  digest: '0 25 * * *'\n  timezone: UTC\n", 4, "delivery.digest '0 25"),
        ("delivery:\n  digest: '0 9 * *'\n  timezone: UTC\n", 4, "Wrong number of fields"),
        ("delivery:\n  digest: '0 9 * * *'\n  timezone: Mars/Base\n", 5, "delivery.timezone"),
        ("delivery:\n  digest: '0 9 * * *'\n", 3, "delivery.timezone"),
        ("delivery:\n  digest: '0 9 * * *'\n  timezone: UTC\n  at: 9\n", 6, "unknown key 'at'"),
        ("max_per_hour: 0\n", 3, "max_per_hour must be a whole number"),
        ("max_per_hour: true\n", 3, "max_per_hour must be a whole number"),
        ("mention: '@here'\n", 3, "mention must be a user group"),
        ("mention: '<!everyone>'\n", 3, "mention must be a user group"),
        ("mention: '<@U1|boss>'\n", 3, "mention must be a user group"),
    ],
)
def test_bad_noise_keys_are_refused_at_their_line(
    tmp_path: Path, body: str, line: int, reason: str
) -> None:
    path = write(tmp_path, "r.yaml", f"name: r\nquery: korea\n{body}")
    with pytest.raises(RuleError) as caught:
        load_rule(path, "#news")
    assert caught.value.line == line
    assert reason in caught.value.reason


def test_good_noise_keys_load(tmp_path: Path) -> None:
    text = (
        "name: r\nquery: korea\nmention: '<!subteam^S0ALLY>'\nmax_per_hour: 4\n"
        "delivery:\n  digest: '0  9 * * 1-5'\n  timezone: Asia/Seoul\n"
    )
    loaded = load_rule(write(tmp_path, "r.yaml", text), "#news")
    assert loaded.digest == Digest("0 9 * * 1-5", "Asia/Seoul")
    assert (loaded.max_per_hour, loaded.mention) == (4, "<!subteam^S0ALLY>")
    plain = load_rule(write(tmp_path, "p.yaml", "name: p\nquery: k\n"), "#n")
    assert (plain.digest, plain.max_per_hour, plain.mention) == (None, None, None)


def config_text(channels: str) -> str:
    return (
        f'slack:\n  default_channel: "#news"\ndisplay_timezone: Asia/Seoul\nfeeds: []\n{channels}'
    )


def test_quiet_hours_in_the_config_default_to_the_display_timezone(tmp_path: Path) -> None:
    text = config_text("channels:\n  '#night': {quiet_hours: '22:00-07:00'}\n")
    config = load_config(write(tmp_path, "config.yaml", text))
    assert config.quiet_hours == {"#night": SEOUL_NIGHT}


@pytest.mark.parametrize(
    ("channels", "line", "reason"),
    [
        ("channels: [x]\n", 5, "channels must be a mapping"),
        ("channels:\n  night: {quiet_hours: '22:00-07:00'}\n", 6, "is not a channel"),
        ("channels:\n  '#n':\n    quiet_hours: '22-7'\n", 7, "quiet_hours must be 'HH:MM-HH:MM'"),
        ("channels:\n  '#n':\n    quiet_hours: '24:00-07:00'\n", 7, "quiet_hours must be"),
        ("channels:\n  '#n':\n    quiet_hours: '07:00-07:00'\n", 7, "same time"),
        (
            "channels:\n  '#n':\n    quiet_hours: '22:00-07:00'\n    timezone: Nowhere\n",
            8,
            "timezone must name a time zone",
        ),
        ("channels:\n  '#n':\n    quiet: '22:00-07:00'\n", 7, "unknown key 'quiet'"),
    ],
)
def test_bad_quiet_hours_are_refused_at_their_line(
    tmp_path: Path, channels: str, line: int, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "config.yaml", config_text(channels)))
    assert f"config.yaml:{line}:" in str(caught.value)
    assert reason in str(caught.value)


# -- batches as messages


def test_a_batch_of_hundreds_stays_within_slacks_limits_and_counts_the_rest() -> None:
    long_link = "https://news.example/" + "a" * 1900
    items = tuple(
        alert(title=f"Story {n} " + "word " * 40, link=long_link if n % 2 else None)
        for n in range(MAX_BATCH_KEPT)
    )
    batch = Batch("#news", "digest", "r", items, total=340, mentions=("here",), since=NOW)
    message = render_batch(batch, ZoneInfo("Asia/Seoul"))
    assert checked_blocks("#news", message.blocks) is not None  # every limit kept
    assert len(message.text) <= MAX_TEXT
    listed = sum(str(b.get("text", {})).count("• ") for b in message.blocks)  # type: ignore[union-attr]
    assert f"and {340 - listed} more" in json.dumps(message.blocks)
    shown_in_text = message.text.count("• ")
    assert message.text.endswith(f"and {340 - shown_in_text} more")
    assert message.text.startswith(
        "<!here> *Digest* · r · 340 matches · since 2025-07-31 15:00 KST"
    )


def test_a_small_batch_lists_every_alert_in_the_display_timezone() -> None:
    items = (alert(title="One"), alert(title="Two <!channel>", link=None, published=None))
    message = render_batch(Batch("#news", "quiet", "", items, 2), ZoneInfo("Asia/Seoul"))
    assert "more" not in message.text
    lines = message.text.splitlines()
    assert lines[0] == "*Held during quiet hours* · 2 matches"
    assert lines[1].endswith("Example Daily · 2025-07-31 14:38 KST")
    assert lines[2] == "• Two &lt;!channel&gt; · Example Daily · time unknown"


@pytest.mark.parametrize("attempt", MENTIONS)
def test_no_feed_text_in_a_batch_becomes_a_mention_or_a_link(attempt: str) -> None:
    item = alert(title=f"{attempt} title", source=f"{attempt} wire", link=None)
    for kind in ("digest", "catch-up", "quiet"):
        batch = Batch("#news", kind, "r", (item,), 1, mentions=("channel",))
        message = render_batch(batch)
        for text in displayed_texts(message.text, message.blocks):
            assert re.findall(r"<[^>]*>", text) in ([], ["<!channel>"])


def test_an_alert_carries_its_rules_mention_and_never_one_from_the_feed() -> None:
    message = render_message(alert(title="<!here> @channel", mentions=("<@U024BE7LH>",)))
    shown = "\n".join(displayed_texts(message.text, message.blocks))
    assert re.findall(r"<[!@][^>]*>", shown) == ["<@U024BE7LH>", "<@U024BE7LH>"]
    assert message.text.startswith("<@U024BE7LH> ")
    plain = render_message(alert(mentions=("<!everyone>",)))  # not an allowed form: dropped
    assert "<!" not in plain.text


# -- the commands


def test_check_reports_a_bad_digest_and_bad_quiet_hours_with_their_lines(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    write(
        rules, "a.yaml", "name: a\nquery: korea\ndelivery:\n  digest: '0 9 * *'\n  timezone: UTC\n"
    )
    config = write(tmp_path, "config.yaml", config_text("") + "rules: rules/\n")
    result = newswatch("--config", str(config), "check")
    assert result.returncode == 1
    assert f"{rules / 'a.yaml'}:4: delivery.digest '0 9 * *'" in result.stdout
    write(tmp_path, "config.yaml", config_text("channels:\n  '#n': {quiet_hours: '9-5'}\n"))
    result = newswatch("--config", str(config), "check")
    assert result.returncode == 1
    assert f"{config}:6: channels.#n: quiet_hours must be 'HH:MM-HH:MM'" in result.stdout


def test_status_tells_how_many_alerts_are_held_and_when_the_next_go_out(tmp_path: Path) -> None:
    config = write(tmp_path, "config.yaml", config_text("database: state.db\n"))
    store = Store.open(tmp_path / "state.db")
    hold = Hold("digest", "#news", "r", "url:a", alert(), utc(2025, 8, 1, 0, 0))
    store.record_poll(
        "wire",
        "u",
        [article()],
        [],
        etag=None,
        last_modified=None,
        now=NOW,
        noise=Plan(holds=(hold,)),
    )
    store.close()
    result = newswatch("--config", str(config), "status")
    assert (
        "held: 1 alerts for digests, caps and quiet hours; the next go out 2025-08-01 09:00 KST"
        in (result.stdout)
    )


STORY = (
    "The US Army deactivated an attack helicopter squadron at Camp Humphreys in Pyeongtaek "
    "last month, a Congressional Research Service report said on Thursday, as Washington "
    "reviews the size and role of its forces in South Korea."
)
OTHER_STORY = (
    "The Marine Corps will take back operational control of two divisions from the Army "
    "after fifty years, the defense ministry said, with a new command on the western islands."
)


def story_row(id_: int, key: str, source: str, text: str) -> HeldRow:
    content = alert(title=key, source=source)
    sig = signature_of_text(text).encode()
    return HeldRow(id_, Hold("quiet", "#news", "", key, content, NOW, sig), NOW)


def test_copies_held_for_one_batch_are_listed_once_with_their_sources() -> None:
    rows = [
        story_row(1, "first", "Wire One", STORY),
        story_row(2, "other", "Wire Two", OTHER_STORY),
        story_row(3, "copy", "Wire <!channel>", STORY + " Officials declined to comment."),
        story_row(4, "again", "Wire One", STORY),  # its own source again: not named twice
    ]
    folded = batches(rows, NOW, NoiseSettings(fold_threshold=0.5))
    ((batch, ids),) = folded.batches
    assert ids == (1, 2, 3, 4), "every hold is carried by the batch"
    assert [c.title for c in batch.items] == ["first", "other"] and batch.total == 2
    assert batch.also == (("Wire <!channel>",), ())
    message = render_batch(batch)
    assert "also reported by Wire &lt;!channel&gt;" in message.text
    assert "<!channel>" not in json.dumps(message.blocks)
    assert "first · Wire One" in render_terminal_batch(batch).splitlines()[1]
    assert "also reported by Wire" in render_terminal_batch(batch).splitlines()[1]
    apart = batches(rows, NOW, NoiseSettings())  # stories turned off: one line each
    assert [c.title for c in apart.batches[0][0].items] == ["first", "other", "copy", "again"]
