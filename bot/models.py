"""Frozen value types passed between the pipeline stages (all datetimes are aware UTC)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

FIELDS: tuple[str, ...] = ("title", "summary", "content")
SILENT_AFTER = timedelta(days=2)  # a feed with nothing new for this long raises a notice
FAILING_AFTER = timedelta(hours=1)  # a feed failing for this long raises a notice
FULL_TEXT_MAX = 30  # article pages a full-text feed fetches per poll, by default


@dataclass(frozen=True)
class FeedConfig:
    """One entry of `feeds:` in config.yaml."""

    name: str
    url: str  # http(s) URL, or an absolute local file path
    interval: timedelta
    backlog: timedelta | None  # None: alert on every article of the first poll
    silent_after: timedelta | None = SILENT_AFTER  # None: never report the feed as silent
    failing_after: timedelta = FAILING_AFTER  # failing this long, however few polls, is told
    full_text: bool = False  # fetch each new article's page for its main text
    full_text_max: int = FULL_TEXT_MAX  # page fetches per poll at most (the newest articles')


@dataclass(frozen=True)
class FetchResult:
    """What the fetcher got: a body, or `not_modified` for a 304."""

    url: str  # final URL after redirects
    status: int
    body: bytes
    headers: dict[str, str]  # lower-cased names
    etag: str | None
    last_modified: str | None
    not_modified: bool = False
    permanent_url: str | None = None  # where a chain of only 301/308 redirects led, if any


@dataclass(frozen=True)
class RawEntry:
    """One entry as the feed states it (HTML left in, nothing trusted)."""

    guid: str | None
    link: str | None
    title: str
    summary_html: str
    content_html: str
    published: datetime | None  # as the feed dates it, converted to UTC when it could be
    author: str | None = None


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed feed: its own title and link, entries, and whether the XML was broken."""

    title: str
    link: str | None
    entries: tuple[RawEntry, ...]
    bozo: bool = False
    bozo_reason: str | None = None
    ttl_minutes: int | None = None  # RSS <ttl>: how long the feed says it stays fresh


@dataclass(frozen=True)
class Article:
    """A normalized article: plain text fields, safe link, stable identity."""

    feed: str
    feed_key: str  # unique within the feed: guid, else link, else content hash
    cross_key: str  # same article in any feed: canonical link, else content hash
    title: str
    link: str | None  # http(s) only, canonical form as published (not stripped)
    summary: str
    content: str
    published: datetime | None
    source: str  # display name of the outlet (feed title, else feed name)

    def field_text(self, name: str) -> str:
        return str(getattr(self, name))


@dataclass(frozen=True)
class Hit:
    """One occurrence of a query term: `field` text[start:end]."""

    term: str  # the term as written in the query
    field: str
    start: int
    end: int
    alias: str = ""  # the alias set (`@name`) the term came from, if any


@dataclass(frozen=True)
class RuleMatch:
    """A rule that matched an article, with the terms that fired."""

    rule: str
    terms: tuple[str, ...]  # distinct terms in query order
    hits: tuple[Hit, ...]
    evidence: tuple[Evidence, ...] = ()  # why it matched, sentence by sentence


@dataclass(frozen=True)
class Rule:
    """A validated watch rule from rules/*.yaml."""

    name: str
    query: str
    channel: str
    fields: tuple[str, ...] = FIELDS
    feeds: tuple[str, ...] | None = None  # None: every feed
    path: str = ""
    expr: object = field(default=None, compare=False, repr=False)  # compiled query
    digest: Digest | None = None  # None: `delivery: immediate`, each match posts at once
    max_per_hour: int | None = None  # beyond this many alerts in a rolling hour, matches wait
    mention: str | None = None  # `<!subteam^ID>`, `<@U…>`, `here` or `channel`


@dataclass(frozen=True)
class AlertContent:
    """Everything a Slack message about one article in one channel needs."""

    channel: str
    title: str
    link: str | None
    source: str
    published: datetime | None
    rules: tuple[str, ...]
    terms: tuple[str, ...]
    summary: tuple[str, ...]  # 1-3 sentences; matched terms marked with \x02 ... \x03
    mentions: tuple[str, ...] = ()  # from the rules that speak now (never from feed text)


@dataclass(frozen=True)
class Candidate:
    """An article from a feed and the alert it would raise in each channel (maybe none)."""

    article: Article
    alerts: tuple[AlertContent, ...]


@dataclass(frozen=True)
class Message:
    """A rendered Slack message: escaped fallback text and Block Kit blocks."""

    channel: str
    text: str
    blocks: tuple[dict[str, object], ...]


@dataclass(frozen=True)
class PostResult:
    channel: str
    ts: str | None
    channel_id: str | None = None


def parse_duration(text: str) -> timedelta:
    """`90s`, `10m`, `2h`, `7d`, or a bare number of seconds."""
    text = str(text).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text and text[-1] in units:
        number, unit = text[:-1], units[text[-1]]
    else:
        number, unit = text, 1
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 10m, 2h, 7d)") from None
    if value < 0:
        raise ValueError(f"duration must not be negative: {text!r}")
    return timedelta(seconds=value * unit)


@dataclass(frozen=True)
class Evidence:
    """Terms that fired in one sentence of one field, and that sentence with them marked."""

    field: str
    terms: tuple[str, ...]  # as written in the query; `@alias: term` for a term of an alias set
    sentence: str  # the sentence, matched terms marked with \x02 ... \x03


@dataclass(frozen=True)
class AlertTag:
    """What marks a posted message as one queued alert (Slack message metadata).

    `article` is a digest of the alert's article key, so the id of another database's alert
    (a second bot posting to the same channel, a database started afresh) never matches ours.
    """

    alert_id: int
    article: str

    @classmethod
    def of(cls, alert_id: int, article_key: str) -> AlertTag:
        return cls(alert_id, hashlib.sha256(article_key.encode()).hexdigest()[:16])


@dataclass(frozen=True)
class ArticlePage:
    """What fetching one article's web page gave: its main text, or why there is none."""

    cross_key: str
    text: str | None
    error: str | None = None  # set when text is None: fetch refused or failed, no main text


@dataclass(frozen=True)
class Digest:
    """A rule's `delivery: {digest: CRON, timezone: TZ}`: its matches go out together."""

    cron: str  # five crontab fields, e.g. "0 9 * * *"
    timezone: str  # IANA name the cron fields are read in, e.g. "Asia/Seoul"


@dataclass(frozen=True)
class QuietHours:
    """A channel's quiet hours: local `start` to `end` (over midnight when end ≤ start)."""

    start: time
    end: time
    timezone: str


@dataclass(frozen=True)
class Batch:
    """Several held alerts as one Slack message: a rule's digest, a rule's catch-up after its
    hourly cap, or a channel's alerts held through its quiet hours."""

    channel: str
    kind: str  # "digest", "catch-up" or "quiet"
    rule: str  # the rule whose digest or catch-up this is ("" for quiet hours)
    items: tuple[AlertContent, ...]  # oldest first, at most MAX_BATCH_KEPT of them
    total: int  # how many alerts the batch stands for (items may be fewer)
    mentions: tuple[str, ...] = ()  # validated rule mentions: the only ones a message carries
    since: datetime | None = None  # when the oldest alert was held
    also: tuple[tuple[str, ...], ...] = ()  # by item: sources of its copies held with it
