"""Mentions, which come only from rules: the forms allowed and the Slack token of each."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A user group, a user, or a broadcast to the channel: nothing else is ever sent as a mention.
MENTION = re.compile(r"^(<!subteam\^S[A-Z0-9]{2,20}>|<@[UW][A-Z0-9]{2,20}>|here|channel)$")


def mention_token(mention: str) -> str | None:
    """The Slack token for a rule's mention; None for anything not in the allowed forms."""
    if not MENTION.match(mention):
        return None
    return f"<!{mention}>" if mention in ("here", "channel") else mention


def mentions_text(mentions: Iterable[str]) -> str:
    """The rules' mentions as Slack tokens, space-separated (anything else is dropped)."""
    return " ".join(t for t in (mention_token(m) for m in mentions) if t)
