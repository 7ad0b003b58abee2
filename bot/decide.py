"""Decide whether a rule matches from the article's words alone, without the reference's tokens.

A `Page` holds each field's words as the tokenizer finds them, normalized, in one string per
field (`" w1 w2 … "`, so a word's place is found with `str.find` and counted by the spaces
before it), and the field's Hangul runs, where a Hangul word is found across spaced eojeols.
Pages are made by one pass over each field in C (`textnorm.scan_words`; the same from regular
expressions where it is not built), where the reference builds a token object per word.

`run` (a rule compiled by `compile_rule`) and `decide` (any expression) answer True or False
exactly as `match.evaluate` would, or None when they cannot tell cheaply (a Hangul word found
across eojeols where its place matters, two occurrences ONEAR must order inside one eojeol);
the caller then asks the reference evaluator. A page with conjoining jamo or a word that
normalizing emptied is not `exact`: its rules all go to the reference. `PageDocument` lets the
reference find the hits of a matching rule from a page and its words' offsets.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from itertools import accumulate
from typing import Any

from bot.expr import And, Expr, Near, Not, Or, Scope, Term, terms
from bot.match import PARTICLES, Document, Occurrence
from bot.models import Hit
from bot.textnorm import is_hangul, scan_words

_PARTICLE = "(?:" + "|".join(PARTICLES) + ")?"
_is_hangul = cache(is_hangul)  # asked of the same few words of the rules again and again
_SYLLABLES = re.compile("([\uac00-\ud7a3]+)")  # an exact page's Hangul letters
_NOT_SYLLABLE = re.compile("[^\uac00-\ud7a3\x00]")  # precomposed syllables are their own NFKC

Found = list[tuple[int, int]] | None  # (first, last) word positions; None: cannot tell
KeyPresent = Callable[[str, bool], bool]  # whether the article's view holds a word's key


@dataclass
class FieldWords:
    """One field's words: `text` is `" w1 w2 … wn "` (word i follows the (i+1)th space)."""

    spans: bytes  # each word's start and end in the field's text (`textnorm.scan_words`)
    raw: str  # the words as written, "\\x00"-separated (for exact-case terms)
    text: str
    hangul: str  # the field's Hangul runs, each ended by NUL (`textnorm.hangul_runs`)
    exact: bool  # False when normalizing emptied a word (positions would shift)
    _spots: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, text: str) -> FieldWords:
        return cls.scanned(*scan_words(text))

    @classmethod
    def scanned(cls, raw: str, spans: bytes, hangul: str, plain: str | None) -> FieldWords:
        """From what `textnorm.scan_words` finds in a field's text."""
        if plain is not None:  # words that normalizing leaves as they are, ASCII letters aside
            return cls(spans, raw, plain, hangul, True)
        folded = raw.lower() if raw.isascii() else unicodedata.normalize("NFKC", raw).casefold()
        # a word emptied or holding a space (an Arabic ligature's NFKC) would shift positions
        exact = not raw or (
            bool(folded)
            and not (
                " " in folded
                or "\x00\x00" in folded
                or folded.startswith("\x00")
                or folded.endswith("\x00")
            )
        )
        if raw and not exact and "\x00\x00" in f"\x00{folded}\x00":  # as the tokenizer
            folded = "\x00".join(w for w in folded.split("\x00") if w)  # drops emptied words
        if hangul and _NOT_SYLLABLE.search(hangul) is not None:
            # jamo: the reference normalizes each word alone; for the scan, all of them joined
            exact = False
            hangul = "".join(w for w in folded.split("\x00") if _is_hangul(w)) + "\x00"
        return cls(spans, raw, f" {folded.replace(chr(0), ' ')} ", hangul, exact)

    def positions(self, needle: str) -> list[int]:
        """The word positions where `needle` (with its spaces) starts, each once, in order."""
        found = self._spots.get(needle)
        if found is not None:
            return found
        found = []
        text = self.text
        at = text.find(needle)
        while at >= 0:
            position = text.count(" ", 0, at + 1) - 1
            if not found or found[-1] != position:
                found.append(position)
            at = text.find(needle, at + 1)
        self._spots[needle] = found
        return found

    @cached_property
    def words(self) -> list[str]:
        """The words, in order."""
        return self.text[1:-1].split(" ")

    @cached_property
    def cased(self) -> list[str]:
        """Each word in NFKC without case folding (what `{US}` is compared with)."""
        return unicodedata.normalize("NFKC", self.raw).split("\x00")


