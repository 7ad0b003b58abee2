"""Noise-control settings as written: a rule's delivery, cap, mention; a channel's quiet hours."""

from __future__ import annotations

import re
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.errors import RuleError
from bot.mention import MENTION
from bot.models import Digest, QuietHours
from bot.scheduler import cron_problem
from bot.yamlfile import Document

NOISE_KEYS = frozenset({"delivery", "max_per_hour", "mention"})
DIGEST_KEYS = frozenset({"digest", "timezone"})
MAX_PER_HOUR = 1000
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def read_noise(doc: Document) -> dict[str, Any]:
    """The Rule fields `digest`, `max_per_hour` and `mention` of a rule file (checked, with
    the line of each problem)."""
    data = doc.data
    path = doc.path

    def fail(reason: str, *keys: object) -> RuleError:
        line = doc.line(*keys) if len(keys) > 1 else None
        return RuleError(path, reason, line or doc.key_line(keys[0]))

    digest = None
    delivery = data.get("delivery", "immediate")
    if isinstance(delivery, dict):
        for key in delivery:
            if key not in DIGEST_KEYS:
                raise RuleError(
                    path,
                    f"unknown key {key!r} in delivery (expected digest and timezone)",
                    doc.key_line("delivery", key),
                )
        cron, tz = delivery.get("digest"), delivery.get("timezone")
        if not isinstance(cron, str) or not cron.strip():
            raise fail("delivery.digest must be a cron schedule, e.g. '0 9 * * *'", "delivery")
        if not isinstance(tz, str) or not known_timezone(tz):
            raise fail(
                f"delivery.timezone must name a time zone, e.g. Asia/Seoul (got {tz!r})",
                *(("delivery", "timezone") if "timezone" in delivery else ("delivery",)),
            )
        if (problem := cron_problem(cron, tz)) is not None:
            raise fail(f"delivery.digest {cron!r}: {problem}", "delivery", "digest")
        digest = Digest(" ".join(cron.split()), tz)
    elif delivery != "immediate":
        raise fail(
            "delivery must be 'immediate' or a mapping {digest: CRON, timezone: TZ}", "delivery"
        )
    cap = data.get("max_per_hour")
    if cap is not None and (
        not isinstance(cap, int) or isinstance(cap, bool) or not 1 <= cap <= MAX_PER_HOUR
    ):
        raise fail(f"max_per_hour must be a whole number from 1 to {MAX_PER_HOUR}", "max_per_hour")
    mention = data.get("mention")
    if mention is not None and (not isinstance(mention, str) or not MENTION.match(mention)):
        raise fail(
            "mention must be a user group '<!subteam^S…>', a user '<@U…>', 'here' or 'channel'",
            "mention",
        )
    return {"digest": digest, "max_per_hour": cap, "mention": mention}


def read_quiet_hours(value: Any, default_timezone: str) -> QuietHours:
    """`{quiet_hours: "22:00-07:00", timezone: Asia/Seoul}` → QuietHours (the timezone defaults
    to the display timezone); ValueError saying why not."""
    if not isinstance(value, dict):
        raise ValueError("must be a mapping with quiet_hours and timezone")
    unknown = set(value) - {"quiet_hours", "timezone"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r} (expected quiet_hours, timezone)")
    window, tz = value.get("quiet_hours"), value.get("timezone", default_timezone)
    parts = window.split("-") if isinstance(window, str) else []
    clocks = [_CLOCK.match(p.strip()) for p in parts]
    if len(parts) != 2 or not all(clocks):
        raise ValueError(f"quiet_hours must be 'HH:MM-HH:MM', e.g. '22:00-07:00' (got {window!r})")
    start, end = (time(int(m.group(1)), int(m.group(2))) for m in clocks if m)
    if start == end:
        raise ValueError("quiet_hours must not start and end at the same time")
    if not isinstance(tz, str) or not known_timezone(tz):
        raise ValueError(f"timezone must name a time zone, e.g. Asia/Seoul (got {tz!r})")
    return QuietHours(start, end, tz)


def known_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
