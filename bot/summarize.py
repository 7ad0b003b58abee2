"""Pick 1-3 of an article's own sentences for an alert, matched terms marked \x02...\x03."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence

from bot.models import Article, Hit, RuleMatch

MARK_START = "\x02"
MARK_END = "\x03"
MAX_SENTENCES = 3
MAX_SENTENCE_CHARS = 300  # per sentence, "…" included
MIN_SENTENCE_CHARS = 20  # shorter fragments (datelines, bylines) only fill in last
FIELDS_WITH_BODY = ("content", "summary")

# Words that end in "." without ending the sentence (compared lower-case, dot removed).
_ABBREVIATION_WORDS = """
    mr mrs ms dr prof sr jr st gen lt col maj capt cmdr adm sgt cpl pvt gov sen rep pres rev hon
    amb supt insp det messrs mme mlle jan feb mar apr jun jul aug sep sept oct nov dec mon tue
    tues thu thur thurs fri inc ltd co corp bros dept univ assn approx vs cf fig vol ch pp ed eds
    al mt ft ave blvd rd
"""
ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
_ACRONYM = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]?$")  # U.S, e.g, a.m, N.K (dot already removed)
_STOPS = ".?!。？！…"
_CLOSERS = "\"'”’»)]}」』〕）》〉"
_BREAKS = re.compile(f"[\n{re.escape(_STOPS)}]")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans `(start, end)` in `text`, whitespace trimmed; newlines always split."""
    spans: list[tuple[int, int]] = []
    start = 0
    for candidate in _BREAKS.finditer(text):
        i = candidate.start()
        if i < start:  # part of a stop run ("?!", "...") already consumed
            continue
        if text[i] == "\n":
            _add_span(text, start, i, spans)
            start = i + 1
        else:
            end = _sentence_end(text, i)
            if end is not None:
                _add_span(text, start, end, spans)
                start = end
    _add_span(text, start, len(text), spans)
    return spans


def _sentence_end(text: str, i: int) -> int | None:
    """Where the sentence ends if the stop at `i` ends one, else None."""
    n = len(text)
    j = i + 1
    while j < n and text[j] in _STOPS:  # "?!", "...", "?。"
        j += 1
    while j < n and text[j] in _CLOSERS:
        j += 1
    if text[i] in "。？！":  # CJK stops need no space after them
        return j
    if j < n and not text[j].isspace():
        # "다.그러나" (no space in sloppy Korean text) ends a sentence; "3.5", '다."라고' do not.
        if (
            text[i] == "."
            and j == i + 1
            and _HANGUL.match(text[i - 1 : i] or " ")
            and _HANGUL.match(text[j])
        ):
            return j
        return None
    if text[i] == "." and j == i + 1 and _is_abbreviation(text, i):
        return None
    k = j
    while k < n and text[k] in " \t\r\f\v\u00a0":
        k += 1
    if k < n and text[k].islower():  # '"Why?" he asked' / 'e.g. this'
        return None
    return j


def _is_abbreviation(text: str, dot: int) -> bool:
    start = dot
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in "(\"'“‘[":
        start -= 1
    word = text[start:dot]
    if not word:
        return False
    if len(word) == 1 and word.isalpha() and word.isupper():  # initials: "J. Smith"
        return True
    if _ACRONYM.match(word):
        return True
    lower = word.lower()
    if lower == "no":  # "No. 3", but "said no."
        following = text[dot + 1 : dot + 3].strip()
        return following[:1].isdigit()
    return lower in ABBREVIATIONS


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


