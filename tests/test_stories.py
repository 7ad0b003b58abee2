"""One story, one thread: near-duplicates go into the first post's thread, which shows the count,
against the Slack double reached by the real slack-sdk client, with a controlled clock."""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from benchmarks.story_grouping import load_items, load_labels, measure
from bot.clock import FixedClock
from bot.config import load_config
from bot.deliver import DeliveryReport, deliver_due
from bot.errors import ConfigError
from bot.models import Article
from bot.pacing import Pace
from bot.runtime import Runtime
from bot.slack import EVENT_TYPE, SlackSender, TerminalSender
from bot.store import Store
from bot.story import (
    Recent,
    StoryGrouping,
    StoryPolicy,
    same_story,
    shingles,
    signature,
    signature_of_text,
    story_score,
)
from tests.e2e import Item, make_app, rss, write_config
from tests.factories import alert, article
from tests.feedserver import FeedServer
from tests.shared import CORPUS, need
from tests.slackdouble import TOKEN, SlackDouble
from tests.story_texts import LEAD, REWRITE

NOW = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)

OTHER = (
    "The Marine Corps will take back operational control of two divisions from the Army "
    "after fifty years, the defense ministry said, and plans a new operations command led "
    "by a three-star general to oversee amphibious forces on the western islands."
)


@pytest.fixture
def double(slack_double: SlackDouble, clock: FixedClock) -> Iterator[SlackDouble]:
    slack_double.clock = lambda: clock.now().timestamp()
    yield slack_double


def runtime(tmp_path: Path, double: SlackDouble, clock: FixedClock) -> Runtime:
    return Runtime(
        clock=clock,
        store=Store.open(tmp_path / "state.db"),
        sender=SlackSender(TOKEN, base_url=double.base_url, timeout=5.0),
        admin_channel=None,
        make_workers=lambda: ThreadPoolExecutor(1),
        pace=Pace(),
    )


def report(key: str, title: str, body: str, source: str) -> Article:
    return article(
        feed_key=key,
        cross_key=f"url:https://{source.lower().replace(' ', '')}.example/{key}",
        title=title,
        summary=body,
        link=f"https://{source.lower().replace(' ', '')}.example/{key}",
        source=source,
    )


def queue(
    rt: Runtime,
    articles: list[Article],
    channels: tuple[str, ...] = ("#korea",),
    policy: StoryPolicy | None = None,
) -> None:
    """Queue an alert per article and channel, grouped into stories as a poll does."""
    pairs = [
        (a, alert(channel=c, title=a.title, link=a.link, source=a.source, summary=(a.summary,)))
        for a in articles
        for c in channels
    ]
    grouping = StoryGrouping(policy or StoryPolicy(), {a.feed_key: signature(a) for a in articles})
    rt.store.record_poll(
        "wire", "u", articles, pairs, etag=None, last_modified=None, now=rt.clock.now(),
        stories=grouping,
    )  # fmt: skip


def run(rt: Runtime, passes: int = 3, every: float = 1.0) -> list[DeliveryReport]:
    rng = random.Random(3)

    async def main() -> list[DeliveryReport]:
        reports = []
        for _ in range(passes):
            reports.append(await deliver_due(rt, rng))
            rt.clock.advance(seconds=every)  # type: ignore[attr-defined]
        return reports

    return asyncio.run(main())


@contextmanager
def running(tmp_path: Path, double: SlackDouble, clock: FixedClock) -> Iterator[Runtime]:
    """A bot's runtime over the state in `tmp_path`, closed on leaving (a stop or a crash)."""
    rt = runtime(tmp_path, double, clock)
    try:
        yield rt
    finally:
        asyncio.run(rt.close())


def readable(message: dict[str, object]) -> str:
    return str(message.get("text", "")) + json.dumps(message.get("blocks", []), ensure_ascii=False)


FIRST = report("a1", "US Army deactivates helicopter squadron at Camp Humphreys", LEAD, "Wire One")
SECOND = report("b1", "US Army squadron at Camp Humphreys deactivated", REWRITE, "Wire Two")
THIRD = report("c1", "Helicopter squadron at Camp Humphreys deactivated", REWRITE, "Wire Three")
UNRELATED = report("d1", "Marines take back two divisions", OTHER, "Wire Two")


# -- the pure decision


def test_korean_rewrites_share_shingles_whatever_their_spacing_and_particles() -> None:
    spaced = shingles("평택기지 비행대대 운용 중단")
    assert shingles("평택기지 비행대대 운용중단") == spaced
    with_particle = shingles("평택기지 비행대대가 운용중단")
    assert len(spaced & with_particle) / len(spaced | with_particle) > 0.6


