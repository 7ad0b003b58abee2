"""Sending: the real slack-sdk client against the Slack double on loopback, and the terminal."""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import (
    SlackCredentialError,
    SlackPermanentError,
    SlackTransientError,
    SlackUnknownOutcomeError,
)
from bot.models import AlertContent, PostResult
from bot.render import MAX_SECTION, MAX_TEXT
from bot.slack import Sender, SlackSender, TerminalSender
from tests.factories import MENTIONS, alert, displayed_texts
from tests.slackdouble import TOKEN, Request, SlackDouble

T = TypeVar("T")
LINK_TOKEN = re.compile(r"<https?://[^<>|\s]+\|[^<>]*>")


def run(
    double: SlackDouble, action: Callable[[SlackSender], Awaitable[T]], timeout: float = 5.0
) -> T:
    """Run `action` with a fresh sender against the double, closing it afterwards."""

    async def main() -> T:
        sender = SlackSender(TOKEN, base_url=double.base_url, timeout=timeout)
        try:
            return await action(sender)
        finally:
            await sender.close()

    return asyncio.run(main())


def send(double: SlackDouble, content: AlertContent, timeout: float = 5.0) -> PostResult:
    return run(double, lambda s: s.send(content), timeout)


def failure(
    double: SlackDouble, content: AlertContent | None = None, timeout: float = 5.0
) -> Exception:
    with pytest.raises(Exception) as caught:
        send(double, content or alert(), timeout)
    return caught.value


def received_texts(request: Request) -> list[str]:
    """`text` and every text inside `blocks`, as the double received them."""
    return displayed_texts(request.body.get("text"), request.body.get("blocks"))


# -- posting


def test_send_posts_blocks_and_fallback_and_returns_channel_id_and_ts(
    slack_double: SlackDouble,
) -> None:
    first = send(slack_double, alert())
    second = send(slack_double, alert(title="Second"))
    assert first.channel == "#news"
    assert first.channel_id == slack_double.channel_id("#news")
    assert first.ts is not None and second.ts is not None and second.ts > first.ts
    (post, _) = slack_double.posts()
    assert post.headers["authorization"] == f"Bearer {TOKEN}"
    assert post.body["channel"] == "#news"
    assert post.body["text"].startswith(
        "<https://news.example/markets/chips?id=7&amp;src=rss|Chip makers rally>"
    )
    assert [b["type"] for b in post.body["blocks"]] == ["section", "context", "section"]
    assert [m["ts"] for m in slack_double.messages("#news")] == [first.ts, second.ts]


def test_every_post_disables_unfurls_and_never_asks_for_name_linking_or_parsing(
    slack_double: SlackDouble,
) -> None:
    send(slack_double, alert())
    run(slack_double, lambda s: s.send_notice("#ops", "feed down"))
    posts = slack_double.posts()
    assert len(posts) == 2
    for post in posts:
        assert post.body["unfurl_links"] is False
        assert post.body["unfurl_media"] is False
        assert "link_names" not in post.body and "parse" not in post.body


@pytest.mark.parametrize("mention", MENTIONS)
def test_mentions_from_the_feed_never_reach_slack_as_tokens(
    slack_double: SlackDouble, mention: str
) -> None:
    send(
        slack_double,
        alert(
            title=f"Alert {mention}", source=f"{mention} Wire", summary=(f"Text {mention} end.",)
        ),
    )
    (post,) = slack_double.posts()
    for text in received_texts(post):
        for token in ("<!", "<@", "<#"):
            assert token not in text, text
    shown = mention.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    blocks = post.body["blocks"]
    assert shown in blocks[0]["text"]["text"]  # title
    assert shown in blocks[1]["elements"][0]["text"]  # source
    assert shown in blocks[2]["text"]["text"]  # summary
    assert shown in post.body["text"]


