"""Real Korean feeds polled on loopback into the archive; backtests and search over them.

The shared corpus's Korean feeds are served by the feed server and polled once by the real bot
(shipped rules and aliases, every article alerting: `backlog: all`), alerts delivered to the
Slack double. `newswatch backtest` must then find exactly what went out.
"""

from __future__ import annotations

import asyncio
import html
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import main
from bot.clock import FixedClock
from tests.e2e import REPO, make_app, message_text, write_config
from tests.feedserver import FeedServer
from tests.shared import CORPUS, need
from tests.slackdouble import SlackDouble

pytestmark = pytest.mark.timeout(180)

POLLED_AT = datetime(2022, 8, 2, 0, 0, tzinfo=UTC)  # after the newest corpus feed
RULE = REPO / "rules" / "usfk-troop-levels.yaml"
# Ten Korean feeds (about 900 articles over ten days, two of them carrying some of the same
# articles), holding an alert for each shipped rule.
FEEDS = (
    "kr-chosun-politics-2022-07-29.xml",
    "kr-donga-all-2022-07-26.xml",
    "kr-donga-politics-2022-07-27.xml",
    "kr-merged-politics-2022-07-31.xml",
    "kr-newsis-international-2022-07-30.xml",
    "kr-newsis-politics-2022-07-28.xml",
    "kr-seoul-international-2022-07-23.xml",
    "kr-seoul-politics-2022-07-27.xml",
    "kr-tongilnews-all-2022-07-26.xml",
    "kr-tongilnews-all-2022-07-27.xml",
)
WHOLE_ARCHIVE = ("--since", "2022-07-01", "--until", "2022-08-03")


@dataclass(frozen=True)
class Polled:
    config: Path
    messages: list[dict[str, object]]  # what #korea-security received
    feeds: int


@pytest.fixture(scope="module")
def polled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Polled]:
    folder = need(CORPUS / "feeds")
    files = [need(folder / name) for name in FEEDS]
    tmp = tmp_path_factory.mktemp("archive")
    slack = SlackDouble()
    slack.start()
    try:
        with FeedServer() as server:
            for file in files:
                server.add_file(f"/{file.name}", file)
            config = write_config(
                tmp, {f.stem: server.url(f"/{f.name}") for f in files}, backlog="all"
            )

            async def poll() -> None:
                app = make_app(config, slack, FixedClock(POLLED_AT))
                try:
                    outcomes = await app.run_once()
                    assert all(o.status in ("ok", "degraded") for o in outcomes), outcomes
                    await app.drain()
                finally:
                    await app.close()

            asyncio.run(poll())
        yield Polled(config, slack.messages("#korea-security"), len(files))
    finally:
        slack.stop()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


_backtests: dict[str, dict[str, object]] = {}  # each rule text is tried once per module


def backtest(capsys: pytest.CaptureFixture[str], config: Path, rule: Path) -> dict[str, object]:
    key = f"{config}\0{rule.read_text(encoding='utf-8')}"
    if key not in _backtests:
        code, out, err = run(
            capsys, "--config", str(config), "backtest", str(rule), *WHOLE_ARCHIVE, "--json"
        )
        assert code == 0, err
        _backtests[key] = json.loads(out)
    return _backtests[key]


def alerted_links(messages: list[dict[str, object]], rule: str) -> list[str]:
    """The article link of every message that names `rule` (links are `<url|title>`)."""
    links = []
    for message in messages:
        text = message_text(message)
        if rule in text:
            for block in message.get("blocks", []):  # type: ignore[attr-defined]
                section = json.dumps(block, ensure_ascii=False)
                if "<http" in section:
                    start = section.index("<http") + 1
                    links.append(html.unescape(section[start : section.index("|", start)]))
                    break
    return links


