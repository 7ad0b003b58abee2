"""Send rendered alerts to Slack (the only module importing slack_sdk) or to a terminal."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from datetime import UTC, tzinfo
from typing import Protocol, TextIO

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import (
    SlackCredentialError,
    SlackError,
    SlackPermanentError,
    SlackTransientError,
    SlackUnknownOutcomeError,
)
from bot.models import AlertContent, Message, PostResult
from bot.render import render_message, render_notice, render_terminal, render_terminal_notice

DEFAULT_TIMEOUT = 10.0  # seconds for one whole request

# Slack error codes (`ok: false`) worth retrying later; anything else is permanent.
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# The token itself is unusable: stop all sending, not just one route.
CREDENTIAL_ERRORS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "not_allowed_token_type",
        "ekm_access_denied",
        "org_login_required",
    }
)
# This destination will not take messages: pause the route, keep the others going.
DESTINATION_ERRORS = frozenset(
    {"channel_not_found", "not_in_channel", "is_archived", "restricted_action"}
)
# The message itself was refused: a plainer rendering may pass.
CONTENT_ERRORS = frozenset({"msg_too_long", "invalid_blocks", "msg_blocks_too_long", "no_text"})


class Sender(Protocol):
    """Where alerts go: Slack, or a terminal for offline runs."""

    async def send(self, alert: AlertContent) -> PostResult: ...

    async def send_notice(self, channel: str, text: str) -> PostResult: ...

    async def close(self) -> None: ...


class SlackSender:
    """Posts with slack-sdk's AsyncWebClient; every failure becomes a SlackError.

    slack-sdk never retries here (`retry_handlers=[]`): its default connection-error retry
    re-posts when the connection drops after Slack accepted the message, so retries belong to
    the caller's pending-alert store. Proxy environment variables are ignored. With no shared
    session, each call opens and closes its own aiohttp session: nothing leaks, and a dropped
    connection is never a stale keep-alive one.
    """

    def __init__(
        self,
        token: str,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        tz: tzinfo = UTC,
    ) -> None:
        self._client = AsyncWebClient(
            token=token,
            base_url=base_url or AsyncWebClient.BASE_URL,
            timeout=timeout,  # type: ignore[arg-type]  # annotated int, used as aiohttp's float
            retry_handlers=[],
        )
        self._client.proxy = None  # the constructor loads HTTPS_PROXY & co.; we never proxy
        self._tz = tz

    @property
    def client(self) -> AsyncWebClient:
        return self._client

    async def send(self, alert: AlertContent) -> PostResult:
        return await self._post(render_message(alert, self._tz))

    async def send_notice(self, channel: str, text: str) -> PostResult:
        return await self._post(render_notice(text, channel))

    async def close(self) -> None:
        """Nothing stays open between calls; kept so every Sender closes the same way."""

    async def _post(self, message: Message) -> PostResult:
        try:
            response = await self._client.chat_postMessage(
                channel=message.channel,
                text=message.text,
                blocks=list(message.blocks),
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as e:
            raise classify_api_error(message.channel, e) from e
        except aiohttp.ClientConnectorError as e:  # never connected: nothing was sent
            raise SlackTransientError(message.channel, f"connection failed: {e}") from e
        except (aiohttp.ClientError, TimeoutError) as e:
            reason = f"{type(e).__name__}: {e}".rstrip(": ")
            raise SlackUnknownOutcomeError(message.channel, reason) from e
        except AttributeError as e:
            # slack-sdk (3.48) fails this way reading a 200 whose body is not JSON, as a proxy
            # in front of Slack may send: whether Slack got the message is unknown.
            raise SlackUnknownOutcomeError(
                message.channel, "unreadable 200 response (not JSON)"
            ) from e
        ts, channel_id = response.get("ts"), response.get("channel")
        return PostResult(
            channel=message.channel,
            ts=ts if isinstance(ts, str) else None,
            channel_id=channel_id if isinstance(channel_id, str) else None,
        )


def classify_api_error(channel: str, error: SlackApiError) -> SlackError:
    """Our error for a response Slack (or something in front of it) refused."""
    response = error.response
    # an AsyncSlackResponse, or aiohttp's response when the body was not JSON
    raw_status = getattr(response, "status_code", None) or getattr(response, "status", None)
    status = raw_status if isinstance(raw_status, int) else 0
    headers: Mapping[str, str] = getattr(response, "headers", None) or {}
    data = getattr(response, "data", None)
    code = data.get("error") if isinstance(data, dict) else None
    code = code if isinstance(code, str) and code else None
    if status == 429 or code == "ratelimited":
        after = parse_retry_after(headers.get("Retry-After"))
        return SlackTransientError(channel, code or "http 429", retry_after=after)
    if status >= 500 or status == 408 or code in TRANSIENT_ERRORS:
        after = parse_retry_after(headers.get("Retry-After"))
        return SlackTransientError(channel, code or f"http {status}", retry_after=after)
    if code in CREDENTIAL_ERRORS:
        return SlackCredentialError(channel, code)
    if code:
        return SlackPermanentError(channel, code)
    if 200 <= status < 300:  # 200 without a usable body: someone in between garbled it
        return SlackTransientError(channel, f"http {status} without a Slack answer")
    return SlackPermanentError(channel, f"http {status}")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; None when missing, negative or not a number."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class TerminalSender:
    """Prints alerts to a text stream (stdout by default) for offline runs and demos."""

    def __init__(self, stream: TextIO | None = None, tz: tzinfo = UTC) -> None:
        self._stream = stream
        self._tz = tz

    async def send(self, alert: AlertContent) -> PostResult:
        await self._write(render_terminal(alert, self._tz))
        return PostResult(channel=alert.channel, ts=None)

    async def send_notice(self, channel: str, text: str) -> PostResult:
        await self._write(render_terminal_notice(text, channel))
        return PostResult(channel=channel, ts=None)

    async def close(self) -> None:
        stream = self._stream or sys.stdout
        stream.flush()

    async def _write(self, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(text + "\n\n")
        stream.flush()
