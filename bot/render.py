"""Render alerts as escaped Slack mrkdwn (Block Kit + fallback text) or as terminal text."""

from __future__ import annotations

import ipaddress
import re
import textwrap
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from urllib.parse import quote, urlsplit, urlunsplit

from bot.mention import mentions_text
from bot.models import AlertContent, Message

MARK_START, MARK_END = "\x02", "\x03"  # bold marks from bot.summarize
MAX_SECTION = 3000  # Slack: section / context text object
MAX_HEADLINE = 150  # our title cap, as Slack's header block
MAX_TEXT = 4000  # fallback `text` (Slack truncates long ones)
MAX_BLOCKS = 50  # Slack: blocks per message
MAX_URL = 2000  # longer links are shown without a link
MAX_NAME = 100  # source, rule names, terms
MAX_LIST = 10  # rule names / terms shown before "+N more"
TERMINAL_WIDTH = 100

_LOOKALIKES = str.maketrans({"*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"})
_BROADCAST = re.compile(r"@(?=(?:here|channel|everyone)\b)", re.IGNORECASE)
_LEADING_QUOTE = re.compile(r"^([\x02\x03]*)>")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_INVISIBLE = frozenset("\u115f\u3164\uffa0")  # Hangul fillers: blank but category Lo
_EDGE_SPACES = re.compile(r" (?=[\x02\x03]*$)")  # a trailing space, marks aside
_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")
_URL_SAFE = "/?#[]@!$&()*+,;=:%-._~"  # everything else in path/query/fragment is %-encoded


def _clean(text: str, keep_marks: bool = False, max_len: int | None = None) -> str:
    """Strip control/format characters and collapse whitespace into single spaces (one line).

    With `max_len`, stops once more than `max_len` characters are kept (enough to know it is
    too long), so a megabyte of feed text costs no more than its first few thousand characters.
    """
    out: list[str] = []
    kept = 0
    for ch in text:
        if ch.isspace():
            if kept and out[-1] != " ":
                out.append(" ")
                kept += 1
        elif keep_marks and ch in (MARK_START, MARK_END):
            out.append(ch)
        elif unicodedata.category(ch) not in ("Cc", "Cf", "Cs") and ch not in _INVISIBLE:
            out.append(ch)
            kept += 1
        if max_len is not None and kept > max_len:
            break
    return _EDGE_SPACES.sub("", "".join(out))


def _neutralize(text: str) -> str:
    text = _LEADING_QUOTE.sub("\\1＞", text.translate(_LOOKALIKES))
    return _BROADCAST.sub("＠", text)


def _entities(text: str) -> str:
    return "".join(_ENTITIES.get(ch, ch) for ch in text)


def escape(text: str) -> str:
    """Feed text as inert single-line mrkdwn: no tokens, no formatting, no invisibles.

    Everything from a feed is untrusted; this

    - drops control, format (zero-width, bidi, soft hyphen, tag) and surrogate characters, and
      collapses all whitespace, newlines included, into single spaces;
    - neutralizes mrkdwn by swapping its markup characters for look-alikes that Slack does not
      parse: `*` → `∗` (U+2217), `_` → `ˍ` (U+02CD), `~` → `∼` (U+223C), `` ` `` → `ˋ` (U+02CB),
      `@` of a bare `@here`/`@channel`/`@everyone` → `＠` (U+FF20), and a leading `>` (which
      Slack renders as a quote even as `&gt;`) → `＞` (U+FF1E). Slack has no backslash escape,
      and zero-width tricks are what we strip, so look-alikes are the dependable choice;
    - turns `&`, `<`, `>` into entities last, so no `<!…>`, `<@…>`, `<#…>` or `<url|label>` token
      can come from a feed: the only tokens in a message are the links this module builds
      and a rule's own mention (bot.mention).

    Every mrkdwn text object is `verbatim`, so Slack does not link-ify bare names or URLs
    either. Lengths are cut between source characters (never inside `&amp;` or a link token),
    at a word when one is near, never inside a grapheme, with "…".
    """
    return _entities(_neutralize(_clean(text)))