def test_a_rewrite_of_a_report_scores_high_and_another_story_low() -> None:
    first, rewrite, other = (signature(a) for a in (FIRST, SECOND, UNRELATED))
    assert story_score(first, rewrite) >= StoryPolicy().threshold
    assert story_score(first, other) < 0.2


def test_a_signature_survives_the_store_unchanged() -> None:
    sig = signature(FIRST)
    assert type(sig).decode(sig.encode()) == sig
    assert len(sig.hashes) <= 128 and list(sig.hashes) == sorted(sig.hashes)


def test_same_story_looks_only_inside_the_window_and_only_when_enabled() -> None:
    sig = signature(SECOND)
    old = Recent(1, 1, signature(FIRST), NOW - timedelta(hours=73))
    recent = Recent(2, 2, signature(FIRST), NOW - timedelta(hours=71))
    assert same_story(sig, [old], NOW, StoryPolicy()) is None
    assert same_story(sig, [old, recent], NOW, StoryPolicy()) == recent
    assert same_story(sig, [recent], NOW, StoryPolicy(enabled=False)) is None
    assert same_story(sig, [recent], NOW, StoryPolicy(threshold=1.0)) is None


def test_a_bare_headline_is_not_contained_in_every_article_using_its_words() -> None:
    headline = signature_of_text("Camp Humphreys squadron")
    assert story_score(headline, signature(FIRST)) < StoryPolicy().threshold


# -- delivery against the double


