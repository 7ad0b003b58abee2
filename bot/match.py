"""Evaluate parsed queries against an article's tokenized fields and report the hits.

This is the reference evaluator: it walks the query's AST directly. Words are counted as the
tokenizer splits them: a Latin word, a number, a Han character, or a Hangul run (an eojeol without
its punctuation) is one word. A Hangul term found inside an eojeol stands at that eojeol's
position; one that spans spaced eojeols (`주한미군` in `주한 미군`) covers all of them.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import NamedTuple

from bot.expr import EXPR_TYPES, And, Expr, Near, Not, Scope, Term, terms
from bot.models import FIELDS, Article, Hit, Rule, RuleMatch
from bot.query import parse_query
from bot.textnorm import Token, is_hangul, squeezable, tokenize

Span = tuple[int, int]  # offsets into the original field text
TermKey = tuple[tuple[str, ...], tuple[bool, ...], tuple[str, ...] | None, tuple[str, ...]]

# Particles that may follow a Hangul word of a multi-word Hangul term before the next word:
# "주한미군 감축" is found in "주한미군의 감축" and "주한미군을 감축".
PARTICLES = (
    "에서의", "에게서", "으로의", "이라는", "에서", "에게", "으로", "와의", "과의", "라는",
    "은", "는", "이", "가", "을", "를", "의", "에", "와", "과", "도", "로", "만",
)  # fmt: skip
_PARTICLE = "(?:" + "|".join(PARTICLES) + ")?"


class Occurrence(NamedTuple):
    """Where a term stands: characters `start:end` of `field`, words `first..last`."""

    field: str
    start: int
    end: int
    first: int
    last: int


@dataclass(frozen=True)
class _Run:
    """Hangul words separated only by spaces, joined without them: `주한 미군` → `주한미군`."""

    text: str
    offsets: tuple[int, ...]  # where each word starts in `text`
    positions: tuple[int, ...]  # each word's token position


@dataclass(frozen=True)
class FieldIndex:
    """One field's tokens and, for each distinct word, the positions where it stands."""

    text: str
    tokens: tuple[Token, ...]
    positions: Mapping[str, Sequence[int]]  # never mutated after build
    hangul: tuple[int, ...]  # positions of Hangul tokens, searched for Hangul words
    runs: tuple[_Run, ...] = ()

    @classmethod
    def build(cls, text: str) -> FieldIndex:
        tokens = tokenize(text)
        positions: dict[str, list[int]] = {}
        hangul: list[int] = []
        runs: list[list[int]] = []
        for i, token in enumerate(tokens):
            at = positions.get(token.text)
            if at is None:
                positions[token.text] = [i]
            else:
                at.append(i)
            if token.hangul:
                previous = hangul[-1] if hangul else -2
                gap = text[tokens[previous].end : token.start] if previous == i - 1 else "x"
                if runs and squeezable(gap):
                    runs[-1].append(i)
                else:
                    runs.append([i])
                hangul.append(i)
        return cls(text, tokens, positions, tuple(hangul), tuple(_run(tokens, r) for r in runs))

    def word_spans(self, word: str, prefix: bool, cased: str | None = None) -> dict[int, Span]:
        """Token positions where `word` matches, with the span of the matching characters.

        Latin-script and number words match whole tokens (or their start, for a prefix), and
        only in exactly the case of `cased` when given; a Hangul word matches anywhere inside a
        Hangul token, so `미군` is found in `주한미군은`.
        """
        tokens = self.tokens
        if is_hangul(word):
            return {i: _inner_span(tokens[i], word) for i in self.hangul if word in tokens[i].text}
        if prefix:  # the words starting with `word` stand together in sorted order
            ordered = self._sorted_words
            found: list[int] = []
            at = bisect_left(ordered, word)
            while at < len(ordered) and ordered[at].startswith(word):
                found.extend(self.positions[ordered[at]])
                at += 1
        else:
            found = list(self.positions.get(word, ()))
        if cased is not None:
            found = [i for i in found if tokens[i].cased.startswith(cased)]
            if not prefix:
                found = [i for i in found if tokens[i].cased == cased]
        return {i: (tokens[i].start, tokens[i].end) for i in found}

    @cached_property
    def _sorted_words(self) -> list[str]:
        return sorted(self.positions)

    def hangul_spans(self, words: tuple[str, ...]) -> list[tuple[Span, int, int]]:
        """Where the Hangul words stand together, spaced or not, particles allowed between them."""
        pattern = _hangul_pattern(words)
        found = []
        for run in self.runs:
            for hit in pattern.finditer(run.text):
                a = bisect_right(run.offsets, hit.start()) - 1
                b = bisect_right(run.offsets, hit.end() - 1) - 1
                first, last = self.tokens[run.positions[a]], self.tokens[run.positions[b]]
                start = _char_at(first, hit.start() - run.offsets[a], first.start)
                end = _char_at(last, hit.end() - run.offsets[b], last.end)
                found.append(((start, end), run.positions[a], run.positions[b]))
        return found