def safe_url(url: str | None) -> str | None:
    """An http(s) URL safe inside `<url|label>`, or None (other schemes, credentials, bad host)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme.lower() not in ("http", "https") or not host or "@" in parts.netloc:
        return None
    try:
        netloc = f"[{ipaddress.IPv6Address(host).compressed}]"
    except ValueError:
        try:  # the round trip refuses hosts IDNA would map elsewhere (faß → fass, ｅ → e)
            netloc = host.encode("idna").decode("ascii").lower()
            if netloc.encode("ascii").decode("idna") != host.lower():
                return None
        except UnicodeError:
            return None
        if not _HOST.fullmatch(netloc):
            return None
    if port is not None:
        netloc += f":{port}"
    encode = [quote(p, safe=_URL_SAFE) for p in (parts.path, parts.query, parts.fragment)]
    return urlunsplit((parts.scheme.lower(), netloc, *encode))


def url_host(url: str | None) -> str | None:
    """The host a safe link really goes to, as shown to readers (IDN in its xn-- form)."""
    safe = safe_url(url)
    return urlsplit(safe).hostname if safe else None


def _extends_previous(chars: Sequence[str], k: int) -> bool:
    """True when cutting before chars[k] would split a grapheme."""
    if k <= 0 or k >= len(chars):
        return False
    cp = ord(chars[k])
    if unicodedata.category(chars[k]).startswith("M") or 0x1F3FB <= cp <= 0x1F3FF:
        return True
    if 0x1160 <= cp <= 0x11FF or 0xD7B0 <= cp <= 0xD7FF:  # conjoining Hangul vowels, finals
        return True
    regional = 0x1F1E6 <= cp <= 0x1F1FF
    run = 0
    while regional and k - run - 1 >= 0 and 0x1F1E6 <= ord(chars[k - run - 1]) <= 0x1F1FF:
        run += 1
    return run % 2 == 1


def _fit(text: str, limit: int, marks: bool = False, markup: bool = False) -> str:
    """Feed text as escaped mrkdwn of at most `limit` characters; marks become bold.

    `markup=True` keeps `*`, `_`, `~` and backquotes as typed (our own notices, where
    `channel_not_found` should read as such); tokens are escaped either way.
    """
    return _fit_cut(text, limit, marks, markup)[0]


def _fit_sentences(sentences: Sequence[str], limit: int) -> str:
    """Summary sentences (with marks) within `limit`: whole sentences while they fit, then
    " …"; only when the first alone is too long is it cut at a word."""
    text, cut = _fit_cut(" ".join(sentences), limit, marks=True)
    if not cut:
        return text
    for n in range(len(sentences) - 1, 0, -1):
        head, head_cut = _fit_cut(" ".join(sentences[:n]), limit - 2, marks=True)
        if head and not head_cut:
            return head + " …"
    return text


def _fit_cut(text: str, limit: int, marks: bool = False, markup: bool = False) -> tuple[str, bool]:
    """`_fit`, and whether it had to cut."""
    cleaned = _clean(text, keep_marks=marks, max_len=limit)
    if not markup:
        cleaned = _neutralize(cleaned)
    chars: list[str] = []
    bold: list[bool] = []
    state = False
    for ch in cleaned:
        if ch in (MARK_START, MARK_END):
            state = ch == MARK_START
        else:
            chars.append(ch)
            bold.append(state)
    _widen_to_words(chars, bold)
    pieces: list[str] = []
    for k, ch in enumerate(chars):
        piece = _ENTITIES.get(ch, ch)
        if bold[k] and (k == 0 or not bold[k - 1]):
            piece = "*" + piece
        if bold[k] and (k == len(chars) - 1 or not bold[k + 1]):
            piece += "*"
        pieces.append(piece)
    if sum(map(len, pieces)) <= limit:
        return "".join(pieces), False
    room, kept = limit - 2, 0  # room for a closing "*" and "…"
    while kept < len(pieces) and room >= len(pieces[kept]):
        room -= len(pieces[kept])
        kept += 1
    space = max((k for k in range(kept + 1) if k < len(chars) and chars[k] == " "), default=0)
    cut = space if space >= kept // 2 else kept
    while _extends_previous(chars, cut):
        cut -= 1
    while cut > 0 and chars[cut - 1] == " ":
        cut -= 1
    out = "".join(pieces[:cut])
    if cut > 0 and bold[cut - 1] and not pieces[cut - 1].endswith("*"):
        out += "*"
    return out + "…", True


def _widen_to_words(chars: list[str], bold: list[bool]) -> None:
    """Slack cannot bold part of a word: a mark inside a word bolds all of it; spaces only
    between bold words (so no run starts or ends with a space)."""
    n = len(chars)
    for k in range(n):
        if chars[k] == " ":
            bold[k] = False
    for k in range(1, n):  # forwards: letters after a bold letter
        if bold[k - 1] and chars[k].isalnum() and chars[k - 1].isalnum():
            bold[k] = True
    for k in range(n - 2, -1, -1):  # backwards: letters before a bold letter
        if bold[k + 1] and chars[k].isalnum() and chars[k + 1].isalnum():
            bold[k] = True
    for k in range(1, n - 1):
        if chars[k] == " " and bold[k - 1] and bold[k + 1]:
            bold[k] = True


def _mrkdwn(text: str) -> dict[str, object]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _when(published: datetime | None, tz: tzinfo) -> str:
    if published is None:
        return "time unknown"
    return published.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z").strip()


def _names(items: Sequence[str], bold: bool = False) -> str:
    shown = [_fit(item, MAX_NAME) for item in items[:MAX_LIST]]
    shown = [f"*{s}*" if bold else s for s in shown if s]
    more = len(items) - MAX_LIST
    return ", ".join(shown) + (f" +{more} more" if more > 0 else "")


def render_message(alert: AlertContent, tz: tzinfo = UTC) -> Message:
    """The Slack message for one alert: linked headline, context, summary, fallback text."""
    title = _fit(alert.title, MAX_HEADLINE) or "(untitled)"
    url = safe_url(alert.link)
    link = _entities(url) if url and len(url) <= MAX_URL else None
    headline = f"<{link}|{title}>" if link else title
    meta = [_fit(alert.source, MAX_NAME) or "unknown source"]
    host = url_host(url) if link else None
    if host:
        meta.append(host)
    meta.append(_when(alert.published, tz))
    why = []
    if alert.rules:
        why.append(f"Rules: {_names(alert.rules)}")
    if alert.terms:
        why.append(f"Terms: {_names(alert.terms, bold=True)}")
    # at most ~2,300 characters: every part is capped (MAX_NAME, MAX_LIST), under MAX_SECTION
    elements = [_mrkdwn(" · ".join(meta))]
    if why:
        elements.append(_mrkdwn(" · ".join(why)))
    blocks: list[dict[str, object]] = [  # 2-3 blocks, far below MAX_BLOCKS
        {"type": "section", "text": _mrkdwn(f"*{headline}*")},
        {"type": "context", "elements": elements},
    ]
    body = _fit_sentences(alert.summary, MAX_SECTION)
    if body:
        blocks.append({"type": "section", "text": _mrkdwn(body)})
    mentions = mentions_text(alert.mentions)  # from the rules only, never from the feed
    prefix = f"{mentions} {headline} · {meta[0]}".lstrip()
    rest = _fit_sentences(alert.summary, MAX_TEXT - len(prefix) - 3) if body else ""
    text = f"{prefix} — {rest}" if rest else prefix
    if mentions:
        blocks.insert(0, {"type": "section", "text": _mrkdwn(mentions)})
    return Message(channel=alert.channel, text=text, blocks=tuple(blocks))


def render_notice(text: str, channel: str = "") -> Message:
    """An operational notice (our own words): escaped, so no links and no mentions."""
    body = _fit(text, MAX_SECTION, markup=True) or "(empty notice)"
    return Message(
        channel=channel,
        text=_fit(text, MAX_TEXT, markup=True) or body,
        blocks=({"type": "section", "text": _mrkdwn(body)},),
    )


def render_terminal(alert: AlertContent, tz: tzinfo = UTC) -> str:
    """A readable multi-line block for a terminal: controls stripped, marks as **bold**."""

    def plain(text: str, limit: int = 300) -> str:
        cleaned = _clean(text, max_len=limit)
        return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"

    url = safe_url(alert.link)
    lines = [f"[{plain(alert.channel)}] {plain(alert.title) or '(untitled)'}"]
    if url:
        lines.append(f"  {url}")
    lines.append(f"  {plain(alert.source)} · {_when(alert.published, tz)}")
    why = [
        f"{label}: {', '.join(plain(item, MAX_NAME) for item in items)}"
        for label, items in (("rules", alert.rules), ("terms", alert.terms))
        if items
    ]
    if why:
        lines.append("  " + " · ".join(why))
    for sentence in alert.summary:
        marked = _clean(sentence, keep_marks=True).replace(MARK_START, "**")
        wrapped = textwrap.fill(
            marked.replace(MARK_END, "**"),
            width=TERMINAL_WIDTH,
            initial_indent="  > ",
            subsequent_indent="    ",
        )
        lines.append(wrapped)
    return "\n".join(lines)


def render_terminal_notice(text: str, channel: str = "") -> str:
    """An operational notice for a terminal: one line, controls stripped."""
    where = f"[{_clean(channel)}] " if channel else ""
    return f"{where}notice: {_clean(text)}"


def render_reply(alert: AlertContent, tz: tzinfo = UTC) -> Message:
    """A near-duplicate in its story's thread: "also reported by <source>: <linked headline>"."""
    title = _fit(alert.title, MAX_HEADLINE) or "(untitled)"
    url = safe_url(alert.link)
    link = _entities(url) if url and len(url) <= MAX_URL else None
    headline = f"<{link}|{title}>" if link else title
    source = _fit(alert.source, MAX_NAME) or "unknown source"
    text = f"also reported by {source}: {headline}"
    meta = [_when(alert.published, tz)]
    if alert.rules:
        meta.append(f"Rules: {_names(alert.rules)}")
    blocks: tuple[dict[str, object], ...] = (
        {"type": "section", "text": _mrkdwn(text)},
        {"type": "context", "elements": [_mrkdwn(" · ".join(meta))]},
    )
    return Message(channel=alert.channel, text=text, blocks=blocks)