def test_a_near_duplicate_goes_into_the_thread_and_the_first_post_shows_the_count(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    with running(tmp_path, double, clock) as rt:
        queue(rt, [FIRST])
        run(rt)
        clock.advance(minutes=30)
        queue(rt, [SECOND, UNRELATED])
        run(rt)
        clock.advance(minutes=30)
        queue(rt, [THIRD])
        run(rt)
    top = double.top_level("#korea")
    assert [m["text"].split("|")[1].split(">")[0] for m in top] == [FIRST.title, UNRELATED.title]
    replies = double.replies("#korea", top[0]["ts"])
    assert len(replies) == 2
    assert "also reported by Wire Two" in replies[0]["text"]
    assert f"<{SECOND.link}|{SECOND.title}>" in replies[0]["text"]
    assert "also reported by Wire Three" in replies[1]["text"]
    assert replies[0]["metadata"]["event_type"] == EVENT_TYPE  # findable after a crash
    assert "also reported by 2 other sources" in readable(top[0])
    assert top[0]["metadata"]["event_type"] == EVENT_TYPE  # the update keeps the tag
    assert "also reported" not in readable(top[1])
    assert len(double.posts()) == 4  # nothing posted twice


def test_a_copy_after_the_window_is_a_new_post(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    with running(tmp_path, double, clock) as rt:
        queue(rt, [FIRST], policy=StoryPolicy(window=timedelta(hours=6)))
        run(rt)
        clock.advance(hours=7)
        queue(rt, [SECOND], policy=StoryPolicy(window=timedelta(hours=6)))
        run(rt)
    assert len(double.top_level("#korea")) == 2
    assert double.updates() == []


def test_each_channel_threads_its_own_copies(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    with running(tmp_path, double, clock) as rt:
        queue(rt, [FIRST], channels=("#korea",))
        run(rt)
        queue(rt, [SECOND], channels=("#korea", "#defense"))
        run(rt)
    assert len(double.top_level("#korea")) == 1
    assert len(double.replies("#korea", double.top_level("#korea")[0]["ts"])) == 1
    defense = double.top_level("#defense")
    assert len(defense) == 1 and SECOND.title in defense[0]["text"]  # its channel's first copy


def test_a_reply_waits_for_its_first_post_through_an_outage(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    with running(tmp_path, double, clock) as rt:
        double.fail_http(503, times=None)
        queue(rt, [FIRST])
        clock.advance(seconds=1)
        queue(rt, [SECOND, THIRD])
        run(rt, passes=5)
        assert double.messages() == []
        double.clear_faults()
        clock.advance(minutes=20)  # past every backoff
        run(rt, passes=5)
    top = double.top_level("#korea")
    assert len(top) == 1 and FIRST.title in top[0]["text"]
    assert len(double.replies("#korea", top[0]["ts"])) == 2
    assert "also reported by 2 other sources" in readable(top[0])


def test_an_update_that_fails_is_done_after_a_restart_and_nothing_is_posted_twice(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    with running(tmp_path, double, clock) as rt:  # the bot stops with the count not yet shown
        queue(rt, [FIRST])
        run(rt)
        double.fail_http(503, times=None, method="chat.update")
        queue(rt, [SECOND])
        run(rt)
    top = double.top_level("#korea")
    assert len(double.replies("#korea", top[0]["ts"])) == 1
    assert "also reported" not in readable(top[0])
    double.clear_faults()
    clock.advance(minutes=5)
    with running(tmp_path, double, clock) as restarted:
        run(restarted)
    top = double.top_level("#korea")
    assert "also reported by 1 other source" in readable(top[0])
    assert len(double.posts()) == 2 and len(double.replies("#korea", top[0]["ts"])) == 1


def test_a_reply_whose_answer_was_lost_is_found_in_the_thread_not_posted_again(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    with running(tmp_path, double, clock) as rt:
        queue(rt, [FIRST])
        run(rt)
        double.drop_after_accept(times=1)  # Slack takes the reply; the bot never hears so
        queue(rt, [SECOND])
        run(rt, passes=1)
    with running(tmp_path, double, clock) as restarted:
        clock.advance(minutes=20)
        reports = run(restarted)
    assert sum(r.reconciled for r in reports) == 1
    assert any(r.method == "conversations.replies" for r in double.requests)
    top = double.top_level("#korea")
    assert len(double.replies("#korea", top[0]["ts"])) == 1
    assert "also reported by 1 other source" in readable(top[0])


def test_a_reply_whose_first_post_was_parked_is_posted_on_its_own(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    with running(tmp_path, double, clock) as rt:
        queue(rt, [FIRST])
        clock.advance(seconds=1)
        queue(rt, [SECOND])
        double.fail_with("invalid_blocks", times=2)  # the first post, then its plain text
        run(rt, passes=4)
    top = double.top_level("#korea")
    assert len(top) == 1 and SECOND.title in top[0]["text"]
    assert "also reported by" not in top[0]["text"]
    assert double.updates() == []


def test_reports_from_one_source_count_once(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    again = replace(THIRD, feed_key="c2", source=FIRST.source, cross_key="url:x/c2")
    with running(tmp_path, double, clock) as rt:
        queue(rt, [FIRST, SECOND, again])
        run(rt, passes=4)
    top = double.top_level("#korea")
    assert len(double.replies("#korea", top[0]["ts"])) == 2
    assert "also reported by 1 other source" in readable(top[0])


def test_grouping_can_be_turned_off(tmp_path: Path, double: SlackDouble, clock: FixedClock) -> None:
    with running(tmp_path, double, clock) as rt:
        queue(rt, [FIRST, SECOND], policy=StoryPolicy(enabled=False))
        run(rt)
    assert len(double.top_level("#korea")) == 2


def test_feed_text_in_a_reply_is_escaped(
    tmp_path: Path, double: SlackDouble, clock: FixedClock
) -> None:
    hostile = replace(SECOND, source="<!channel> *Wire*", title="Squadron <@U1|boss> deactivated")
    with running(tmp_path, double, clock) as rt:
        queue(rt, [FIRST])
        run(rt)
        queue(rt, [hostile])
        run(rt)
    reply = double.replies("#korea", double.top_level("#korea")[0]["ts"])[0]
    text = readable(reply)
    assert "<!channel>" not in text and "<@U1" not in text and "*Wire*" not in text
    assert "&lt;!channel&gt;" in text


# -- configuration


def config_text(stories: str) -> str:
    return (
        'rules: rules/\nslack:\n  default_channel: "#news-alerts"\n'
        f"{stories}"
        "feeds:\n  - name: wire\n    url: https://wire.example/rss.xml\n"
    )


def test_the_stories_settings_are_read_and_default_to_three_days(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config_text(""), encoding="utf-8")
    assert load_config(path).stories == StoryPolicy(True, timedelta(hours=72), 0.5)
    path.write_text(
        config_text("stories:\n  window: 12h\n  threshold: 0.7\n  enabled: false\n"),
        encoding="utf-8",
    )
    assert load_config(path).stories == StoryPolicy(False, timedelta(hours=12), 0.7)
    path.write_text(config_text("stories:\n  edits: thread\n"), encoding="utf-8")
    assert load_config(path).stories.edits == "thread"


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ("window: 0s", "stories.window must be a positive duration"),
        ("window: soon", "not a duration"),
        ("threshold: 0", "stories.threshold"),
        ("threshold: 1.5", "stories.threshold"),
        ("threshold: high", "stories.threshold"),
        ("enabled: yes please", "stories.enabled"),
        ("edits: post", "stories.edits must be ignore or thread"),
        ("windows: 3d", "unknown key 'windows'"),
    ],
)
def test_bad_stories_settings_are_refused_with_their_line(
    tmp_path: Path, setting: str, reason: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config_text(f"stories:\n  {setting}\n"), encoding="utf-8")
    with pytest.raises(ConfigError, match=reason) as caught:
        load_config(path)
    assert caught.value.line == 5


# -- the real pipeline: feed server → bot → slack-sdk → double


RULE = "name: squadron\nchannel: '#korea'\nquery: squadron OR 비행대대\n"


def item(guid: str, title: str, body: str, when: datetime, site: str) -> Item:
    return Item(guid, title, body, when, link=f"https://{site}.example/{guid}")


def test_copies_from_other_feeds_thread_under_the_first_through_the_whole_bot(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "squadron.yaml").write_text(RULE, encoding="utf-8")
    urls = {name: feed_server.url(f"/{name}.xml") for name in ("one", "two")}
    feed_server.add("/one.xml", rss([], title="Wire One"))
    feed_server.add("/two.xml", rss([], title="Wire Two"))
    config = write_config(tmp_path, urls, rules=rules)

    async def scenario() -> None:
        app = make_app(config, double, clock)
        try:
            await app.run_once()
            clock.advance(minutes=10)
            first = item("a1", FIRST.title, LEAD, clock.now(), "one")
            feed_server.add("/one.xml", rss([first], title="Wire One"))
            await app.run_once()
            clock.advance(minutes=10)
            copy = item("b1", SECOND.title, REWRITE, clock.now(), "two")
            feed_server.add("/two.xml", rss([copy], title="Wire Two"))
            await app.run_once()
        finally:
            await app.close()

    asyncio.run(scenario())
    top = double.top_level("#korea")
    assert len(top) == 1 and FIRST.title in top[0]["text"]
    replies = double.replies("#korea", top[0]["ts"])
    assert len(replies) == 1 and "also reported by Wire Two" in replies[0]["text"]
    assert "also reported by 1 other source" in readable(top[0])


def test_an_article_edited_at_its_source_does_not_alert_again(
    tmp_path: Path, feed_server: FeedServer, double: SlackDouble, clock: FixedClock
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "squadron.yaml").write_text(RULE, encoding="utf-8")
    feed_server.add("/one.xml", rss([], title="Wire One"))
    config = write_config(tmp_path, {"one": feed_server.url("/one.xml")}, rules=rules)

    async def scenario() -> None:
        app = make_app(config, double, clock)
        try:
            await app.run_once()
            clock.advance(minutes=10)
            first = item("a1", FIRST.title, LEAD, clock.now(), "one")
            feed_server.add("/one.xml", rss([first], title="Wire One"))
            await app.run_once()
            assert len(double.messages()) == 1
            for minutes, edited in (
                (10, replace(first, title=f"UPDATED: {FIRST.title}")),
                (10, replace(first, body=f"{LEAD} The Army declined to comment.")),
                (10, replace(first, title="Army confirms squadron deactivation", body=OTHER)),
            ):
                clock.advance(minutes=minutes)
                feed_server.add("/one.xml", rss([edited], title="Wire One"))
                outcomes = await app.run_once()
                assert outcomes[0].status == "ok"  # a fresh 200 with the edited entry
        finally:
            await app.close()

    asyncio.run(scenario())
    assert len(double.messages()) == 1, "an edit is not a new article"
    assert double.updates() == []
    assert len(double.posts()) == 1


# -- the real story in the corpus


def test_the_battalion_story_in_the_corpus_is_a_few_posts_and_nothing_unrelated_joins() -> None:
    need(CORPUS / "items.jsonl")
    items = load_items(only_same_days=True)
    figures = measure(items, load_labels(), StoryPolicy())
    assert figures.baseline == 22
    assert figures.posts <= 4, "measured: 3 top-level posts for the 22 reports"
    assert figures.unrelated == 0, "no article of another story joins a thread"
    assert figures.recall >= 0.55, "measured: 0.63 of the same-story pairs threaded"


def test_without_slack_a_copy_prints_as_a_reply_under_its_story(
    tmp_path: Path, clock: FixedClock
) -> None:
    out = io.StringIO()
    rt = Runtime(
        clock=clock,
        store=Store.open(tmp_path / "state.db"),
        sender=TerminalSender(out),
        admin_channel=None,
        make_workers=lambda: ThreadPoolExecutor(1),
    )
    try:
        queue(rt, [FIRST])
        run(rt)
        queue(rt, [SECOND])
        run(rt)
    finally:
        asyncio.run(rt.close())
    printed = out.getvalue()
    assert printed.count(FIRST.title) == 1
    assert f"also reported by Wire Two: {SECOND.title} {SECOND.link}" in printed
