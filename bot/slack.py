"""Send rendered alerts to Slack (the only module importing slack_sdk) or to a terminal."""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol, TextIO

import aiohttp
from slack_sdk.errors import SlackApiError, SlackObjectFormationError
from slack_sdk.models.blocks import Block, ContextBlock, SectionBlock
from slack_sdk.models.metadata import Metadata
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import (
    SlackCredentialError,
    SlackError,
    SlackPermanentError,
    SlackTransientError,
    SlackUnknownOutcomeError,
)
from bot.models import AlertContent, AlertTag, Batch, Message, PostResult
from bot.render import (
    MAX_BLOCKS,
    MAX_SECTION,
    render_edit,
    render_message,
    render_notice,
    render_reply,
    render_story,
    render_terminal,
    render_terminal_edit,
    render_terminal_notice,
    render_terminal_reply,
)
from bot.render_batch import render_batch, render_terminal_batch

log = logging.getLogger("newswatch.slack")

DEFAULT_TIMEOUT = 10.0  # seconds for one whole request
EVENT_TYPE = "newswatch_alert"  # metadata {alert_id, article} tags each alert we post
MAX_BLOCKS_SIZE = 12_000  # our budget for the blocks' JSON (Slack refuses far larger ones)
HISTORY_PAGE = 200  # messages per conversations.history call when looking for an alert
HISTORY_PAGES = 5  # pages looked at before concluding an alert is not there
HISTORY_MARGIN = 120.0  # seconds looked back before the attempt began (clock skew)

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

    async def send(
        self, alert: AlertContent, tag: AlertTag | None = None, *, plain: bool = False
    ) -> PostResult:
        """Post one alert, tagged in its metadata; `plain`: the fallback text alone."""
        ...

    async def find(
        self,
        channel: str,
        tag: AlertTag,
        since: datetime,
        channel_id: str | None = None,
        thread_ts: str | None = None,
    ) -> PostResult | None:
        """The message already posted with `tag` since `since` (in the thread of `thread_ts`,
        if given), or None if there is none."""
        ...

    async def send_follow_up(
        self,
        alert: AlertContent,
        thread_ts: str | None,
        tag: AlertTag | None = None,
        *,
        edit: bool = False,
        plain: bool = False,
    ) -> PostResult:
        """Post in the thread of `thread_ts` (top-level without one): "also reported by …" for
        a near-duplicate of the story, or with `edit` "updated: <headline>" for an article
        edited at its source."""
        ...

    async def update_story(
        self, alert: AlertContent, channel_id: str, ts: str, others: int, tag: AlertTag
    ) -> None:
        """Show on a story's first message how many other sources reported it."""
        ...

    async def send_notice(
        self, channel: str, text: str, tag: AlertTag | None = None
    ) -> PostResult: ...

    async def send_batch(
        self, batch: Batch, tag: AlertTag | None = None, *, plain: bool = False
    ) -> PostResult:
        """Post held alerts as one message (a digest, a catch-up, quiet hours' alerts)."""
        ...

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

    async def send(
        self, alert: AlertContent, tag: AlertTag | None = None, *, plain: bool = False
    ) -> PostResult:
        return await self._post(render_message(alert, self._tz), _tag(tag), plain=plain)

    async def send_notice(self, channel: str, text: str, tag: AlertTag | None = None) -> PostResult:
        return await self._post(render_notice(text, channel), _tag(tag))

    async def send_batch(
        self, batch: Batch, tag: AlertTag | None = None, *, plain: bool = False
    ) -> PostResult:
        return await self._post(render_batch(batch, self._tz), _tag(tag), plain=plain)

    async def send_follow_up(
        self,
        alert: AlertContent,
        thread_ts: str | None,
        tag: AlertTag | None = None,
        *,
        edit: bool = False,
        plain: bool = False,
    ) -> PostResult:
        message = (render_edit if edit else render_reply)(alert, self._tz)
        return await self._post(message, _tag(tag), plain=plain, thread_ts=thread_ts or None)

    async def update_story(
        self, alert: AlertContent, channel_id: str, ts: str, others: int, tag: AlertTag
    ) -> None:
        """chat.update of the story's first message (blocks checked as for a post; the tag is
        sent again so the message stays findable). Repeating it is harmless."""
        message = render_story(alert, others, self._tz)
        try:
            await self._client.chat_update(
                channel=channel_id,
                ts=ts,
                text=message.text,
                blocks=checked_blocks(alert.channel, message.blocks),
                metadata=_tag(tag),
            )
        except SlackApiError as e:
            raise classify_api_error(alert.channel, e) from e
        except (aiohttp.ClientError, TimeoutError, AttributeError) as e:
            raise SlackTransientError(alert.channel, f"update failed: {e!r}") from e

    async def find(
        self,
        channel: str,
        tag: AlertTag,
        since: datetime,
        channel_id: str | None = None,
        thread_ts: str | None = None,
    ) -> PostResult | None:
        """Look through the channel's messages (or the thread's replies) since `since`, newest
        first, for our tag.

        Needs `channels:history` (public) or `groups:history` (private channels); Slack's
        refusal (missing scope, unknown channel) raises SlackPermanentError.
        """
        where = channel_id or channel
        oldest = f"{max(since.timestamp() - HISTORY_MARGIN, 0):.6f}"
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            try:
                if thread_ts is not None:  # replies live in their thread, not the history
                    response = await self._client.conversations_replies(
                        channel=where,
                        ts=thread_ts,
                        oldest=oldest,
                        limit=HISTORY_PAGE,
                        include_all_metadata=True,
                        cursor=cursor,
                    )
                else:
                    response = await self._client.conversations_history(
                        channel=where,
                        oldest=oldest,
                        limit=HISTORY_PAGE,
                        include_all_metadata=True,
                        cursor=cursor,
                    )
            except SlackApiError as e:
                raise classify_api_error(channel, e) from e
            except (aiohttp.ClientError, TimeoutError, AttributeError) as e:
                raise SlackTransientError(channel, f"history look-up failed: {e!r}") from e
            for found in response.get("messages") or []:
                if _tagged(found, tag):
                    ts = found.get("ts")
                    return PostResult(channel, ts if isinstance(ts, str) else None, channel_id)
            meta = response.get("response_metadata") or {}
            cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
            if not response.get("has_more") or not cursor:
                return None
        return None

    async def close(self) -> None:
        """Nothing stays open between calls; kept so every Sender closes the same way."""

    async def _post(
        self,
        message: Message,
        metadata: Metadata | None = None,
        *,
        plain: bool = False,
        thread_ts: str | None = None,
    ) -> PostResult:
        blocks = None if plain else checked_blocks(message.channel, message.blocks)
        try:
            response = await self._client.chat_postMessage(
                channel=message.channel,
                text=message.text,
                blocks=blocks,
                metadata=metadata,
                thread_ts=thread_ts,
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


def checked_blocks(channel: str, raw: Sequence[dict[str, object]]) -> list[Block] | None:
    """The blocks as slack-sdk models, checked against Slack's limits; None (post the escaped
    fallback text alone) when any limit is exceeded, so a refusal never costs an attempt."""
    try:
        blocks = Block.parse_all(list(raw))
        if not 1 <= len(blocks) <= MAX_BLOCKS:
            raise SlackObjectFormationError(f"{len(blocks)} blocks (1 to {MAX_BLOCKS})")
        for block in blocks:
            block.validate_json()  # section text ≤ 3000, context elements ≤ 10, ...
            if type(block) not in (SectionBlock, ContextBlock):
                raise SlackObjectFormationError(f"unexpected block type {block.type}")
            if isinstance(block, ContextBlock):
                for element in block.elements:
                    text = getattr(element, "text", "")
                    if not isinstance(text, str) or not 0 < len(text) <= MAX_SECTION:
                        raise SlackObjectFormationError("context text length")
        size = len(json.dumps([b.to_dict() for b in blocks], ensure_ascii=False))
        if size > MAX_BLOCKS_SIZE:
            raise SlackObjectFormationError(f"blocks are {size} characters")
    except (SlackObjectFormationError, KeyError, TypeError, AttributeError) as e:
        log.warning("channel=%s blocks refused before posting (%s): plain text sent", channel, e)
        return None
    return blocks


def _tag(tag: AlertTag | None) -> Metadata | None:
    if tag is None:
        return None
    payload = {"alert_id": tag.alert_id, "article": tag.article}
    return Metadata(event_type=EVENT_TYPE, event_payload=payload)


def _tagged(message: Any, tag: AlertTag) -> bool:
    if not isinstance(message, dict):
        return False
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != EVENT_TYPE:
        return False
    payload = metadata.get("event_payload")
    return (
        isinstance(payload, dict)
        and payload.get("alert_id") == tag.alert_id
        and payload.get("article") == tag.article
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
        return SlackTransientError(
            channel, code or "http 429", retry_after=after, rate_limited=True
        )
    if status in (500, 502, 504):  # a gateway gave up waiting: Slack may have posted it
        return SlackUnknownOutcomeError(channel, code or f"http {status}")
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

    async def send(
        self, alert: AlertContent, tag: AlertTag | None = None, *, plain: bool = False
    ) -> PostResult:
        await self._write(render_terminal(alert, self._tz))
        return PostResult(channel=alert.channel, ts=None)

    async def find(
        self,
        channel: str,
        tag: AlertTag,
        since: datetime,
        channel_id: str | None = None,
        thread_ts: str | None = None,
    ) -> PostResult | None:
        """A terminal keeps no history: a write that was interrupted is written again."""
        return None

    async def send_follow_up(
        self,
        alert: AlertContent,
        thread_ts: str | None,
        tag: AlertTag | None = None,
        *,
        edit: bool = False,
        plain: bool = False,
    ) -> PostResult:
        await self._write((render_terminal_edit if edit else render_terminal_reply)(alert))
        return PostResult(channel=alert.channel, ts=None)

    async def update_story(
        self, alert: AlertContent, channel_id: str, ts: str, others: int, tag: AlertTag
    ) -> None:
        """A terminal cannot change what it printed."""

    async def send_notice(self, channel: str, text: str, tag: AlertTag | None = None) -> PostResult:
        await self._write(render_terminal_notice(text, channel))
        return PostResult(channel=channel, ts=None)

    async def send_batch(
        self, batch: Batch, tag: AlertTag | None = None, *, plain: bool = False
    ) -> PostResult:
        await self._write(render_terminal_batch(batch, self._tz))
        return PostResult(channel=batch.channel, ts=None)

    async def close(self) -> None:
        stream = self._stream or sys.stdout
        stream.flush()

    async def _write(self, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(text + "\n\n")
        stream.flush()
