"""config.yaml validation: typed values, paths relative to the file, errors with their line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import DEFAULT_BACKLOG, load_config
from bot.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

MINIMAL = """\
rules: my-rules/
database: state/nw.db
slack:
  default_channel: "#news-alerts"
feeds:
  - name: local
    url: feeds/local.xml
    interval: 2m
  - name: remote
    url: https://example.com/rss.xml
    backlog: all
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_paths_are_resolved_relative_to_the_config_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.rules_dir == (tmp_path / "my-rules").resolve()
    assert config.database == (tmp_path / "state" / "nw.db").resolve()
    assert config.feeds[0].url == str((tmp_path / "feeds" / "local.xml").resolve())
    assert config.feeds[1].url == "https://example.com/rss.xml"


def test_intervals_and_backlogs_are_typed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.feeds[0].interval == timedelta(minutes=2)
    assert config.feeds[0].backlog == DEFAULT_BACKLOG
    assert config.feeds[1].backlog is None  # "all"
    assert config.feeds[1].interval == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("edit", "line", "reason"),
    [
        (("  default_channel", "  default_chanel"), 4, "unknown key 'default_chanel'"),
        (("interval: 2m", "interval: soon"), 8, "not a duration"),
        (("interval: 2m", "interval: 5s"), 8, "at least 30s"),
        (("url: https://example.com/rss.xml", "url: ftp://example.com/x"), 10, "only http(s)"),
        (("name: remote", "name: local"), 9, "duplicate feed name"),
        (("rules: my-rules/", "rules: my-rules/\nrules: other/"), 2, "duplicate key"),
    ],
)
def test_errors_name_the_file_line_and_reason(
    tmp_path: Path, edit: tuple[str, str], line: int, reason: str
) -> None:
    path = write(tmp_path, MINIMAL.replace(*edit))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.path == path.resolve()
    assert caught.value.line == line
    assert reason in caught.value.reason


def test_missing_slack_section_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing required key 'slack'"):
        load_config(write(tmp_path, "feeds: []\n"))


def test_allow_private_takes_networks(tmp_path: Path) -> None:
    text = MINIMAL + "fetch:\n  allow_private: [127.0.0.0/8, '::1']\n  deadline: 5s\n"
    config = load_config(write(tmp_path, text))
    assert [str(n) for n in config.fetch.allow_private] == ["127.0.0.0/8", "::1/128"]
    assert config.fetch.deadline == 5.0


def test_shipped_config_is_valid() -> None:
    config = load_config(REPO / "config.yaml")
    assert config.feeds, "the shipped config lists real feeds"
    assert all(f.url.startswith("https://") for f in config.feeds)


def test_demo_config_is_valid() -> None:
    config = load_config(REPO / "examples" / "demo-config.yaml")
    assert Path(config.feeds[0].url).is_file()


def test_slack_pacing_has_named_defaults_and_can_be_set(tmp_path: Path) -> None:
    from bot.pacing import BURST, RATE, RETRY_BASE

    default = load_config(write(tmp_path, MINIMAL)).slack
    assert (default.rate, default.burst, default.retry_base) == (RATE, BURST, RETRY_BASE)
    text = MINIMAL.replace(
        '  default_channel: "#news-alerts"\n',
        '  default_channel: "#news-alerts"\n  rate: 0.5\n  burst: 1\n  retry_base: 2s\n',
    )
    slack = load_config(write(tmp_path, text)).slack
    assert (slack.rate, slack.burst, slack.retry_base) == (0.5, 1, timedelta(seconds=2))


@pytest.mark.parametrize(
    ("line", "reason"),
    [("rate: 0", "slack.rate"), ("burst: 0", "slack.burst"), ("retry_base: 0s", "retry_base")],
)
def test_bad_pacing_values_are_refused_with_their_line(
    tmp_path: Path, line: str, reason: str
) -> None:
    text = MINIMAL.replace(
        '  default_channel: "#news-alerts"\n', f'  default_channel: "#news-alerts"\n  {line}\n'
    )
    with pytest.raises(ConfigError, match=reason) as caught:
        load_config(write(tmp_path, text))
    assert caught.value.line == 5


