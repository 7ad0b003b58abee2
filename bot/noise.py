"""Noise control as pure decisions: which alerts post now, which wait, how waiting ones batch."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.models import AlertContent, Article, Batch, QuietHours, Rule
from bot.scheduler import next_fire
from bot.story import Signature, story_score

HOUR = timedelta(hours=1)  # the rolling window of `max_per_hour`
MAX_BATCH_KEPT = 100  # alerts kept in one batch's message (the rest are counted: "and N more")


@dataclass(frozen=True)
class NoiseSettings:
    """What noise control needs from the configuration."""

    quiet_hours: Mapping[str, QuietHours] = field(default_factory=dict)  # by channel
    display_timezone: str = "UTC"
    fold_threshold: float | None = None  # stories' threshold: copies in one batch listed once


@dataclass(frozen=True)
class Hold:
    """An alert kept back, to go out in a batch of its `kind` once `release_at` has come."""

    kind: str  # "digest", "catch-up" or "quiet"
    channel: str
    rule: str  # the rule it waits for ("" for quiet hours: the channel's batch)
    cross_key: str
    content: AlertContent
    release_at: datetime
    signature: str = ""  # its story signature (Signature.encode()), "" without one


@dataclass(frozen=True)
class Note:
    """A word in a rule's channel that its cap was reached (at most one an hour per rule)."""

    rule: str
    channel: str
    text: str


@dataclass(frozen=True)
class Recent:
    """What the store knows of each rule's last hour: alerts posted, the oldest, last note."""

    counts: Mapping[str, int] = field(default_factory=dict)
    oldest: Mapping[str, datetime] = field(default_factory=dict)
    noted: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """A poll's alerts sorted out: those to queue now, those held, what counts, the notes."""

    immediate: tuple[tuple[Article, AlertContent], ...] = ()
    holds: tuple[Hold, ...] = ()
    spoke: tuple[tuple[str, str, str], ...] = ()  # (rule, channel, cross key) posted now
    notes: tuple[Note, ...] = ()
    later: tuple[tuple[Article, AlertContent, datetime], ...] = ()  # copies queued for then


@dataclass(frozen=True)
class HeldRow:
    """A hold as the store keeps it, with its id and whether its article reached the channel
    some other way since (then it is dropped, not repeated)."""

    id: int
    hold: Hold
    held_at: datetime
    posted: bool = False


def quiet_until(quiet: QuietHours, now: datetime) -> datetime | None:
    """The end (aware UTC) of the quiet hours `now` falls in, or None outside them.

    The window is local wall-clock time in its timezone; one that ends at or before it starts
    runs over midnight. Each candidate window (starting yesterday or today, local) is turned
    into UTC before comparing, so DST days are handled: a start or end skipped in spring is
    read as the time after the gap, one repeated in autumn as its first occurrence."""
    tz = ZoneInfo(quiet.timezone)
    local_day = now.astimezone(tz).date()
    for back in (1, 0):
        day = local_day - timedelta(days=back)
        start = datetime.combine(day, quiet.start, tz).astimezone(UTC)
        end_day = day + timedelta(days=1) if quiet.end <= quiet.start else day
        end = datetime.combine(end_day, quiet.end, tz).astimezone(UTC)
        if start <= now < end:
            return end
    return None