@dataclass
class Page:
    """An article's fields as words, and the view of them the automaton scans."""

    fields: Mapping[str, FieldWords]

    @classmethod
    def of(cls, texts: Mapping[str, str]) -> Page:
        return cls({name: FieldWords.of(text) for name, text in texts.items()})

    @property
    def exact(self) -> bool:
        return all(f.exact for f in self.fields.values())

    def holds(self, key: str) -> bool:
        """Whether the view holds `key` (`index.word_key`), without scanning it."""
        return any(key in f.text or key in f.hangul for f in self.fields.values())

    def view(self) -> str:
        """Every field's words between spaces, then its Hangul runs."""
        return "".join(f"{f.text}\n{f.hangul}\n" for f in self.fields.values())


def exact_key(term: Term) -> str | None:
    """The one key whose presence in a page's view says that `term` is in the article: a
    word between spaces (`" usfk "`), a prefix (`" troop"`), a Hangul word (searched in the
    runs), or a phrase of non-Hangul words with a `*` on its last word only (`" south korea "`:
    the words stand in order between single spaces). None for exact-case terms and phrases
    with Hangul words, which are looked for word by word."""
    words = term.words
    if term.cased is not None:
        return None
    if len(words) == 1:
        if _is_hangul(words[0]):
            return words[0]
        return f" {words[0]}" if term.prefixes[0] else f" {words[0]} "
    if any(term.prefixes[:-1]) or any(_is_hangul(w) for w in words):
        return None
    return " " + " ".join(words) + ("" if term.prefixes[-1] else " ")


# A rule compiled for `run`: a key id (a term whose one key tells exactly whether it is
# there, `exact_key`), a set of them (any of), ("term", key id(s), Term) for a term to look
# for once its keys are there, ("near", Near, keys, keys, terms, terms) for a NEAR (each side
# needs one of its keys), ("expr", Expr) for a NOT or field scope, and ("all"/"any", parts).
Program = bool | int | frozenset[int] | tuple[Any, ...]


def compile_rule(expr: Expr, every_field: bool, key_id: Callable[[Term], list[int]]) -> Program:
    """`expr` as a Program; `every_field`: the rule searches every field of the article, so a
    plain word's key present anywhere is the word present (`key_id`: the ids of a term's
    keys, its rarest word's first)."""
    if isinstance(expr, Term):
        ids = key_id(expr)
        if every_field and exact_key(expr) is not None:
            return ids[0]
        return ("term", _ids(ids), expr)
    if not isinstance(expr, And | Or):
        found = {t: key_id(t) for t in terms(expr)}  # indexed, so that `has` tells absence
        if isinstance(expr, Near):  # each side needs the rarest word of one of its terms
            sides = (terms(expr.left), terms(expr.right))
            need = (frozenset(found[t][0] for t in side) for side in sides)
            keyed = (tuple((t, _ids(found[t])) for t in side) for side in sides)
            return ("near", expr, *need, *keyed)
        return ("expr", expr)
    parts = [compile_rule(child, every_field, key_id) for child in expr.children]
    if isinstance(expr, And):  # the parts told by keys alone first: they rule most rules out
        return ("all", tuple(sorted(parts, key=lambda p: type(p) not in (int, frozenset))))
    keys = frozenset(p for p in parts if type(p) is int).union(
        *(p for p in parts if type(p) is frozenset)
    )
    rest = tuple(p for p in parts if type(p) not in (int, frozenset))
    if not rest:
        return keys
    return ("any", (keys, *rest) if keys else rest)


