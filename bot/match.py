"""Evaluate parsed queries against an article's tokenized fields and report the hits."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from bot.models import FIELDS, Article, Hit, Rule, RuleMatch
from bot.query import EXPR_TYPES, And, Expr, Not, Term, parse_query, terms
from bot.textnorm import Token, is_hangul, tokenize

Span = tuple[int, int]  # offsets into the original field text
FoundSpan = tuple[str, int, int]  # field, start, end
TermKey = tuple[tuple[str, ...], tuple[bool, ...], tuple[str, ...]]  # words, prefixes, fields


@dataclass(frozen=True)
class FieldIndex:
    """One field's tokens and, for each distinct word, the positions where it stands."""

    text: str
    tokens: tuple[Token, ...]
    positions: Mapping[str, Sequence[int]]  # never mutated after build
    hangul: tuple[int, ...]  # positions of Hangul tokens, searched for Hangul words

    @classmethod
    def build(cls, text: str) -> FieldIndex:
        tokens = tokenize(text)
        positions: dict[str, list[int]] = {}
        hangul = []
        for i, token in enumerate(tokens):
            at = positions.get(token.text)
            if at is None:
                positions[token.text] = [i]
            else:
                at.append(i)
            if token.hangul:
                hangul.append(i)
        return cls(text, tokens, positions, tuple(hangul))

    def word_spans(self, word: str, prefix: bool) -> dict[int, Span]:
        """Token positions where `word` matches, with the span of the matching characters.

        Latin-script and number words match whole tokens (or their start, for a prefix); a Hangul
        word matches anywhere inside a Hangul token, so `미군` is found in `주한미군은`.
        """
        tokens = self.tokens
        if is_hangul(word):
            return {i: _inner_span(tokens[i], word) for i in self.hangul if word in tokens[i].text}
        if prefix:
            found = [i for text, at in self.positions.items() if text.startswith(word) for i in at]
        else:
            found = list(self.positions.get(word, ()))
        return {i: (tokens[i].start, tokens[i].end) for i in found}


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
    hangul_text: str  # the Hangul words of every field, one per line, for substring checks
    # Terms already looked up in this document: several rules share terms.
    _found: dict[TermKey, tuple[FoundSpan, ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @classmethod
    def from_fields(cls, texts: Mapping[str, str]) -> Document:
        fields = {name: FieldIndex.build(text) for name, text in texts.items()}
        tokens = [t for index in fields.values() for t in index.tokens]
        hangul = "\n".join(t.text for t in tokens if t.hangul)
        return cls(fields, frozenset(t.text for t in tokens), hangul)

    @classmethod
    def from_article(cls, article: Article) -> Document:
        return cls.from_fields({name: article.field_text(name) for name in FIELDS})

    def occurrences(self, term: Term, fields: tuple[str, ...]) -> tuple[Hit, ...]:
        """Every place `term` occurs in the given fields; a phrase never spans two fields."""
        for word, prefix in zip(term.words, term.prefixes, strict=True):
            if not self._may_contain(word, prefix):  # the usual case, so it comes first
                return ()
        key = (term.words, term.prefixes, fields)
        spans = self._found.get(key)
        if spans is None:
            spans = self._found[key] = self._term_spans(term, fields)
        return tuple(Hit(term.text, name, start, end) for name, start, end in spans)

    def _term_spans(self, term: Term, fields: tuple[str, ...]) -> tuple[FoundSpan, ...]:
        pairs = tuple(zip(term.words, term.prefixes, strict=True))
        found = []
        for name in fields:
            index = self.fields.get(name)
            if index is None:
                continue
            per_word = [index.word_spans(word, prefix) for word, prefix in pairs]
            last = len(per_word) - 1
            for first, (start, _) in sorted(per_word[0].items()):
                if all(first + k in spans for k, spans in enumerate(per_word)):
                    found.append((name, start, per_word[last][first + last][1]))
        return tuple(found)

    def _may_contain(self, word: str, prefix: bool) -> bool:
        """False when no field can hold `word`: a cheap test made before any per-field work.

        A Latin word is never a substring of `hangul_text`, and a Hangul word matches inside
        Hangul words, so a substring test there is right for both.
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


def evaluate(expr: Expr, doc: Document, fields: tuple[str, ...] = FIELDS) -> tuple[Hit, ...] | None:
    """None when `expr` does not match; else the hits of its present terms, by field then offset.

    Terms that only made the query true by being absent (under NOT) contribute no hits.
    """
    value, hits = _evaluate(expr, doc, fields)
    if not value:
        return None
    order = {name: i for i, name in enumerate(fields)}
    return tuple(sorted(set(hits), key=lambda h: (order[h.field], h.start, h.end, h.term)))


def _evaluate(expr: Expr, doc: Document, fields: tuple[str, ...]) -> tuple[bool, list[Hit]]:
    """The value of `expr` and the hits that account for it (also for a false value: NOT flips).

    A true AND is accounted for by all its children, a false AND by its first false child, an OR
    by every child that agrees with it (a true OR reports every alternative that fired).
    """
    if isinstance(expr, Term):
        found = doc.occurrences(expr, fields)
        return bool(found), list(found)
    if isinstance(expr, Not):
        value, hits = _evaluate(expr.child, doc, fields)
        return not value, hits
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


def match_rule(rule: Rule, doc: Document) -> RuleMatch | None:
    """Match `rule` (its compiled `expr`, or its query when not compiled) against `doc`."""
    expr = rule.expr if rule.expr is not None else parse_query(rule.query)
    if not isinstance(expr, EXPR_TYPES):
        raise TypeError(f"rule {rule.name}: expr is a {type(expr).__name__}, not a parsed query")
    hits = evaluate(expr, doc, rule.fields)
    if hits is None:
        return None
    fired = {hit.term for hit in hits}
    in_order = dict.fromkeys(t.text for t in terms(expr) if t.text in fired)
    return RuleMatch(rule.name, tuple(in_order), hits)