@pytest.mark.parametrize(
    ("link", "expected_url", "host"),
    [
        ("javascript:alert(1)", None, None),
        ("data:text/html,<script>x</script>", None, None),
        ("https://evil.example|Bank", None, None),
        ("https://a.example/<x>|y", "https://a.example/%3Cx%3E%7Cy", "a.example"),
        ("https://real.example/p?a=1&b=2", "https://real.example/p?a=1&amp;b=2", "real.example"),
    ],
)
def test_forged_and_hostile_links(
    slack_double: SlackDouble, link: str, expected_url: str | None, host: str | None
) -> None:
    send(slack_double, alert(title="<https://evil.example|Official notice>", link=link))
    (post,) = slack_double.posts()
    headline = post.body["blocks"][0]["text"]["text"]
    tokens = LINK_TOKEN.findall(headline)
    if expected_url is None:
        assert tokens == []
        assert headline == "*&lt;https://evil.example|Official notice&gt;*"
    else:
        assert tokens == [f"<{expected_url}|&lt;https://evil.example|Official notice&gt;>"]
    meta = post.body["blocks"][1]["elements"][0]["text"].split(" · ")
    assert (meta[1] if len(meta) == 3 else None) == host  # the domain shown is the real host
    for text in received_texts(post):
        assert not LINK_TOKEN.sub("", text).count("<")


def test_markup_newlines_and_invisible_characters_are_neutralized(
    slack_double: SlackDouble,
) -> None:
    nasty = "*bold* `code` > quote ~strike~" + "\n" * 10_000 + "end\u200b\u202e\u2066\ufeff\x1b"
    send(slack_double, alert(title=nasty, summary=(nasty,)))
    (post,) = slack_double.posts()
    for text in received_texts(post):
        assert "\n" not in text and "\x1b" not in text
        assert not set("\u200b\u202e\u2066\ufeff`~") & set(text)
        assert "*bold*" not in text
    headline = post.body["blocks"][0]["text"]["text"]
    assert headline.endswith("|∗bold∗ ˋcodeˋ &gt; quote ∼strike∼ end>*")


def test_oversize_content_is_accepted_within_slack_limits(slack_double: SlackDouble) -> None:
    description = ("Tom & Jerry <b>said</b> " * 50_000)[:1_000_000]
    result = send(
        slack_double,
        alert(title="&" * 10_000, summary=(description, "\x02" + description + "\x03")),
    )
    assert result.ts is not None  # the double checks Block Kit limits: no invalid_blocks
    (post,) = slack_double.posts()
    assert len(post.body["text"]) <= MAX_TEXT
    assert len(post.body["blocks"]) <= 50
    assert all(len(t) <= MAX_SECTION for t in received_texts(post)[1:])
    for text in received_texts(post):
        assert not re.search(r"&(?!amp;|lt;|gt;)", text)


def test_notices_are_escaped(slack_double: SlackDouble) -> None:
    result = run(slack_double, lambda s: s.send_notice("#ops", "feed <!here> failed\nagain"))
    assert result.channel == "#ops" and result.ts is not None
    (post,) = slack_double.posts()
    assert post.body["text"] == "feed &lt;!here&gt; failed again"


# -- retries and ambiguous failures


def test_the_client_has_no_retry_handlers() -> None:
    sender = SlackSender(TOKEN, base_url="http://127.0.0.1:9/api/")
    assert sender.client.retry_handlers == []
    assert sender.client.proxy is None


def test_dropped_connection_after_accept_is_unknown_outcome_and_not_retried(
    slack_double: SlackDouble,
) -> None:
    slack_double.drop_after_accept()
    error = failure(slack_double)
    assert isinstance(error, SlackUnknownOutcomeError)
    assert isinstance(error, SlackTransientError)
    assert len(slack_double.posts()) == 1  # no hidden second post
    assert len(slack_double.messages("#news")) == 1  # ... although Slack did take it


