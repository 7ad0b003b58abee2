"""Errors carry their resource and survive the trip back from a worker process."""

from __future__ import annotations

import pickle

import pytest

from bot.errors import (
    ConfigError,
    FetchError,
    NewswatchError,
    ParseError,
    QuerySyntaxError,
    RuleError,
    SlackCredentialError,
    SlackTransientError,
)

ERRORS: list[NewswatchError] = [
    ConfigError("config.yaml", "unknown key", 3),
    RuleError("rules/a.yaml", "query: unbalanced", 4, 7),
    QuerySyntaxError("unterminated phrase", 12),
    FetchError("wire", "https://w.example/rss", "HTTP 429", status=429, retry_after=30.0),
    ParseError("wire", "https://w.example/rss", "not a feed: an HTML page"),
    SlackTransientError("#korea-security", "ratelimited", retry_after=7.0),
    SlackTransientError("#korea-security", "http 429", retry_after=7.0, rate_limited=True),
    SlackCredentialError("#korea-security", "token_revoked"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_pickle_with_their_attributes(error: NewswatchError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


def test_errors_name_what_they_are_about() -> None:
    assert str(RuleError("rules/a.yaml", "bad", 4, 7)) == "rules/a.yaml:4:7: bad"
    assert "feed wire (https://w.example/rss)" in str(ERRORS[3])
    assert "#korea-security" in str(ERRORS[5])
