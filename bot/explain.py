"""Why a rule matched: the terms that fired, in which field, and the sentence around each."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import replace

from bot.models import Evidence, Hit, RuleMatch
from bot.summarize import MARK_END, MARK_START, MAX_SENTENCE_CHARS, mark_sentence, split_sentences


def explain(match: RuleMatch, texts: Mapping[str, str]) -> RuleMatch:
    """`match` with its evidence: one entry per (field, sentence) holding hits, in hit order.

    `texts` are the article's fields as matched. Sentences are split and marked exactly as the
    alert's summary does, so a summary sentence is the evidence sentence it came from.
    """
    groups: dict[tuple[str, int], list[Hit]] = {}
    spans_of: dict[str, list[tuple[int, int]]] = {}
    for hit in match.hits:
        text = texts.get(hit.field, "")
        if not 0 <= hit.start < hit.end <= len(text):
            continue
        spans = spans_of.get(hit.field)
        if spans is None:
            spans = spans_of[hit.field] = split_sentences(text)
        k = max(0, bisect_right([s for s, _ in spans], hit.start) - 1)
        groups.setdefault((hit.field, k), []).append(hit)
    evidence = []
    for (name, k), hits in groups.items():
        sentence = mark_sentence(texts[name], spans_of[name][k], hits, MAX_SENTENCE_CHARS)
        shown = dict.fromkeys(f"@{h.alias}: {h.term}" if h.alias else h.term for h in hits)
        evidence.append(Evidence(name, tuple(shown), sentence))
    return replace(match, evidence=tuple(evidence))


def plain(sentence: str) -> str:
    """An evidence sentence without its marks."""
    return sentence.replace(MARK_START, "").replace(MARK_END, "")


def emphasized(sentence: str, start: str = "[", end: str = "]") -> str:
    """An evidence sentence with its marks shown as `start`/`end` (for a terminal)."""
    return sentence.replace(MARK_START, start).replace(MARK_END, end)