def test_polling_bounds_fetch_limits_and_silence_thresholds_are_read(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "feeds:\n",
        "fetch:\n  concurrency: 10\n  per_host: 2\n  page_interval: 2.5s\n"
        "polling:\n  backoff_cap: 2h\n  retry_after_cap: 12h\n  hint_cap: 30m\nfeeds:\n",
    ).replace("    backlog: all\n", "    backlog: all\n    silent_after: never\n")
    text = text.replace("    interval: 2m\n", "    interval: 2m\n    silent_after: 3d\n")
    config = load_config(write(tmp_path, text))
    assert (config.fetch.concurrency, config.fetch.per_host) == (10, 2)
    assert config.fetch.page_interval == 2.5
    assert config.polling.backoff_cap == timedelta(hours=2)
    assert config.polling.retry_after_cap == timedelta(hours=12)
    assert config.polling.hint_cap == timedelta(minutes=30)
    assert config.feeds[0].silent_after == timedelta(days=3)
    assert config.feeds[1].silent_after is None


def test_defaults_apply_when_polling_bounds_are_left_out(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.polling.backoff_cap == timedelta(hours=6)
    assert config.feeds[0].silent_after == timedelta(days=2)
    assert config.feeds[0].failing_after == timedelta(hours=1)
    assert config.fetch.per_host == 4
    assert config.fetch.page_interval == 1.0
    assert config.feeds[0].full_text_max == 30


def test_a_feeds_failing_threshold_is_read(tmp_path: Path) -> None:
    text = MINIMAL.replace("    interval: 2m\n", "    interval: 2m\n    failing_after: 30m\n")
    config = load_config(write(tmp_path, text))
    assert config.feeds[0].failing_after == timedelta(minutes=30)
    assert config.feeds[1].failing_after == timedelta(hours=1)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("never", "failing_after must be a duration"),
        ("-5m", "must not be negative"),
        ("soon", "not a duration: 'soon'"),
    ],
)
def test_a_bad_failing_threshold_is_refused_with_its_line(
    tmp_path: Path, value: str, reason: str
) -> None:
    text = MINIMAL.replace("    interval: 2m\n", f"    interval: 2m\n    failing_after: {value}\n")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=reason) as caught:
        load_config(path)
    assert caught.value.line == 9


@pytest.mark.parametrize(
    ("snippet", "reason"),
    [
        ("fetch:\n  per_host: 0\n", "fetch.per_host must be a positive whole number"),
        ("fetch:\n  page_interval: -1s\n", "must not be negative"),
        ("fetch:\n  page_interval: 2m\n", "fetch.page_interval must be at most 60 s"),
        ("fetch:\n  concurrency: many\n", "fetch.concurrency must be a positive whole number"),
        ("polling:\n  backoff_cap: 0\n", "polling.backoff_cap must be a positive duration"),
        ("polling:\n  jitter: 1m\n", "unknown key 'jitter'"),
    ],
)
def test_bad_polling_and_limit_values_are_reported_with_their_line(
    tmp_path: Path, snippet: str, reason: str
) -> None:
    path = write(tmp_path, MINIMAL.replace("feeds:\n", snippet + "feeds:\n"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert reason in str(caught.value)
    assert f"{path}:6" in str(caught.value) or f"{path}:7" in str(caught.value)


def test_full_text_is_off_unless_a_feed_turns_it_on(tmp_path: Path) -> None:
    text = MINIMAL.replace("    interval: 2m\n", "    interval: 2m\n    full_text: true\n")
    config = load_config(write(tmp_path, text))
    assert [f.full_text for f in config.feeds] == [True, False]


def test_a_full_text_that_is_not_a_boolean_is_refused_with_its_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("    interval: 2m\n", "    interval: 2m\n    full_text: yes please\n")
    with pytest.raises(ConfigError, match="full_text must be true or false") as caught:
        load_config(write(tmp_path, text))
    assert caught.value.line == 9


@pytest.mark.parametrize(("value", "expected"), [("5", 5), ("0", None), ("many", None)])
def test_a_feeds_page_cap_is_a_positive_whole_number(
    tmp_path: Path, value: str, expected: int | None
) -> None:
    text = MINIMAL.replace("    interval: 2m\n", f"    interval: 2m\n    full_text_max: {value}\n")
    path = write(tmp_path, text)
    if expected is not None:
        assert load_config(path).feeds[0].full_text_max == expected
        return
    with pytest.raises(
        ConfigError, match="full_text_max must be a positive whole number"
    ) as caught:
        load_config(path)
    assert caught.value.line == 9