def plan_alerts(
    alerts: Sequence[tuple[Article, AlertContent]],
    rules: Mapping[str, Rule],
    settings: NoiseSettings,
    recent: Recent,
    now: datetime,
    covered: Collection[tuple[str, str]] = (),
    copies: Collection[tuple[str, str]] = (),
    signatures: Mapping[str, Signature] | None = None,
) -> Plan:
    """Decide for each (article, channel) alert: post now, or hold it.

    - the channel is in its quiet hours: the alert is held until they end (its rules' digests
      do not repeat it);
    - else the rules that post immediately (a digest rule with a cap does, up to its cap) and
      are under their `max_per_hour` post it now, with their mentions; a rule over its cap
      holds it for its digest, or, without one, for one catch-up message when its hour's
      window reopens, and says so once an hour;
    - digest rules hold it for their next digest unless it posts (or waits) some other way;
    - an alert `covered` (its channel and article key) is already in, or waits for, a batch
      that is not a digest's: it is left out, so the channel never sees the article twice;
    - a `copy` (its channel and article key) repeats a story already queued or posted in its
      channel: it goes into that story's thread, which pings nobody, whatever its rules'
      delivery, without mentions and without counting against a cap; in quiet hours it is
      queued for their end (`later`), so a thread does not grow at night either.

    A hold keeps its article's story signature (`signatures`, by feed key), so that copies
    held for one batch are listed once (see `batches`).
    """
    counts = dict(recent.counts)
    oldest = dict(recent.oldest)
    noted = dict(recent.noted)
    immediate: list[tuple[Article, AlertContent]] = []
    holds: list[Hold] = []
    spoke: list[tuple[str, str, str]] = []
    notes: list[Note] = []
    later: list[tuple[Article, AlertContent, datetime]] = []
    tz = ZoneInfo(settings.display_timezone)
    for article, content in alerts:
        channel, key = content.channel, article.cross_key
        if (channel, key) in covered:
            continue
        quiet = settings.quiet_hours.get(channel)
        quiet_end = quiet_until(quiet, now) if quiet is not None else None
        if (channel, key) in copies:
            reply = replace(content, mentions=())
            if quiet_end is not None:
                later.append((article, reply, quiet_end))
            else:
                immediate.append((article, reply))
            continue
        matched = [rules.get(name) for name in content.rules]
        now_rules = [r for r in matched if r is None or not _digest_only(r)]
        digest_rules = [r for r in matched if r is not None and _digest_only(r)]
        if quiet_end is not None and now_rules:
            mentions = _mentions(now_rules)
            holds.append(
                Hold("quiet", channel, "", key, replace(content, mentions=mentions), quiet_end)
            )
            continue
        speaking, over = [], []
        for rule in now_rules:
            cap = rule.max_per_hour if rule is not None else None
            if rule is not None and cap is not None and counts.get(rule.name, 0) >= cap:
                over.append(rule)
                continue
            speaking.append(rule)
        if speaking:
            immediate.append((article, replace(content, mentions=_mentions(speaking))))
            for rule in speaking:
                if rule is not None:
                    spoke.append((rule.name, channel, key))
                    counts[rule.name] = counts.get(rule.name, 0) + 1
                    oldest.setdefault(rule.name, now)
            continue
        if over:
            rule = over[0]  # one hold per article and channel: one message carries it
            if rule.digest is not None:
                release, kind = next_fire(rule.digest.cron, rule.digest.timezone, now), "digest"
            else:
                release, kind = oldest.get(rule.name, now) + HOUR, "catch-up"
            held = replace(content, mentions=_mentions([rule]))
            holds.append(Hold(kind, channel, rule.name, key, held, release))
            last = noted.get(rule.name)
            if last is None or now - last >= HOUR:
                noted[rule.name] = now
                notes.append(Note(rule.name, channel, cap_note(rule, kind, release, tz)))
            continue
        for rule in digest_rules:
            assert rule.digest is not None
            release = next_fire(rule.digest.cron, rule.digest.timezone, now)
            held = replace(content, mentions=_mentions([rule]))
            holds.append(Hold("digest", channel, rule.name, key, held, release))
    if signatures:
        by_key = {
            a.cross_key: sig.encode()
            for a, _ in alerts
            if (sig := signatures.get(a.feed_key)) is not None and sig.hashes
        }
        holds = [replace(h, signature=by_key.get(h.cross_key, "")) for h in holds]
    return Plan(tuple(immediate), tuple(holds), tuple(spoke), tuple(notes), tuple(later))