def test_slack_sdk_default_connection_retry_would_post_twice(slack_double: SlackDouble) -> None:
    """Why the sender passes retry_handlers=[]: the default handler re-posts after a drop."""
    slack_double.drop_after_accept()

    async def main() -> None:
        handler = AsyncConnectionErrorRetryHandler(
            interval_calculator=FixedValueRetryIntervalCalculator(0.0)
        )
        client = AsyncWebClient(
            token=TOKEN, base_url=slack_double.base_url, retry_handlers=[handler]
        )
        await client.chat_postMessage(channel="#news", text="hello")

    asyncio.run(main())
    assert len(slack_double.messages("#news")) == 2


def test_answer_after_the_client_timeout_is_unknown_outcome(slack_double: SlackDouble) -> None:
    slack_double.delay(3.0)
    error = failure(slack_double, timeout=0.3)
    assert isinstance(error, SlackUnknownOutcomeError)
    assert isinstance(error.__cause__, TimeoutError)
    assert len(slack_double.posts()) == 1
    assert len(slack_double.messages()) == 1


def test_refused_connection_is_transient_and_known_not_sent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before use: nothing listens there

    async def main() -> None:
        await SlackSender(TOKEN, base_url=f"http://127.0.0.1:{port}/api/").send(alert())

    with pytest.raises(SlackTransientError) as caught:
        asyncio.run(main())
    assert not isinstance(caught.value, SlackUnknownOutcomeError)


def test_env_proxies_are_ignored(
    slack_double: SlackDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    assert send(slack_double, alert()).ts is not None


# -- error mapping


def test_html_503_is_transient_until_slack_recovers(slack_double: SlackDouble) -> None:
    slack_double.fail_http(503, times=3)
    for _ in range(3):
        error = failure(slack_double)
        assert type(error) is SlackTransientError
        assert error.reason == "http 503"
    assert send(slack_double, alert()).ts is not None
    assert len(slack_double.posts()) == 4
    assert len(slack_double.messages()) == 1  # exactly one message in the end


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        ("0.5", 0.5),
        (None, None),
        ("abc", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("-3", None),
        ("86400", 86400.0),
    ],
)
def test_429_is_transient_with_retry_after_from_the_header(
    slack_double: SlackDouble, header: str | None, expected: float | None
) -> None:
    slack_double.rate_limit(header)
    error = failure(slack_double)
    assert isinstance(error, SlackTransientError)
    assert error.rate_limited  # paced by Retry-After or the default wait, never by backoff
    assert error.reason == "ratelimited"
    assert error.retry_after == expected
    assert len(slack_double.posts()) == 1  # slack-sdk did not retry on its own


@pytest.mark.parametrize(
    "code",
    ["ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"],
)
def test_transient_slack_error_codes(slack_double: SlackDouble, code: str) -> None:
    slack_double.fail_with(code, times=1)
    error = failure(slack_double)
    assert type(error) is SlackTransientError and error.reason == code
    assert error.rate_limited == (code == "ratelimited")


@pytest.mark.parametrize(
    "code",
    [
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "invalid_blocks",
        "no_text",
    ],
)
def test_destination_and_content_errors_are_permanent_after_one_request(
    slack_double: SlackDouble, code: str
) -> None:
    slack_double.fail_with(code, channel="#gone")
    error = failure(slack_double, alert(channel="#gone"))
    assert type(error) is SlackPermanentError
    assert (error.reason, error.channel) == (code, "#gone")
    assert len(slack_double.posts()) == 1
    assert send(slack_double, alert(channel="#other")).ts is not None  # other routes unaffected


@pytest.mark.parametrize(
    "code", ["invalid_auth", "token_revoked", "account_inactive", "not_authed"]
)
def test_credential_errors_are_flagged(slack_double: SlackDouble, code: str) -> None:
    slack_double.fail_with(code)
    error = failure(slack_double)
    assert isinstance(error, SlackCredentialError) and isinstance(error, SlackPermanentError)
    assert error.reason == code


