"""The `newswatch` command as users run it: check, match, the offline demo, status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e import REPO

DEMO_FEED = REPO / "examples" / "demo-feed.xml"


def newswatch(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SLACK_BOT_TOKEN", "SLACK_API_URL")}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_passes_on_the_shipped_config_and_rules() -> None:
    result = newswatch("--config", str(REPO / "config.yaml"), "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 problems" in result.stdout


def test_check_reports_every_broken_rule_with_file_line_and_column(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text("name: a\nquery: >-\n  troops AND\n  (korea\n", encoding="utf-8")
    (rules / "b.yaml").write_text("name: b\nquery: korea\ncolour: red\n", encoding="utf-8")
    (rules / "c.yaml").write_text("name: c\nquery: korea\n", encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        'rules: rules/\nslack:\n  default_channel: "#news"\nfeeds: []\n', encoding="utf-8"
    )
    result = newswatch("--config", str(config), "check")
    assert result.returncode == 1
    assert f"{rules / 'a.yaml'}:4:3: query:" in result.stdout
    assert f"{rules / 'b.yaml'}:3: unknown key 'colour'" in result.stdout
    assert "1 of 3 rules OK, 2 problems" in result.stdout


def test_check_reports_a_broken_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("slack:\n  default_channel: news\nfeeds: []\n", encoding="utf-8")
    result = newswatch("--config", str(config), "check")
    assert result.returncode == 1
    assert f"{config}:2: slack.default_channel" in result.stdout


def test_match_json_prints_one_object_per_match() -> None:
    result = newswatch(
        "--config", "/nonexistent.yaml", "match", "--rules", "rules", "--json", str(DEMO_FEED)
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"rule", "title", "link", "matched"} <= set(rows[0])
    by_rule: dict[str, set[str]] = {}
    for row in rows:
        by_rule.setdefault(row["rule"], set()).add(row["link"])
        assert row["matched"], "every match names the terms that fired"
    assert len(by_rule["usfk-troop-levels"]) == 1
    assert len(by_rule["opcon-transfer"]) == 2  # the English and the Korean article
    titles = {row["title"] for row in rows}
    assert not any("North Korea" in t or "Airport" in t for t in titles)  # the near misses


def test_match_reports_an_unreadable_source_and_goes_on(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text("<html>nope</html>", encoding="utf-8")
    result = newswatch(
        "--config", "/nonexistent.yaml", "match", "--rules", "rules", str(broken), str(DEMO_FEED)
    )
    assert result.returncode == 1
    assert "broken" in result.stderr
    assert "opcon-transfer" in result.stdout


def test_the_offline_demo_prints_alerts_to_the_terminal(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "\n".join(
            [
                f"rules: {REPO / 'rules'}",
                f"aliases: {REPO / 'aliases'}",
                "database: demo.db",
                "slack:",
                '  default_channel: "#news-alerts"',
                "workers: 1",
                "feeds:",
                "  - name: demo",
                f"    url: {DEMO_FEED}",
                "    backlog: all",
            ]
        ),
        encoding="utf-8",
    )
    first = newswatch("--config", str(config), "run", "--once")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("#korea-security") == 3
    assert "feed=demo status=ok new=5" in first.stderr  # the one log line per poll
    again = newswatch("--config", str(config), "run", "--once")
    assert "#korea-security" not in again.stdout  # nothing twice
    status = newswatch("--config", str(config), "status")
    assert "alerts: 0 pending, 3 sent" in status.stdout


def test_the_demo_config_that_make_demo_uses_is_valid() -> None:
    result = newswatch("--config", str(REPO / "examples" / "demo-config.yaml"), "check")
    assert result.returncode == 0, result.stdout


def test_check_reports_unknown_aliases_duplicates_and_queries_that_can_never_match(
    tmp_path: Path,
) -> None:
    rules, aliases = tmp_path / "rules", tmp_path / "aliases"
    rules.mkdir()
    aliases.mkdir()
    (aliases / "a.yaml").write_text("usfk: [USFK, 주한미군]\nempty: []\n", encoding="utf-8")
    (aliases / "b.yaml").write_text("usfk: [USFK]\n", encoding="utf-8")
    (rules / "a.yaml").write_text("name: a\nquery: >-\n  troops\n  @usfck\n", encoding="utf-8")
    (rules / "b.yaml").write_text("name: b\nquery: '@usfk cut*'\n", encoding="utf-8")
    (rules / "f.yaml").write_text("name: b\nquery: korea\n", encoding="utf-8")
    (rules / "c.yaml").write_text("name: c\nquery: '@empty OR x'\n", encoding="utf-8")
    (rules / "d.yaml").write_text(
        "name: d\nfields: [summary]\nquery: title:(@usfk)\n", encoding="utf-8"
    )
    (rules / "e.yaml").write_text("name: e\nquery: korea NOT korea\n", encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        'rules: rules/\naliases: aliases/\nslack:\n  default_channel: "#news"\nfeeds: []\n',
        encoding="utf-8",
    )
    result = newswatch("--config", str(config), "check")
    assert result.returncode == 1
    out = result.stdout
    assert f"{aliases / 'b.yaml'}: alias 'usfk' is also defined in {aliases / 'a.yaml'}" in out
    assert f"{rules / 'a.yaml'}:4:3: query: unknown alias @usfck (known: @empty, @usfk)" in out
    assert f"{rules / 'f.yaml'}: duplicate rule name 'b' (also in {rules / 'b.yaml'})" in out
    assert f"{rules / 'c.yaml'}:2:9: query: alias @empty is empty: it can never match" in out
    assert f"{rules / 'd.yaml'}:3:8: query: can never match: title: is outside" in out
    assert f"{rules / 'e.yaml'}:2:14: query: the query can never match" in out
    assert "2 aliases, 1 of 6 rules OK, 6 problems" in out


def test_match_explain_shows_each_term_its_field_and_sentence() -> None:
    result = newswatch(
        "--config", "/nonexistent.yaml", "match", "--rules", "rules", "--explain", str(DEMO_FEED)
    )
    assert result.returncode == 0, result.stderr
    assert "    summary: " in result.stdout
    assert "[28,500]" in result.stdout  # the term, marked inside its sentence
    rows = newswatch(
        "--config", "/nonexistent.yaml", "match", "--rules", "rules", "--json", str(DEMO_FEED)
    )
    explained = [json.loads(line)["explanation"] for line in rows.stdout.splitlines()]
    assert all(explained), "every match says why"
    for reasons in explained:
        for reason in reasons:
            assert reason["field"] in ("title", "summary", "content")
            assert reason["terms"] and reason["sentence"]
            assert reason["marked"].count("**") >= 2


def test_status_shows_parked_alerts_and_retry_sends_them_back_to_pending(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from bot.store import Store
    from tests.e2e import write_config
    from tests.factories import alert, article

    config = write_config(tmp_path, {"wire": str(DEMO_FEED)})
    now = datetime(2025, 7, 31, 6, 0, tzinfo=UTC)
    store = Store.open(tmp_path / "state.db")
    pairs = [
        (article(cross_key=f"url:{n}", feed_key=str(n)), alert(channel=channel))
        for n, channel in enumerate(["#gone", "#gone", "#other"])
    ]
    store.record_poll(
        "wire", "u", [a for a, _ in pairs], pairs, etag=None, last_modified=None, now=now
    )
    first, _, other = store.due_alerts(now)
    store.park(first.id, "not_in_channel", "cfg", now, route=True)
    store.park(other.id, "msg_too_long", "cfg", now)
    store.close()

    status = newswatch("--config", str(config), "status")
    assert "0 pending, 0 sent, 3 parked" in status.stdout
    assert "parked #gone: 2 alerts, channel refused: not_in_channel" in status.stdout
    assert "parked #other: 1 alerts, message refused: msg_too_long" in status.stdout

    retried = newswatch("--config", str(config), "retry", "--channel", "#gone")
    assert retried.returncode == 0 and "2 parked alerts for #gone" in retried.stdout
    status = newswatch("--config", str(config), "status")
    assert "2 pending, 0 sent, 1 parked" in status.stdout
    retried = newswatch("--config", str(config), "retry")
    assert "1 parked alerts will be tried again" in retried.stdout