@pytest.mark.parametrize("name", ["usfk-troop-levels", "opcon-transfer"])
def test_backtest_of_a_shipped_rule_finds_exactly_what_live_matching_alerted(
    polled: Polled, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    result = backtest(capsys, polled.config, REPO / "rules" / f"{name}.yaml")
    matches = result["matches"]
    assert isinstance(matches, list)
    live = alerted_links(polled.messages, name)
    assert live, "the corpus holds stories on both shipped topics"
    assert sorted(m["link"] for m in matches) == sorted(live)
    assert {m["outcome"] for m in matches} == {"alerted"}
    assert result["matched"] == result["alerted"] == len(live)
    assert all(m["terms"] for m in matches)
    assert result["scanned"] > 800  # the whole archive was read


def broader_rule(folder: Path) -> Path:
    """The USFK rule edited to be far broader (any mention of USFK, or 한미: ROK-US)."""
    path = folder / "usfk-troop-levels.yaml"
    path.write_text(
        'name: usfk-troop-levels\nchannel: "#korea-security"\nquery: "@usfk OR 한미"\n',
        encoding="utf-8",
    )
    return path


def test_a_broadened_rule_shows_more_matches_than_were_alerted(
    polled: Polled, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    result = backtest(capsys, polled.config, broader_rule(tmp_path))
    matches = result["matches"]
    assert isinstance(matches, list)
    outcomes = Counter(m["outcome"] for m in matches)
    assert outcomes["not alerted"] > 0
    assert outcomes["alerted"] == len(alerted_links(polled.messages, "usfk-troop-levels"))
    # the articles the channel got for the other rule only are told apart
    assert outcomes["alerted by other rules"] == len(alerted_links(polled.messages, "opcon"))
    assert result["matched"] == sum(outcomes.values()) > result["alerted"]  # type: ignore[operator]


def test_backtest_counts_matches_and_alerts_per_day_of_publication(
    polled: Polled, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    result = backtest(capsys, polled.config, broader_rule(tmp_path))
    matches = result["matches"]
    days = result["days"]
    assert isinstance(matches, list) and isinstance(days, list)
    by_day = Counter(m["at"][:10] for m in matches)  # display timezone UTC
    assert len(by_day) >= 3, "the corpus spans several days"
    assert [(d["day"], d["matched"]) for d in days] == sorted(by_day.items())
    with sqlite3.connect(polled.config.parent / "state.db") as db:
        contents = [json.loads(c) for (c,) in db.execute("SELECT content FROM alerts")]
    live = Counter(c["published"][:10] for c in contents if "usfk-troop-levels" in c["rules"])
    assert {d["day"]: d["alerted"] for d in days if d["alerted"]} == dict(live)


def test_the_text_report_marks_alerts_and_lists_the_days(
    polled: Polled, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "--config", str(polled.config), "backtest", str(RULE), *WHOLE_ARCHIVE
    )
    assert code == 0, err
    assert "ALERTED" in out and "matched:" in out
    assert "per day (UTC):  matched  alerted" in out
    assert "window starts before the retention (30 days)" in err  # 2022 is long gone by now


def test_search_finds_a_korean_word_followed_by_its_particle(
    polled: Polled, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "--config", str(polled.config), "search", "주한미군", "--limit", "100"
    )
    assert code == 0, err
    with_particle = [
        line for line in out.splitlines() if any(f"[주한미군]{p}" in line for p in "은는이가을의")
    ]
    assert with_particle, out
    times = [line[:16] for line in out.splitlines() if line[:2] == "20"]
    assert times == sorted(times, reverse=True), "newest first"


def test_search_finds_a_two_syllable_korean_word_the_index_cannot_hold(
    polled: Polled, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--config", str(polled.config), "search", "사드")
    assert code == 0, err
    assert "[사드]" in out
    alone = int(out.splitlines()[-1].split()[0])
    code, out, err = run(capsys, "--config", str(polled.config), "search", "주한미군 사드")
    assert code == 0, err
    lines = out.splitlines()
    snippets = [lines[i + 1] for i, line in enumerate(lines) if line[:2] == "20"]
    assert 0 < len(snippets) < alone
    assert all("[주한미군]" in snippet for snippet in snippets)


@pytest.mark.parametrize("query", ['"주한미군', "title:(troops", "x AND", "nosuchfield: x"])
def test_a_search_syntax_error_is_a_clear_error(
    polled: Polled, capsys: pytest.CaptureFixture[str], query: str
) -> None:
    code, _, err = run(capsys, "--config", str(polled.config), "search", query)
    assert code == 2
    assert err.startswith(f"error: search {query!r}: not a valid search")
    assert "Traceback" not in err


def test_search_input_cannot_reach_the_sql(
    polled: Polled, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "--config", str(polled.config), "search", "x'); DROP TABLE archive; --")
    code, out, _ = run(capsys, "--config", str(polled.config), "search", "주한미군")
    assert code == 0 and out.splitlines()[-1] != "0 articles"