def cap_note(rule: Rule, kind: str, release: datetime, tz: ZoneInfo) -> str:
    """The note that a rule reached its cap and where its further matches go."""
    when = release.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z").strip()
    where = (
        f"its next digest at {when}"
        if kind == "digest"
        else f"one catch-up message at {when}, when its hour's window reopens"
    )
    return (
        f"Rule {rule.name} reached its limit of {rule.max_per_hour} "
        f"{'alert' if rule.max_per_hour == 1 else 'alerts'} an hour: "
        f"further matches go into {where}."
    )


@dataclass(frozen=True)
class Release:
    """What is due now: each batch with the ids of the holds it carries; the ids of holds
    dropped because their article reached the channel another way."""

    batches: tuple[tuple[Batch, tuple[int, ...]], ...] = ()
    dropped: tuple[int, ...] = ()


def batches(rows: Sequence[HeldRow], now: datetime, settings: NoiseSettings) -> Release:
    """The held alerts due at `now`, one batch per (kind, channel, rule), oldest first.

    Nothing goes to a channel in its quiet hours: a digest or catch-up due then waits for their
    end, as does a quiet-hours batch whose end the bot missed (down until the next night's
    window), which then goes out with that night's alerts. An alert that reached its channel
    some other way meanwhile is dropped (never repeated there). With `fold_threshold`, a held
    copy of a story held earlier in the same batch is listed on that story's line ("also
    reported by …") instead of a line of its own."""
    groups: dict[tuple[str, str, str], list[HeldRow]] = {}
    dropped = []
    for row in rows:
        hold = row.hold
        if hold.release_at > now:
            continue
        if row.posted:
            dropped.append(row.id)
            continue
        quiet = settings.quiet_hours.get(hold.channel)
        if quiet is not None and quiet_until(quiet, now) is not None:
            continue  # also last night's batch, if the bot was down until tonight's window
        groups.setdefault((hold.kind, hold.channel, hold.rule), []).append(row)
    out = []
    for (kind, channel, rule), group in groups.items():
        group.sort(key=lambda r: r.id)
        seen: set[str] = set()
        items: list[AlertContent] = []
        also: list[list[str]] = []
        kept: list[tuple[int, Signature]] = []  # listed items' signatures, by item index
        for row in group:
            if row.hold.cross_key in seen:  # the same article held twice: listed once
                continue
            seen.add(row.hold.cross_key)
            story = _story_of(row.hold.signature, kept, settings.fold_threshold)
            if story is not None:
                source = row.hold.content.source
                if source not in also[story] and source != items[story].source:
                    also[story].append(source)
                continue
            if row.hold.signature and settings.fold_threshold is not None:
                kept.append((len(items), Signature.decode(row.hold.signature)))
            items.append(row.hold.content)
            also.append([])
        mentions = tuple(dict.fromkeys(m for c in items for m in c.mentions))
        batch = Batch(
            channel,
            kind,
            rule,
            tuple(items[:MAX_BATCH_KEPT]),
            len(items),
            mentions,
            min(r.held_at for r in group),
            tuple(tuple(a) for a in also[:MAX_BATCH_KEPT]) if any(also) else (),
        )
        out.append((batch, tuple(r.id for r in group)))
    return Release(tuple(out), tuple(dropped))


def _story_of(
    encoded: str, kept: Sequence[tuple[int, Signature]], threshold: float | None
) -> int | None:
    """The index of the listed item whose story the signature `encoded` repeats, if any."""
    if threshold is None or not encoded or not kept:
        return None
    sig = Signature.decode(encoded)
    best: tuple[float, int] | None = None
    for index, other in kept:
        score = story_score(sig, other)
        if score >= threshold and (best is None or score > best[0]):
            best = (score, index)
    return best[1] if best is not None else None


def _digest_only(rule: Rule) -> bool:
    """A digest rule without a cap speaks only in its digest; with `max_per_hour` it posts at
    once up to its cap and its digest takes the rest."""
    return rule.digest is not None and rule.max_per_hour is None


def _mentions(rules: Sequence[Rule | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r.mention for r in rules if r is not None and r.mention))
