"""The hits of the usual rule, an AND of ORs of terms and NEARs, from the places of its terms.

Such a rule matches when each of its ORs has a term found and each of its NEARs a pair of
places close enough; every term found in an OR is a hit, and every place of a close pair, as
`match.evaluate` reports a true OR, NEAR and AND. The rule index compiles, per term in query
order, the id of a key the article's view holds whenever the term is there: a term whose key
the scan did not find is skipped by one set lookup, without looking for its words.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from itertools import compress, islice
from operator import attrgetter
from typing import Any, cast

from bot.expr import And, Expr, Near, Or, Term
from bot.match import Document, Occurrence, close_pairs
from bot.models import Hit


def plain_terms(expr: Expr) -> tuple[Term, ...] | None:
    """The terms of a term, an OR of terms, a NEAR of those, or an AND of those, in query
    order (the shape `keyed_hits` knows); None for another shape."""
    if type(expr) is Or:
        found: tuple[Expr, ...] = expr.children
    else:
        found = ()
        for part in expr.children if type(expr) is And else (expr,):
            if type(part) is Or:
                found += part.children
            elif type(part) is Near:
                found += _alternatives(part.left) + _alternatives(part.right)
            else:
                found += (part,)
    if set(map(type, found)) != {Term}:
        return None
    return found  # type: ignore[return-value]


def _alternatives(expr: Expr) -> tuple[Expr, ...]:
    return expr.children if type(expr) is Or else (expr,)


_TEXT = attrgetter("text")


def one_term_per_text(terms: tuple[Term, ...]) -> bool:
    """Whether terms written alike are alike (`{US}` and `US` are not; nor are two alias
    sets' `USFK`): `keyed_hits` then orders hits and terms as the reference does."""
    if len(set(map(_TEXT, terms))) == len(terms):
        return True
    seen: dict[str, tuple[Any, ...]] = {}
    for t in terms:
        same = (t.words, t.prefixes, t.cased, t.alias)
        if seen.setdefault(t.text, same) != same:
            return False
    return True


_ORDERS: dict[tuple[str, ...], dict[str, int]] = {}  # each rule's fields, by place


def keyed_hits(
    expr: Expr,
    keys: Iterable[int],
    present: AbstractSet[int],
    doc: Document,
    fields: tuple[str, ...],
) -> tuple[tuple[str, ...], tuple[Hit, ...]] | None:
    """Whether a term, an OR of terms, a NEAR of those, or an AND of those matches, as
    `match.evaluate` says: its terms that fired in query order (`match.rule_match`) and its
    hits; None when a part has no term found, or a NEAR no close pair (it does not match).
    `keys[k]` is the id of a key of `plain_terms(expr)[k]` that the article's view holds
    whenever the term is in it: a term whose key is not in `present` is skipped by that one
    lookup. The rule's terms written alike are alike (`one_term_per_text`): a text's first
    term fires when any does, and hits that agree on field, offsets and term agree on all."""
    fired: dict[str, tuple[str, tuple[Occurrence, ...]]] = {}  # text: alias, places
    near: list[Hit] = []  # the hits of its NEARs
    ids, held, places_of = iter(keys), present.__contains__, doc.places
    for part in expr.children if type(expr) is And else (expr,):
        if type(part) is Near:
            sides = [_held(side, ids, held) for side in (part.left, part.right)]
            left = [(t, o) for t in sides[0] for o in places_of(t, fields)]
            close = close_pairs(part, left, _placed(sides[1], doc, fields)) if left else ()
            if not close:
                return None
            near += close
            continue
        found = False
        alternatives = part.children if type(part) is Or else (part,)
        # the terms whose key the view holds, picked without a Python step per term
        for child in compress(alternatives, map(held, islice(ids, len(alternatives)))):
            term = cast(Term, child)  # `plain_terms` told
            text = term.text
            if text in fired:  # the same term again
                found = True
                continue
            places = places_of(term, fields)
            if places:
                fired[text] = (term.alias, places)
                found = True
        if not found:
            return None
    if near:
        return _with_near(expr, fired, near, fields)
    if len(fired) == 1:  # one term's places: each once, by field and offset already
        ((text, (alias, places)),) = fired.items()
        return (text,), tuple([_hit(text, o[0], o[1], o[2], alias) for o in places])
    order = _ORDERS.get(fields)
    if order is None:
        order = _ORDERS.setdefault(fields, {name: i for i, name in enumerate(fields)})
    # as `match.evaluate`: by field, start, end and term; each once, as the terms differ
    rows = [
        (order[o[0]], o[1], o[2], text, alias, o[0])
        for text, (alias, places) in fired.items()
        for o in places
    ]
    rows.sort()
    return tuple(fired), tuple(
        [_hit(text, name, start, end, alias) for _, start, end, text, alias, name in rows]
    )


def _held(side: Expr, ids: Iterator[int], held: Any) -> list[Term]:
    """The terms of a term or an OR of terms whose key the view holds (the next ids), picked
    without a Python step per term."""
    alternatives = _alternatives(side)
    return list(compress(alternatives, map(held, islice(ids, len(alternatives)))))  # type: ignore[arg-type]


def _placed(
    terms: list[Term], doc: Document, fields: tuple[str, ...]
) -> Iterator[tuple[Term, Occurrence]]:
    """Each place of each term, as `match._near` lists a side's, looked for only if asked."""
    return ((t, o) for t in terms for o in doc.places(t, fields))


def _with_near(
    expr: Expr,
    fired: dict[str, tuple[str, tuple[Occurrence, ...]]],
    near: list[Hit],
    fields: tuple[str, ...],
) -> tuple[tuple[str, ...], tuple[Hit, ...]]:
    """The terms and hits of a matching rule with a NEAR, as `match.evaluate` and
    `match.rule_match` make them: a NEAR's terms fire only where a place is close to another."""
    hits = set(near)
    for text, (alias, places) in fired.items():
        hits.update([_hit(text, o[0], o[1], o[2], alias) for o in places])
    order = _ORDERS.get(fields)
    if order is None:
        order = _ORDERS.setdefault(fields, {name: i for i, name in enumerate(fields)})
    found = {hit.term for hit in hits}
    terms = plain_terms(expr) or ()
    return tuple(dict.fromkeys(t.text for t in terms if t.text in found)), tuple(
        sorted(hits, key=lambda h: (order[h.field], h.start, h.end, h.term))
    )


_new = object.__new__


def _hit(term: str, field: str, start: int, end: int, alias: str) -> Hit:
    """`Hit(term, field, start, end, alias)` at half the cost: a frozen dataclass's `__init__`
    sets each field by `object.__setattr__`, where its dict can be filled at once."""
    hit: Hit = _new(Hit)
    hit.__dict__.update(term=term, field=field, start=start, end=end, alias=alias)
    return hit