def _ids(ids: list[int]) -> int | tuple[int, ...]:
    return ids[0] if len(ids) == 1 else tuple(ids)


def _held(ids: int | tuple[int, ...], present: set[int]) -> bool:
    return ids in present if type(ids) is int else present.issuperset(ids)  # type: ignore[arg-type]


def run(
    program: Program, page: Page, fields: tuple[str, ...], present: set[int], has: KeyPresent
) -> bool | None:
    """A compiled rule's `decide`, most of it by set operations on the keys present."""
    kind = type(program)
    if kind is int:
        return program in present
    if kind is frozenset:
        return not present.isdisjoint(program)  # type: ignore[arg-type]
    if kind is bool:
        return program  # type: ignore[return-value]
    what, part = program[0], program[1]  # type: ignore[index]
    if what == "term":
        return _look(program[2], page, fields) if _held(part, present) else False  # type: ignore[index]
    if what == "near":
        need_left: frozenset[int] = program[2]  # type: ignore[index]
        need_right: frozenset[int] = program[3]  # type: ignore[index]
        left: tuple[tuple[Term, Any], ...] = program[4]  # type: ignore[index]
        right: tuple[tuple[Term, Any], ...] = program[5]  # type: ignore[index]
        if present.isdisjoint(need_left) or present.isdisjoint(need_right):
            return False
        there = [[t for t, ids in side if _held(ids, present)] for side in (left, right)]
        return _close(part, there[0], there[1], page, fields)
    if what == "expr":
        return decide(part, page, fields, has)
    unsure = False
    if what == "all":
        for child in part:
            if type(child) is frozenset:  # the usual part, told without a call
                if present.isdisjoint(child):
                    return False
                continue
            value = run(child, page, fields, present, has)
            if value is False:
                return False
            unsure = unsure or value is None
        return None if unsure else True
    for child in part:
        if type(child) is frozenset:
            if not present.isdisjoint(child):
                return True
            continue
        value = run(child, page, fields, present, has)
        if value:
            return True
        unsure = unsure or value is None
    return None if unsure else False


def decide(expr: Expr, page: Page, fields: tuple[str, ...], has: KeyPresent) -> bool | None:
    """Whether `expr` matches `page` in `fields`, as `match.evaluate` says; None: ask it."""
    if isinstance(expr, Term):
        return _present(expr, page, fields, has)
    if isinstance(expr, Not):
        value = decide(expr.child, page, fields, has)
        return None if value is None else not value
    if isinstance(expr, Scope):
        return decide(expr.child, page, tuple(f for f in fields if f == expr.name), has)
    if isinstance(expr, Near):
        return _near(expr, page, fields, has)
    unsure = False
    if isinstance(expr, And):
        for child in expr.children:
            value = decide(child, page, fields, has)
            if value is False:
                return False
            unsure = unsure or value is None
        return None if unsure else True
    for child in expr.children:  # an Or
        value = decide(child, page, fields, has)
        if value:
            return True
        unsure = unsure or value is None
    return None if unsure else False


def _absent(term: Term, has: KeyPresent) -> bool:
    """True when a word of `term` is nowhere in the article (the usual case)."""
    return not all(has(w, p) for w, p in zip(term.words, term.prefixes, strict=True))


def _present(term: Term, page: Page, fields: tuple[str, ...], has: KeyPresent) -> bool | None:
    return False if _absent(term, has) else _look(term, page, fields)


def _look(term: Term, page: Page, fields: tuple[str, ...]) -> bool | None:
    """Whether `term` is in one of `fields` (its keys are in the article)."""
    hangul = all(_is_hangul(w) for w in term.words)
    unsure = False
    for name in fields:
        words = page.fields.get(name)
        if words is None:
            continue
        if hangul:  # searched in the field's runs, as the reference does
            if len(term.words) == 1:
                if term.words[0] in words.hangul:
                    return True
            elif _hangul_pattern(term.words).search(words.hangul):
                return True
            continue
        key = exact_key(term)
        if key is not None:  # the usual term: a word or a phrase, found or not
            if key in words.text:
                return True
            continue
        found = _locate(term, words)
        if found:
            return True
        unsure = unsure or found is None
    return None if unsure else False