def summarize(
    article: Article,
    matches: Sequence[RuleMatch],
    max_sentences: int = MAX_SENTENCES,
    max_chars: int = MAX_SENTENCE_CHARS,
) -> tuple[str, ...]:
    """1..max_sentences sentences in document order, each at most `max_chars` characters.

    Empty only when the article has no text at all.
    The body is the one of content and summary holding the most distinct matched terms, else
    the longer of the two; the title only when there is no body. Sentences holding the most
    distinct matched terms win, then the earliest (fragments shorter than MIN_SENTENCE_CHARS
    last). Each is marked like the sentences of a match's explanation (bot/explain.py).
    """
    field = _body_field(article, [h for m in matches for h in m.hits])
    text = article.field_text(field)
    spans = split_sentences(text)
    if not spans:
        return ()
    starts = [start for start, _ in spans]
    hits_in: list[list[Hit]] = [[] for _ in spans]
    for hit in (h for m in matches for h in m.hits):
        if hit.field != field or not 0 <= hit.start < hit.end <= len(text):
            continue
        k = max(0, bisect_right(starts, hit.start) - 1)
        while k < len(spans) and spans[k][0] < hit.end:
            if spans[k][1] > hit.start:
                hits_in[k].append(hit)
            k += 1

    def rank(k: int) -> tuple[int, bool, int]:
        start, end = spans[k]
        return (-len({h.term for h in hits_in[k]}), end - start < MIN_SENTENCE_CHARS, k)

    chosen = sorted(sorted(range(len(spans)), key=rank)[: max(1, max_sentences)])
    return tuple(mark_sentence(text, spans[k], hits_in[k], max_chars) for k in chosen)


def _body_field(article: Article, hits: Sequence[Hit]) -> str:
    content, summary = article.content.strip(), article.summary.strip()
    found = {name: len({h.term for h in hits if h.field == name}) for name in FIELDS_WITH_BODY}
    if content and summary and found["content"] != found["summary"]:
        return max(FIELDS_WITH_BODY, key=lambda name: found[name])
    if content and len(content) > len(summary):
        return "content"
    if summary:
        return "summary"
    return "title"


def mark_sentence(text: str, span: tuple[int, int], hits: Sequence[Hit], max_chars: int) -> str:
    """The sentence at `span`: whitespace collapsed, capped at a word, hits wrapped in marks.

    When the first hit lies beyond the cap, the excerpt starts a little before it, with "…".
    """
    start, end = span
    merged: list[list[int]] = []
    for a, b in sorted((max(h.start, start), min(h.end, end)) for h in hits):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    limit = max(2, max_chars)
    chars: list[str] = []
    marked: list[bool] = []
    first: int | None = None  # index in chars of the first marked character
    at = 0
    for i in range(start, end):
        ch = text[i]
        if ch in (MARK_START, MARK_END) or (unicodedata.category(ch) == "Cc" and not ch.isspace()):
            continue
        if ch.isspace():
            if not chars or chars[-1] == " ":
                continue
            ch = " "
        while at < len(merged) and merged[at][1] <= i:
            at += 1
        inside = ch != " " and at < len(merged) and merged[at][0] <= i
        if inside and first is None:
            first = len(chars)
        chars.append(ch)
        marked.append(inside)
        if (first is not None or at >= len(merged)) and len(chars) > (first or 0) + limit + 1:
            break  # enough to cut from: the rest of a huge sentence is never shown
    while chars and chars[-1] == " ":
        chars.pop()
        marked.pop()
    lead = ""
    first = first or 0
    if len(chars) > limit and first >= (limit - 1) * 2 // 3:
        begin = _word_start(chars, first - limit // 3, first)
        lead, limit = "…", limit - 1
        del chars[:begin], marked[:begin]
    cut = _cut_point(chars, limit)
    tail = "…" if cut < len(chars) else ""
    out: list[str] = [lead]
    bold = False
    for k in range(cut):
        want = marked[k] or (bold and chars[k] == " " and k + 1 < cut and marked[k + 1])
        if want != bold:
            out.append(MARK_START if want else MARK_END)
            bold = want
        out.append(chars[k])
    if bold:
        out.append(MARK_END)
    return "".join(out) + tail


def _word_start(chars: Sequence[str], near: int, at_most: int) -> int:
    """The start of the word at or after index `near` (but not after `at_most`)."""
    k = max(0, near)
    while k < at_most and k > 0 and chars[k - 1] != " ":
        k += 1
    while k < at_most and chars[k] == " ":
        k += 1
    return k


def _cut_point(chars: Sequence[str], limit: int) -> int:
    """How many of `chars` to keep so that they plus "…" fit in `limit`, ending at a word."""
    if len(chars) <= limit:
        return len(chars)
    room = limit - 1
    space = max((k for k in range(room + 1) if k < len(chars) and chars[k] == " "), default=-1)
    cut = space if space >= room // 2 else room
    while cut > 0 and unicodedata.combining(chars[cut]):
        cut -= 1
    while cut > 0 and chars[cut - 1] == " ":
        cut -= 1
    return cut
