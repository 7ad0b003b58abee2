"""config.yaml → a validated, typed Config (paths resolved against the config file)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.fetch import (  # one source for the fetch limits
    DEFAULT_DEADLINE,
    MAX_BODY_BYTES,
    MAX_CONCURRENT_FETCHES,
    MAX_FETCHES_PER_HOST,
    PAGE_INTERVAL,
)
from bot.models import (
    FAILING_AFTER,
    FULL_TEXT_MAX,
    SILENT_AFTER,
    FeedConfig,
    QuietHours,
    parse_duration,
)
from bot.noisekeys import read_quiet_hours
from bot.pacing import BURST, RATE, RETRY_BASE
from bot.schedule import SchedulePolicy
from bot.story import EDIT_MODES, StoryPolicy
from bot.yamlfile import Document, YamlProblem, read_yaml

DEFAULT_INTERVAL = timedelta(minutes=10)
MIN_INTERVAL = timedelta(seconds=30)
DEFAULT_BACKLOG = timedelta(hours=24)
MAX_PAGE_INTERVAL = 60.0  # seconds: fetch.page_interval above this is refused
ARCHIVE_RETENTION = timedelta(days=30)  # how long polled articles are kept for backtests
FEED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CHANNEL = re.compile(r"^(#[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{6,})$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SlackConfig:
    default_channel: str
    admin_channel: str | None = None
    rate: float = RATE  # messages per second per channel
    burst: int = BURST  # messages a quiet channel may get at once
    retry_base: timedelta = RETRY_BASE  # first backoff after a failed post


@dataclass(frozen=True)
class FetchConfig:
    deadline: float = DEFAULT_DEADLINE
    max_bytes: int = MAX_BODY_BYTES
    allow_private: tuple[Network, ...] = ()
    concurrency: int = MAX_CONCURRENT_FETCHES
    per_host: int = MAX_FETCHES_PER_HOST
    page_interval: float = PAGE_INTERVAL  # seconds between article-page requests to one host


@dataclass(frozen=True)
class Config:
    path: Path
    rules_dir: Path
    database: Path
    slack: SlackConfig
    feeds: tuple[FeedConfig, ...]
    fetch: FetchConfig = field(default_factory=FetchConfig)
    display_timezone: str = "UTC"
    workers: int = 0  # 0: one parsing process per core
    aliases_dir: Path | None = None  # alias sets (`@usfk`) shared by every rule
    polling: SchedulePolicy = field(default_factory=SchedulePolicy)
    archive_retention: timedelta = ARCHIVE_RETENTION  # archive.retention
    quiet_hours: dict[str, QuietHours] = field(default_factory=dict)  # by channel
    stories: StoryPolicy = field(default_factory=StoryPolicy)  # near-duplicates in threads

    def feed(self, name: str) -> FeedConfig:
        for feed in self.feeds:
            if feed.name == name:
                return feed
        raise KeyError(name)


TOP_KEYS = {
    "rules",
    "database",
    "slack",
    "feeds",
    "fetch",
    "polling",
    "display_timezone",
    "workers",
    "aliases",
    "archive",
    "channels",
    "stories",
}
SLACK_KEYS = {"default_channel", "admin_channel", "rate", "burst", "retry_base"}
FEED_KEYS = {
    "name",
    "url",
    "interval",
    "backlog",
    "silent_after",
    "failing_after",
    "full_text",
    "full_text_max",
}
FETCH_KEYS = {"deadline", "max_bytes", "allow_private", "concurrency", "per_host", "page_interval"}
POLLING_KEYS = {"backoff_cap", "retry_after_cap", "hint_cap"}
ARCHIVE_KEYS = {"retention"}
STORY_KEYS = {"enabled", "window", "threshold", "edits"}


def valid_channel(value: object) -> bool:
    return isinstance(value, str) and bool(CHANNEL.match(value))


def load_config(path: Path | str) -> Config:
    """Read and validate config.yaml; raise ConfigError naming file, line and reason."""
    path = Path(path).resolve()
    try:
        doc = read_yaml(path)
    except YamlProblem as exc:
        raise ConfigError(path, exc.reason, exc.line) from exc
    return _ConfigReader(doc).read()


class _ConfigReader:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.base = doc.path.parent

    def fail(self, reason: str, *keys: object) -> ConfigError:
        return ConfigError(self.doc.path, reason, self.doc.line(*keys) if keys else None)

    def mapping(self, value: Any, allowed: set[str], *keys: object) -> dict[str, Any]:
        if not isinstance(value, dict):
            where = ".".join(str(k) for k in keys) or "the file"
            raise self.fail(f"{where} must be a mapping of keys to values", *keys)
        for key in value:
            if key not in allowed:
                raise ConfigError(
                    self.doc.path,
                    f"unknown key {key!r} (expected one of: {', '.join(sorted(allowed))})",
                    self.doc.key_line(*keys, key),
                )
        return value

    def read(self) -> Config:
        top = self.mapping(self.doc.data, TOP_KEYS)
        for required in ("slack", "feeds"):
            if required not in top:
                raise self.fail(f"missing required key {required!r}")
        slack = self.mapping(top["slack"], SLACK_KEYS, "slack")
        if not valid_channel(slack.get("default_channel")):
            raise self.fail(
                "slack.default_channel must be a channel like '#news-alerts' or an ID",
                "slack",
                *(["default_channel"] if "default_channel" in slack else []),
            )
        admin = slack.get("admin_channel")
        if admin is not None and not valid_channel(admin):
            raise self.fail("slack.admin_channel must be a channel", "slack", "admin_channel")
        feeds_value = top["feeds"]
        if not isinstance(feeds_value, list):
            raise self.fail("feeds must be a list", "feeds")
        feeds = tuple(self.feed(item, i) for i, item in enumerate(feeds_value))
        seen: set[str] = set()
        for i, feed in enumerate(feeds):
            if feed.name in seen:
                raise self.fail(f"duplicate feed name {feed.name!r}", "feeds", i, "name")
            seen.add(feed.name)
        workers = top.get("workers", 0)
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
            raise self.fail("workers must be a whole number (0: one per core)", "workers")
        tz = top.get("display_timezone", "UTC")
        if not isinstance(tz, str) or not _known_timezone(tz):
            raise self.fail(f"unknown display_timezone {tz!r}", "display_timezone")
        rules_dir = self.path_value(top.get("rules", "rules/"), "rules")
        aliases_dir = None
        if "aliases" in top:
            aliases_dir = self.path_value(top["aliases"], "aliases")
            if aliases_dir == rules_dir or rules_dir in aliases_dir.parents:
                raise self.fail("aliases must be a folder outside the rules folder", "aliases")
        return Config(
            path=self.doc.path,
            rules_dir=rules_dir,
            database=self.path_value(top.get("database", "newswatch.db"), "database"),
            slack=self.slack_pace(slack, SlackConfig(slack["default_channel"], admin)),
            feeds=feeds,
            fetch=self.fetch(top.get("fetch", {})),
            display_timezone=tz,
            workers=workers,
            aliases_dir=aliases_dir,
            polling=self.polling(top.get("polling", {})),
            archive_retention=self.archive_retention(top.get("archive", {})),
            quiet_hours=self.channels(top.get("channels", {}), tz),
            stories=self.stories(top.get("stories", {})),
        )

    def path_value(self, value: Any, key: str) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{key} must be a path", key)
        return (self.base / value).resolve()

    def slack_pace(self, slack: dict[str, Any], base: SlackConfig) -> SlackConfig:
        rate = slack.get("rate", base.rate)
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 < rate <= 50:
            raise self.fail("slack.rate must be messages per second (0 to 50)", "slack", "rate")
        burst = slack.get("burst", base.burst)
        if not isinstance(burst, int) or isinstance(burst, bool) or not 1 <= burst <= 100:
            raise self.fail("slack.burst must be a whole number from 1 to 100", "slack", "burst")
        retry_base = base.retry_base
        if "retry_base" in slack:
            retry_base = self.duration(slack["retry_base"], "slack", "retry_base")
            if retry_base <= timedelta(0):
                raise self.fail("slack.retry_base must be positive", "slack", "retry_base")
        return SlackConfig(base.default_channel, base.admin_channel, float(rate), burst, retry_base)

    def duration(self, value: Any, *keys: object) -> timedelta:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.fail(str(exc), *keys) from None

    def feed(self, item: Any, index: int) -> FeedConfig:
        item = self.mapping(item, FEED_KEYS, "feeds", index)
        name = item.get("name")
        if not isinstance(name, str) or not FEED_NAME.match(name):
            raise self.fail(
                "each feed needs a name of letters, digits, '.', '_' or '-'", "feeds", index
            )
        url = item.get("url")
        if not isinstance(url, str) or not url.strip():
            raise self.fail(f"feed {name!r} needs a url", "feeds", index)
        url = url.strip()
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
            if not url.lower().startswith(("http://", "https://")):
                raise self.fail(
                    f"feed {name!r}: only http(s) URLs or local file paths", "feeds", index, "url"
                )
        else:
            url = str((self.base / url).resolve())
        interval = (
            self.duration(item["interval"], "feeds", index, "interval")
            if "interval" in item
            else DEFAULT_INTERVAL
        )
        if interval < MIN_INTERVAL:
            raise self.fail(
                f"feed {name!r}: interval must be at least {MIN_INTERVAL.seconds}s",
                "feeds",
                index,
                "interval",
            )
        backlog_value = item.get("backlog", None)
        backlog: timedelta | None
        if backlog_value is None:
            backlog = DEFAULT_BACKLOG
        elif backlog_value == "all":
            backlog = None
        else:
            backlog = self.duration(backlog_value, "feeds", index, "backlog")
        silent_value = item.get("silent_after", None)
        silent_after: timedelta | None = SILENT_AFTER
        if silent_value == "never":
            silent_after = None
        elif silent_value is not None:
            silent_after = self.duration(silent_value, "feeds", index, "silent_after")
        failing_after = FAILING_AFTER
        if item.get("failing_after") == "never":
            raise self.fail(
                f"feed {name!r}: failing_after must be a duration (a failing feed is always told)",
                "feeds",
                index,
                "failing_after",
            )
        if "failing_after" in item:
            failing_after = self.duration(item["failing_after"], "feeds", index, "failing_after")
        full_text = item.get("full_text", False)
        if not isinstance(full_text, bool):
            raise self.fail(
                f"feed {name!r}: full_text must be true or false", "feeds", index, "full_text"
            )
        full_text_max = item.get("full_text_max", FULL_TEXT_MAX)
        if (
            not isinstance(full_text_max, int)
            or isinstance(full_text_max, bool)
            or full_text_max <= 0
        ):
            raise self.fail(
                f"feed {name!r}: full_text_max must be a positive whole number (pages per poll)",
                "feeds",
                index,
                "full_text_max",
            )
        return FeedConfig(
            name, url, interval, backlog, silent_after, failing_after, full_text, full_text_max
        )

    def polling(self, value: Any) -> SchedulePolicy:
        polling = self.mapping(value, POLLING_KEYS, "polling")
        default = SchedulePolicy()
        caps = {}
        for key in sorted(POLLING_KEYS):
            caps[key] = getattr(default, key)
            if key in polling:
                caps[key] = self.duration(polling[key], "polling", key)
                if caps[key] <= timedelta(0):
                    raise self.fail(f"polling.{key} must be a positive duration", "polling", key)
        return SchedulePolicy(**caps)

    def archive_retention(self, value: Any) -> timedelta:
        archive = self.mapping(value, ARCHIVE_KEYS, "archive")
        if "retention" not in archive:
            return ARCHIVE_RETENTION
        retention = self.duration(archive["retention"], "archive", "retention")
        if retention < timedelta(days=1):
            raise self.fail(
                "archive.retention must be a duration of at least 1d (e.g. 30d)",
                "archive",
                "retention",
            )
        return retention

    def channels(self, value: Any, display_timezone: str) -> dict[str, QuietHours]:
        """`channels: {"#name": {quiet_hours: "22:00-07:00", timezone: TZ}}`."""
        if not isinstance(value, dict):
            raise self.fail("channels must be a mapping of channel to its settings", "channels")
        quiet = {}
        for name, settings in value.items():
            if not valid_channel(name):
                raise ConfigError(
                    self.doc.path,
                    f"channels: {name!r} is not a channel like '#news-alerts' or an ID",
                    self.doc.key_line("channels", name),
                )
            try:
                quiet[name] = read_quiet_hours(settings, display_timezone)
            except ValueError as exc:
                keys = ["channels", name]
                if isinstance(settings, dict):
                    bad = [k for k in ("quiet_hours", "timezone") if k in settings]
                    keys += [k for k in bad if k in str(exc)][:1]
                raise self.fail(f"channels.{name}: {exc}", *keys) from None
        return quiet

    def stories(self, value: Any) -> StoryPolicy:
        stories = self.mapping(value, STORY_KEYS, "stories")
        default = StoryPolicy()
        enabled = stories.get("enabled", default.enabled)
        if not isinstance(enabled, bool):
            raise self.fail("stories.enabled must be true or false", "stories", "enabled")
        window = default.window
        if "window" in stories:
            window = self.duration(stories["window"], "stories", "window")
            if window <= timedelta(0):
                raise self.fail("stories.window must be a positive duration", "stories", "window")
        threshold = stories.get("threshold", default.threshold)
        if (
            not isinstance(threshold, int | float)
            or isinstance(threshold, bool)
            or not 0 < threshold <= 1
        ):
            raise self.fail(
                "stories.threshold must be a number above 0 and at most 1", "stories", "threshold"
            )
        edits = stories.get("edits", default.edits)
        if edits not in EDIT_MODES:
            raise self.fail("stories.edits must be ignore or thread", "stories", "edits")
        return StoryPolicy(enabled, window, float(threshold), edits)

    def fetch(self, value: Any) -> FetchConfig:
        fetch = self.mapping(value, FETCH_KEYS, "fetch")
        deadline = fetch.get("deadline", DEFAULT_DEADLINE)
        if isinstance(deadline, str):
            deadline = self.duration(deadline, "fetch", "deadline").total_seconds()
        if not isinstance(deadline, int | float) or isinstance(deadline, bool) or deadline <= 0:
            raise self.fail("fetch.deadline must be a positive duration", "fetch", "deadline")
        max_bytes = fetch.get("max_bytes", MAX_BODY_BYTES)
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes <= 0:
            raise self.fail("fetch.max_bytes must be a positive number", "fetch", "max_bytes")
        networks: list[Network] = []
        allow = fetch.get("allow_private", [])
        if not isinstance(allow, list):
            raise self.fail("fetch.allow_private must be a list of networks", "fetch")
        for i, net in enumerate(allow):
            try:
                networks.append(ipaddress.ip_network(str(net), strict=False))
            except ValueError:
                raise self.fail(f"not a network: {net!r}", "fetch", "allow_private", i) from None
        limits = []
        for key, default in (
            ("concurrency", MAX_CONCURRENT_FETCHES),
            ("per_host", MAX_FETCHES_PER_HOST),
        ):
            number = fetch.get(key, default)
            if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
                raise self.fail(f"fetch.{key} must be a positive whole number", "fetch", key)
            limits.append(number)
        interval = self.duration(
            fetch.get("page_interval", PAGE_INTERVAL), "fetch", "page_interval"
        ).total_seconds()
        if interval > MAX_PAGE_INTERVAL:
            raise self.fail(
                f"fetch.page_interval must be at most {MAX_PAGE_INTERVAL:g} s "
                "(a poll waits for its pages)",
                "fetch",
                "page_interval",
            )
        concurrency, per_host = limits
        return FetchConfig(
            float(deadline), max_bytes, tuple(networks), concurrency, per_host, interval
        )


def _known_timezone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