def _locate(term: Term, words: FieldWords) -> Found:
    """Where `term` stands in one field, as (first, last) word positions."""
    if len(term.words) > 1 or not _is_hangul(term.words[0]):
        key = exact_key(term)
        if key is not None:  # the words in order between single spaces
            last = len(term.words) - 1
            return [(i, i + last) for i in words.positions(key)]
    if all(_is_hangul(w) for w in term.words):
        return _hangul_term(term, words)
    per_word = []
    for k, (word, prefix) in enumerate(zip(term.words, term.prefixes, strict=True)):
        if _is_hangul(word):  # inside a Hangul word, within a phrase
            spots = words.positions(word)
        else:
            spots = words.positions(f" {word}" if prefix else f" {word} ")
        if term.cased is not None and spots and not _is_hangul(word):
            cased, want = words.cased, term.cased[k]
            if prefix:
                spots = [i for i in spots if cased[i].startswith(want)]
            else:
                spots = [i for i in spots if cased[i] == want]
        if not spots:
            return []
        per_word.append(spots)
    if len(per_word) == 1:
        return [(i, i) for i in per_word[0]]
    later = [set(spots) for spots in per_word[1:]]
    last = len(per_word) - 1
    return [
        (i, i + last)
        for i in per_word[0]
        if all(i + k + 1 in spots for k, spots in enumerate(later))
    ]


def _hangul_term(term: Term, words: FieldWords) -> Found:
    """A Hangul term's places, known when every occurrence lies inside one eojeol."""
    if len(term.words) > 1:  # found across eojeols, particles between: the reference knows
        return None if _hangul_pattern(term.words).search(words.hangul) else []
    word = term.words[0]
    across = words.hangul.count(word)
    if not across:
        return []
    if words.text.count(word) != across or _overlaps(word):
        return None  # an occurrence spans eojeols (or may)
    return [(i, i) for i in words.positions(word)]


@cache
def _hangul_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """Hangul words together, spaced or not, particles allowed between them (as `match`)."""
    return re.compile(_PARTICLE.join(re.escape(w) for w in words))


@lru_cache(maxsize=1 << 12)
def _overlaps(word: str) -> bool:
    """Whether two occurrences of `word` can overlap (a proper prefix is also a suffix)."""
    return any(word[:k] == word[-k:] for k in range(1, len(word)))


def _near(expr: Near, page: Page, fields: tuple[str, ...], has: KeyPresent) -> bool | None:
    left = [t for t in terms(expr.left) if not _absent(t, has)]
    right = [t for t in terms(expr.right) if not _absent(t, has)] if left else []
    return _close(expr, left, right, page, fields)


def _close(
    expr: Near, left: list[Term], right: list[Term], page: Page, fields: tuple[str, ...]
) -> bool | None:
    """Whether a term of `left` stands close enough to one of `right` (`expr`'s distance and
    order), in one of `fields`; the terms given are those whose words the article holds."""
    if not left or not right:
        return False
    unsure = False
    n = expr.distance
    for name in fields:
        words = page.fields.get(name)
        if words is None:
            continue
        sides: list[list[tuple[int, int, bool]]] = []
        for side in (left, right):
            found: list[tuple[int, int, bool]] = []
            for t in side:
                spots = _locate(t, words)
                if spots is None:
                    unsure = True
                    continue
                edge = _is_hangul(t.words[0]) or _is_hangul(t.words[-1])
                found += [(first, last, edge) for first, last in spots]
            if not found:
                break
            sides.append(found)
        else:
            close = _pair(expr, n, sides[0], sides[1])
            if close:
                return True
            unsure = unsure or close is None
    return None if unsure else False