def render_edit(alert: AlertContent, tz: tzinfo = UTC) -> Message:
    """An article edited at its source, in its alert's thread: "updated: <linked headline>"."""
    title = _fit(alert.title, MAX_HEADLINE) or "(untitled)"
    url = safe_url(alert.link)
    link = _entities(url) if url and len(url) <= MAX_URL else None
    text = f"updated: <{link}|{title}>" if link else f"updated: {title}"
    blocks: tuple[dict[str, object], ...] = ({"type": "section", "text": _mrkdwn(text)},)
    return Message(channel=alert.channel, text=text, blocks=blocks)


def render_terminal_edit(alert: AlertContent) -> str:
    """An edit at the source for a terminal: one line under the alert it follows."""
    title = _clean(alert.title, max_len=300) or "(untitled)"
    url = safe_url(alert.link)
    return f"[{_clean(alert.channel)}]   updated: {title}" + (f" {url}" if url else "")


def render_story(alert: AlertContent, others: int, tz: tzinfo = UTC) -> Message:
    """A story's first message again, saying how many other sources reported it (in its thread)."""
    message = render_message(alert, tz)
    if others <= 0:
        return message
    note = f"also reported by {others} other {'source' if others == 1 else 'sources'} (thread)"
    extra: dict[str, object] = {"type": "context", "elements": [_mrkdwn(note)]}
    text = f"{message.text} · {note}"
    return Message(
        message.channel, text if len(text) <= MAX_TEXT else message.text, (*message.blocks, extra)
    )


def render_terminal_reply(alert: AlertContent) -> str:
    """A near-duplicate for a terminal: one line under the story it repeats."""
    title = _clean(alert.title, max_len=300) or "(untitled)"
    url = safe_url(alert.link)
    return f"[{_clean(alert.channel)}]   also reported by {_clean(alert.source)}: {title}" + (
        f" {url}" if url else ""
    )