def test_a_wrong_token_is_a_credential_error(slack_double: SlackDouble) -> None:
    async def main() -> None:
        await SlackSender("xoxb-wrong", base_url=slack_double.base_url).send(alert())

    with pytest.raises(SlackCredentialError, match="invalid_auth"):
        asyncio.run(main())


def test_a_garbled_200_is_transient(slack_double: SlackDouble) -> None:
    slack_double.fail_http(200, body="{not json", content_type="application/json")
    assert type(failure(slack_double)) is SlackTransientError


def test_a_plain_text_200_from_a_proxy_is_an_unknown_outcome(slack_double: SlackDouble) -> None:
    slack_double.fail_http(200, body="ok", content_type="text/plain")
    error = failure(slack_double)
    assert isinstance(error, SlackUnknownOutcomeError)
    assert "not JSON" in error.reason


def test_a_404_without_a_slack_answer_is_permanent(slack_double: SlackDouble) -> None:
    slack_double.fail_http(404, body="<html>not here</html>")
    error = failure(slack_double)
    assert type(error) is SlackPermanentError and error.reason == "http 404"


# -- the double itself (used later for reconciliation)


def test_double_lists_posted_messages_newest_first_and_answers_auth_test(
    slack_double: SlackDouble,
) -> None:
    first = send(slack_double, alert(title="one"))
    send(slack_double, alert(title="two", channel="#elsewhere"))
    third = send(slack_double, alert(title="three"))

    async def main() -> tuple[Any, Any]:
        client = AsyncWebClient(token=TOKEN, base_url=slack_double.base_url)
        history = await client.conversations_history(channel=slack_double.channel_id("#news"))
        newer = await client.conversations_history(channel="#news", oldest=first.ts)
        auth = await client.auth_test()
        return history, (newer, auth)

    history, (newer, auth) = asyncio.run(main())
    assert [m["ts"] for m in history["messages"]] == [third.ts, first.ts]
    assert [m["ts"] for m in newer["messages"]] == [third.ts]
    assert auth["ok"] and auth["user_id"] == "U0DOUBLE"


def test_double_accepts_form_encoded_posts(slack_double: SlackDouble) -> None:
    async def main() -> None:
        client = AsyncWebClient(token=TOKEN, base_url=slack_double.base_url)
        blocks = json.dumps([{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}])
        await client.api_call(
            "chat.postMessage", data={"channel": "#form", "text": "hi", "blocks": blocks}
        )

    asyncio.run(main())
    (message,) = slack_double.messages("#form")
    assert message["blocks"][0]["text"]["text"] == "hi"


def test_double_rejects_blocks_beyond_slack_limits(slack_double: SlackDouble) -> None:
    async def main() -> None:
        client = AsyncWebClient(token=TOKEN, base_url=slack_double.base_url)
        long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
        await client.chat_postMessage(channel="#x", text="x", blocks=long)

    with pytest.raises(Exception, match="invalid_blocks"):
        asyncio.run(main())


# -- terminal


def test_terminal_sender_prints_a_readable_block() -> None:
    stream = io.StringIO()
    sender: Sender = TerminalSender(stream)

    async def main() -> tuple[PostResult, PostResult]:
        result = await sender.send(alert(title="Chips \x1b[31mrally"))
        notice = await sender.send_notice("#ops", "feed\x1b] down")
        await sender.close()
        return result, notice

    result, notice = asyncio.run(main())
    assert result == PostResult("#news", None) and notice == PostResult("#ops", None)
    out = stream.getvalue()
    assert "\x1b" not in out
    assert out.startswith("[#news] Chips [31mrally\n")
    assert "Shares of **chip** makers rose." in out
    assert "[#ops] notice: feed] down" in out


def test_both_senders_satisfy_the_sender_protocol() -> None:
    senders: list[Sender] = [TerminalSender(io.StringIO()), SlackSender(TOKEN)]
    for sender in senders:
        for name in ("send", "send_notice", "close"):
            assert asyncio.iscoroutinefunction(getattr(sender, name))