def _pair(
    expr: Near, n: int, left: list[tuple[int, int, bool]], right: list[tuple[int, int, bool]]
) -> bool | None:
    """Whether an occurrence (first, last, starts or ends in Hangul) of `left` is close enough
    to one of `right`, in order for ONEAR; None when only the order inside one eojeol tells."""
    unsure = False
    for a_first, a_last, a_edge in left:
        for b_first, b_last, b_edge in right:
            if max(0, max(a_first, b_first) - min(a_last, b_last)) > n:
                continue
            if not expr.ordered or a_first < b_first:
                return True
            if a_first == b_first:
                if a_edge or b_edge:  # where inside one eojeol each starts
                    unsure = True
                elif a_last < b_last:
                    return True
    return None if unsure else False


def plain_hits(expr: Expr, doc: Document, fields: tuple[str, ...]) -> tuple[Hit, ...] | None:
    """`match.evaluate` for a term, an OR of terms, or an AND of those (most rules' shape)
    that matches, without walking it: every term found is a hit (a true OR reports every
    alternative found, a true AND all its parts). None for another shape, or when a part has
    no term found (the caller then asks `match.evaluate`)."""
    hits: list[Hit] = []
    for part in expr.children if isinstance(expr, And) else (expr,):
        found = False
        for term in part.children if isinstance(part, Or) else (part,):
            if not isinstance(term, Term):
                return None
            occurrences = doc.occurrences(term, fields)
            if occurrences:
                found = True
                hits += occurrences
        if not found:
            return None
    order = {name: i for i, name in enumerate(fields)}
    return tuple(sorted(set(hits), key=lambda h: (order[h.field], h.start, h.end, h.term)))


