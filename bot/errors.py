"""The exception tree: every error names the feed, rule file or channel it is about.

NewswatchError
├── ConfigError          config.yaml is invalid          (path, line)
├── RuleError            a rule file is invalid          (path, line, column)
│   └── QuerySyntaxError a query does not parse          (column inside the query)
├── FeedError            one feed could not be polled    (feed name, url)
│   ├── FetchError       network, HTTP status, size or time limits
│   └── ParseError       the body is not a usable feed
├── SlackError           one post failed                 (channel)
│   ├── SlackTransientError   try again later (5xx, timeouts, rate limits)
│   │   └── SlackUnknownOutcomeError  the post may have reached Slack
│   └── SlackPermanentError   will not succeed as is (channel_not_found, invalid_auth, ...)
│       └── SlackCredentialError      the token itself is refused
├── StoreError           the database is unusable
├── SearchError          an archive search query is not valid  (the query)
└── IndexMissing         a worker lacks the rule index in force (sent again with it)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class NewswatchError(Exception):
    """Base of every error Newswatch raises on purpose.

    Errors cross process boundaries (parsing runs in worker processes), so they pickle with all
    their attributes rather than with their constructor arguments.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), str(self), dict(self.__dict__)))


def _restore(cls: type[NewswatchError], message: str, state: dict[str, Any]) -> NewswatchError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigError(NewswatchError):
    def __init__(self, path: Path | str, reason: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.line = line
        where = f"{self.path}:{line}" if line else str(self.path)
        super().__init__(f"{where}: {reason}")


class QuerySyntaxError(NewswatchError):
    """A query string does not parse; `column` is 1-based within the query text."""

    def __init__(self, reason: str, column: int) -> None:
        self.reason = reason
        self.column = column
        super().__init__(f"column {column}: {reason}")


class RuleError(NewswatchError):
    def __init__(
        self, path: Path | str, reason: str, line: int | None = None, column: int | None = None
    ) -> None:
        self.path = Path(path)
        self.reason = reason
        self.line = line
        self.column = column
        where = str(self.path)
        if line:
            where += f":{line}"
            if column:
                where += f":{column}"
        super().__init__(f"{where}: {reason}")


class FeedError(NewswatchError):
    def __init__(self, feed: str, url: str, reason: str) -> None:
        self.feed = feed
        self.url = url
        self.reason = reason
        super().__init__(f"feed {feed} ({url}): {reason}")


class FetchError(FeedError):
    """The feed could not be fetched: network error, HTTP status, size or time limit."""

    def __init__(
        self,
        feed: str,
        url: str,
        reason: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(feed, url, reason)


class ParseError(FeedError):
    """The body is not a feed we can read anything from."""


class SlackError(NewswatchError):
    def __init__(self, channel: str, reason: str) -> None:
        self.channel = channel
        self.reason = reason
        super().__init__(f"slack channel {channel}: {reason}")


class SlackTransientError(SlackError):
    """Worth retrying later; `retry_after` seconds when Slack said so; `rate_limited` when
    Slack asked us to slow down (HTTP 429 or `ratelimited`)."""

    def __init__(
        self,
        channel: str,
        reason: str,
        retry_after: float | None = None,
        *,
        rate_limited: bool = False,
    ) -> None:
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        super().__init__(channel, reason)


class SlackPermanentError(SlackError):
    """Will not succeed until something changes (channel, token, message)."""


class SlackUnknownOutcomeError(SlackTransientError):
    """The request may have reached Slack (connection dropped, timed out): reconcile first."""


class SlackCredentialError(SlackPermanentError):
    """The token is invalid, revoked or lacks a scope: no post can succeed until it changes."""


class StoreError(NewswatchError):
    """The database cannot be opened or migrated."""


class SourceError(NewswatchError):
    """A file or page given to a `feeds` command cannot be used (malformed OPML, no feed found,
    a duplicate); names the file or URL."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class SearchError(NewswatchError):
    """An archive search query the full-text index cannot run (its syntax, or this database)."""

    def __init__(self, query: str, reason: str) -> None:
        self.query = query
        self.reason = reason
        super().__init__(f"search {query!r}: {reason}")


class IndexMissing(NewswatchError):
    """A worker process lacks the rule index of this generation: the call is made again with
    the index attached (bot/index.py)."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        super().__init__(f"the worker lacks rule index generation {generation}")


class PageDeferred(FetchError):
    """An article page not requested: its host asked us to wait (429/503 Retry-After)."""