def _run(tokens: Sequence[Token], positions: list[int]) -> _Run:
    offsets, at = [], 0
    for i in positions:
        offsets.append(at)
        at += len(tokens[i].text)
    return _Run("".join(tokens[i].text for i in positions), tuple(offsets), tuple(positions))


@cache
def _hangul_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(_PARTICLE.join(re.escape(w) for w in words))


def _char_at(token: Token, offset: int, whole: int) -> int:
    """The original offset of normalized character `offset` of `token` (`whole` if unknowable)."""
    if len(token.text) != token.end - token.start:
        return whole
    return token.start + offset


def _inner_span(token: Token, word: str) -> Span:
    """The characters of `word` inside a Hangul token; the whole token when NFKC changed length."""
    if len(token.text) != token.end - token.start:
        return token.start, token.end
    at = token.start + token.text.index(word)
    return at, at + len(word)


@dataclass(frozen=True)
class Document:
    """An article's fields tokenized once, shared by every rule evaluated against it."""

    fields: Mapping[str, FieldIndex]
    vocabulary: frozenset[str]  # every word of every field: most terms are absent, say so fast
    hangul_text: str  # the Hangul runs of every field, one per line, for substring checks
    # Terms already looked up in this document: several rules share terms.
    _found: dict[TermKey, tuple[Occurrence, ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @classmethod
    def from_fields(cls, texts: Mapping[str, str]) -> Document:
        fields = {name: FieldIndex.build(text) for name, text in texts.items()}
        tokens = [t for index in fields.values() for t in index.tokens]
        hangul = "\n".join(run.text for index in fields.values() for run in index.runs)
        return cls(fields, frozenset(t.text for t in tokens), hangul)

    @classmethod
    def from_article(cls, article: Article) -> Document:
        return cls.from_fields({name: article.field_text(name) for name in FIELDS})

    def occurrences(self, term: Term, fields: tuple[str, ...]) -> tuple[Hit, ...]:
        """Every place `term` occurs in the given fields; a phrase never spans two fields."""
        return tuple(_hit(term, o) for o in self.locate(term, fields))

    def locate(self, term: Term, fields: tuple[str, ...]) -> tuple[Occurrence, ...]:
        """Like `occurrences`, with the word positions each occurrence covers."""
        for word, prefix in zip(term.words, term.prefixes, strict=True):
            if not self._may_contain(word, prefix):  # the usual case, so it comes first
                return ()
        return self.places(term, fields)

    def places(self, term: Term, fields: tuple[str, ...]) -> tuple[Occurrence, ...]:
        """`locate` for a term whose words the caller knows may be there."""
        key = (term.words, term.prefixes, term.cased, fields)
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = self._term_spans(term, fields)
        return found

    def _term_spans(self, term: Term, fields: tuple[str, ...]) -> tuple[Occurrence, ...]:
        hangul_only = all(is_hangul(w) for w in term.words)
        cased = term.cased or (None,) * len(term.words)
        found = []
        for name in fields:
            index = self.fields.get(name)
            if index is None:
                continue
            if hangul_only:
                for (start, end), first, last in index.hangul_spans(term.words):
                    found.append(Occurrence(name, start, end, first, last))
                continue
            triples = zip(term.words, term.prefixes, cased, strict=True)
            per_word = [index.word_spans(word, prefix, case) for word, prefix, case in triples]
            last = len(per_word) - 1
            for first, (start, _) in sorted(per_word[0].items()):
                if all(first + k in spans for k, spans in enumerate(per_word)):
                    end = per_word[last][first + last][1]
                    found.append(Occurrence(name, start, end, first, first + last))
        return tuple(found)

    def _may_contain(self, word: str, prefix: bool) -> bool:
        """False when no field can hold `word`: a cheap test made before any per-field work.

        A Latin word is never a substring of `hangul_text`, and a Hangul word matches inside
        Hangul runs, so a substring test there is right for both.
        """
        if word in self.vocabulary or word in self.hangul_text:
            return True
        if not prefix:
            return False
        ordered = self._sorted_vocabulary
        at = bisect_left(ordered, word)
        return at < len(ordered) and ordered[at].startswith(word)

    @cached_property
    def _sorted_vocabulary(self) -> list[str]:
        return sorted(self.vocabulary)


def _hit(term: Term, occurrence: Occurrence) -> Hit:
    return Hit(term.text, occurrence.field, occurrence.start, occurrence.end, term.alias)


def distance(a: Occurrence, b: Occurrence) -> int:
    """Words from one occurrence to the other: 1 for neighbours, 0 when they share a word."""
    return max(0, max(a.first, b.first) - min(a.last, b.last))


def evaluate(expr: Expr, doc: Document, fields: tuple[str, ...] = FIELDS) -> tuple[Hit, ...] | None:
    """None when `expr` does not match; else the hits of its present terms, by field then offset.

    Terms that only made the query true by being absent (under NOT) contribute no hits.
    """
    value, hits = _evaluate(expr, doc, fields)
    if not value:
        return None
    order = {name: i for i, name in enumerate(fields)}  # scopes only narrow `fields`
    return tuple(sorted(set(hits), key=lambda h: (order[h.field], h.start, h.end, h.term)))


def _evaluate(expr: Expr, doc: Document, fields: tuple[str, ...]) -> tuple[bool, list[Hit]]:
    """The value of `expr` and the hits that account for it (also for a false value: NOT flips).

    A true AND is accounted for by all its children, a false AND by its first false child, an OR
    by every child that agrees with it (a true OR reports every alternative that fired), a true
    NEAR by every pair of occurrences close enough.
    """
    if isinstance(expr, Term):
        found = doc.occurrences(expr, fields)
        return bool(found), list(found)
    if isinstance(expr, Not):
        value, hits = _evaluate(expr.child, doc, fields)
        return not value, hits
    if isinstance(expr, Scope):
        return _evaluate(expr.child, doc, tuple(f for f in fields if f == expr.name))
    if isinstance(expr, Near):
        hits = _near(expr, doc, fields)
        return bool(hits), hits
    if isinstance(expr, And):
        hits = []
        for child in expr.children:
            value, child_hits = _evaluate(child, doc, fields)
            if not value:
                return False, child_hits
            hits.extend(child_hits)
        return True, hits
    results = [_evaluate(child, doc, fields) for child in expr.children]
    value = any(v for v, _ in results)
    return value, [h for v, hits in results if v == value for h in hits]


def _near(expr: Near, doc: Document, fields: tuple[str, ...]) -> list[Hit]:
    """The hits of every left/right pair in one field within `expr.distance` words.

    Right-hand occurrences are sorted by position, so each left one looks only at those close
    enough: linear in the occurrences, however often a common word repeats.
    """
    left = [(t, o) for t in terms(expr.left) for o in doc.locate(t, fields)]
    if not left:
        return []
    return close_pairs(
        expr, left, ((t, o) for t in terms(expr.right) for o in doc.locate(t, fields))
    )


def close_pairs(
    expr: Near, left: list[tuple[Term, Occurrence]], right: Iterable[tuple[Term, Occurrence]]
) -> list[Hit]:
    """`_near` from the places of its sides' terms, in query order: the hits of every pair of
    a left and a right place close enough (and in order, for ONEAR)."""
    by_field: dict[str, list[tuple[int, int, Term, Occurrence]]] = {}
    for t, o in right:
        by_field.setdefault(o.field, []).append((o.first, o.last, t, o))
    firsts: dict[str, list[int]] = {}
    longest: dict[str, int] = {}
    for name, rows in by_field.items():
        rows.sort(key=lambda r: (r[0], r[1]))
        firsts[name] = [r[0] for r in rows]
        longest[name] = max(r[1] - r[0] for r in rows)
    n = expr.distance
    hits: set[Hit] = set()
    for a_term, a in left:
        found = by_field.get(a.field)
        if found is None:
            continue
        at = bisect_left(firsts[a.field], a.first - n - longest[a.field])
        stop = bisect_right(firsts[a.field], a.last + n)
        for _, _, b_term, b in found[at:stop]:
            if distance(a, b) > n:
                continue
            if expr.ordered and not (a.start < b.start or (a.start == b.start and a.end < b.end)):
                continue
            hits.add(_hit(a_term, a))
            hits.add(_hit(b_term, b))
    return list(hits)


def match_rule(rule: Rule, doc: Document) -> RuleMatch | None:
    """Match `rule` (its compiled `expr`, or its query when not compiled) against `doc`."""
    expr = rule.expr if rule.expr is not None else parse_query(rule.query)
    if not isinstance(expr, EXPR_TYPES):
        raise TypeError(f"rule {rule.name}: expr is a {type(expr).__name__}, not a parsed query")
    hits = evaluate(expr, doc, rule.fields)
    if hits is None:
        return None
    return rule_match(rule.name, expr, hits)


def rule_match(name: str, expr: Expr, hits: tuple[Hit, ...]) -> RuleMatch:
    """A match of rule `name` (query `expr`) with these hits: its terms that fired, in order."""
    fired = {hit.term for hit in hits}
    in_order = dict.fromkeys(t.text for t in terms(expr) if t.text in fired)
    return RuleMatch(name, tuple(in_order), hits)