@dataclass(frozen=True)
class PageDocument(Document):
    """A `Document` that finds terms from a page and each word's offsets, without a token
    object per word: the reference evaluator then reports the very hits it would with the
    article tokenized. A word, prefix or phrase is found in one pass over every field's words
    (`_keyed`); a Hangul term in the field's text, or in its Hangul runs when a place of it
    spans eojeols or it has particles (`_in_text`), as `FieldIndex` finds it."""

    page: Page | None = field(default=None, compare=False, repr=False)
    texts: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    has: KeyPresent | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, texts: Mapping[str, str], page: Page, has: KeyPresent) -> PageDocument:
        """For an exact page (`Page.exact`) of `texts`; `has` tells whether a word is in it
        (from the scan of its view, or the page for a word whose key is not indexed). Its
        fields, vocabulary and Hangul text are not made: the page tells."""
        return cls({}, frozenset(), "", page=page, texts=texts, has=has)

    def _may_contain(self, word: str, prefix: bool) -> bool:
        assert self.has is not None
        return self.has(word, prefix)

    def _term_spans(self, term: Term, fields: tuple[str, ...]) -> tuple[Occurrence, ...]:
        assert self.page is not None
        found: list[Occurrence] = []
        hangul, key = _kind(term.words, term.prefixes, term.cased)
        if key is not None:  # the usual term: where its words stand, in one lookup
            return self._keyed(key, len(term.words) - 1, fields)
        for name in fields:
            words = self.page.fields.get(name)
            if words is None:
                continue
            if hangul:
                found += self._in_text(name, term.words, words)
                continue
            spans = self._spans(name)
            per_word = []
            for k, (word, prefix) in enumerate(zip(term.words, term.prefixes, strict=True)):
                if _is_hangul(word):  # its first place inside each Hangul word holding it
                    texts = words.words
                    at = {i: _first_inside(word, texts[i], spans[i]) for i in words.positions(word)}
                else:
                    places = words.positions(f" {word}" if prefix else f" {word} ")
                    if term.cased is not None:
                        want, cased = term.cased[k], words.cased
                        places = [
                            i
                            for i in places
                            if (cased[i].startswith(want) if prefix else cased[i] == want)
                        ]
                    at = {i: spans[i] for i in places}
                if not at:
                    break
                per_word.append(at)
            else:
                last = len(per_word) - 1
                for first, (start, _) in sorted(per_word[0].items()):
                    if all(first + k in spans_k for k, spans_k in enumerate(per_word)):
                        end = per_word[last][first + last][1]
                        found.append(Occurrence(name, start, end, first, first + last))
        return tuple(found)

    def _keyed(self, key: str, last: int, fields: tuple[str, ...]) -> tuple[Occurrence, ...]:
        """Where `exact_key` `key` of a term of `last` + 1 words stands in `fields`, found in
        one pass over every field's words (`_words`): the spaces before a place in its field
        count the words before it."""
        joined, starts, names = self._words
        at = joined.find(key)
        if at < 0:
            return ()
        found: list[Occurrence] = []
        count, find, new = joined.count, joined.find, tuple.__new__
        while at >= 0:
            field = bisect_right(starts, at) - 1
            end = starts[field + 1] - 1 if field + 1 < len(starts) else len(joined)
            name = names[field]
            if name in fields:  # each place of the field: its words, their characters
                offsets = self._offsets(name)
                position, counted = -1, starts[field]
                while at >= 0:
                    position += count(" ", counted, at + 1)
                    counted = at + 1
                    stop = position + last
                    place = (name, offsets[2 * position], offsets[2 * stop + 1], position, stop)
                    found.append(new(Occurrence, place))
                    at = find(key, counted, end)
            at = find(key, end)
        if fields != self._order and len(found) > 1:  # by the rule's fields, as it asks
            return tuple(o for name in fields for o in found if o.field == name)
        return tuple(found)

    @cached_property
    def _order(self) -> tuple[str, ...]:
        """The page's fields, in order: a rule's fields in this order need no sorting."""
        return tuple(self.page.fields)  # type: ignore[union-attr]

    def _offsets(self, name: str) -> memoryview:
        """Where each word of field `name` stands in its text: word i is characters
        `offsets[2 * i]:offsets[2 * i + 1]` (`FieldWords.spans`)."""
        return self._spans(name)._offsets

    @cached_property
    def _words(self) -> tuple[str, list[int], list[str]]:
        """Every field's words (`FieldWords.text`), one field a line, where each starts, and
        the fields' names."""
        fields = self.page.fields  # type: ignore[union-attr]
        texts = [words.text for words in fields.values()]
        starts = [0, *accumulate(len(t) + 1 for t in texts)][:-1]
        return "\n".join(texts), starts, list(fields)

    def _in_text(self, name: str, terms: tuple[str, ...], words: FieldWords) -> list[Occurrence]:
        """`FieldIndex.hangul_spans` in field `name`: Hangul words together, spaced or not,
        particles allowed between them, found in the field's runs (`FieldWords.hangul`).
        An exact page's Hangul is syllables, which NFKC leaves as they are: the k-th letter
        of the runs is the k-th Hangul letter of the text, and a word found as it stands in
        the text (the usual case) is found there."""
        runs, text = words.hangul, self.texts[name]
        if len(terms) == 1:
            word = terms[0]
            across = runs.count(word)
            if not across:
                return []
            if not _overlaps(word):  # each place stands in the text as it is, or one spans
                found = _inside_words(name, word, across, text, words.text)
                if found is not None:
                    return found
            places = [(at, at + len(word)) for at in _finds(word, runs)]
        else:
            places = [m.span() for m in _hangul_pattern(terms).finditer(runs)]
            if not places:
                return []
        letters = _Letters(text)
        return self._found_at(name, words, [letters.span(runs, *place) for place in places])

    def _spans(self, name: str) -> Spans:
        """Where each word of field `name` stands in its text."""
        cache = self._word_spans
        spans = cache.get(name)
        if spans is None:
            spans = cache[name] = Spans(self.page.fields[name].spans)  # type: ignore[union-attr]
        return spans

    @cached_property
    def _word_spans(self) -> dict[str, Spans]:
        return {}

    def _found_at(
        self, name: str, words: FieldWords, places: list[tuple[int, int]]
    ) -> list[Occurrence]:
        """Occurrences at these (start, end) characters of field `name`, in order."""
        spans = self._spans(name)
        count = words.text.count(" ") - 1  # its words
        found = []
        low = 0
        for start, end in places:
            first = low = _word_at(spans, start, low, count)
            last = _word_at(spans, end - 1, first, count)
            found.append(Occurrence(name, start, end, first, last))
        return found


class Spans:
    """A field's word spans (`FieldWords.spans`), each made when asked for: a hit needs a few
    of a field's hundreds."""

    __slots__ = ("_offsets",)

    def __init__(self, spans: bytes) -> None:
        self._offsets = memoryview(spans).cast("I")

    def __getitem__(self, i: int) -> tuple[int, int]:
        offsets = self._offsets
        return offsets[2 * i], offsets[2 * i + 1]

    def __len__(self) -> int:
        return len(self._offsets) // 2


def _first_inside(word: str, text: str, span: tuple[int, int]) -> tuple[int, int]:
    """`match._inner_span`: `word`'s first place in a Hangul word (all of it when NFKC
    changed its length)."""
    start, end = span
    if len(text) != end - start:
        return span
    at = start + text.index(word)
    return at, at + len(word)


def _inside_words(
    name: str, word: str, count: int, text: str, spaced: str
) -> list[Occurrence] | None:
    """The `count` places of a Hangul word (which cannot overlap itself) in a field's runs,
    when all of them stand in its `text` as they are, inside single words (else None): the
    nth of them in the text is then the nth in its words spaced (`FieldWords.text`), where
    the spaces before it count the words before it. The text has no more of them."""
    found = []
    size, position, counted = len(word), -1, 0
    at = spot = -size
    for _ in range(count):
        at = text.find(word, at + size)
        if at < 0:
            return None  # one spans eojeols
        spot = spaced.find(word, spot + size)
        position += spaced.count(" ", counted, spot)
        counted = spot
        found.append(Occurrence(name, at, at + size, position, position))
    return found


@lru_cache(maxsize=1 << 16)
def _kind(
    words: tuple[str, ...], prefixes: tuple[bool, ...], cased: tuple[str, ...] | None
) -> tuple[bool, str | None]:
    """Whether a term's words are all Hangul, and its `exact_key` (None for those)."""
    if all(_is_hangul(w) for w in words):
        return True, None
    return False, exact_key(Term("", words, prefixes, cased=cased))


def _word_at(spans: Spans, offset: int, low: int, high: int) -> int:
    """The word (of `low` to `high` - 1) holding character `offset`, which a word holds."""
    while high - low > 1:
        middle = (low + high) // 2
        if spans[middle][0] <= offset:
            low = middle
        else:
            high = middle
    return low


def _finds(word: str, text: str) -> list[int]:
    """Where `word` starts in `text`, each place after the end of the one before."""
    found = []
    at = text.find(word)
    while at >= 0:
        found.append(at)
        at = text.find(word, at + len(word))
    return found


class _Letters:
    """Where each Hangul letter of a text stands in it, by runs of letters."""

    __slots__ = ("_counts", "_nuls", "_seen", "_starts")

    def __init__(self, text: str) -> None:
        parts = _SYLLABLES.split(text)  # [other, letters, other, …, other]
        self._starts = list(accumulate(map(len, parts)))[0::2]  # where each run of letters starts
        self._counts = list(accumulate(map(len, parts[1::2])))  # letters up to each one's end
        self._seen = self._nuls = 0  # the NULs of the runs before `_seen`, counted once

    def span(self, runs: str, start: int, end: int) -> tuple[int, int]:
        """The text's characters for characters `start:end` of its `runs` (NUL-separated),
        asked in order."""
        if start < self._seen:
            self._seen = self._nuls = 0
        self._nuls += runs.count("\x00", self._seen, start)
        self._seen = start
        first = start - self._nuls  # the letter's number
        last = first + (end - start) - 1  # a match never holds a NUL
        return self._at(first), self._at(last) + 1

    def _at(self, letter: int) -> int:
        counts = self._counts
        run = bisect_right(counts, letter)
        return self._starts[run] + letter - (counts[run - 1] if run else 0)
