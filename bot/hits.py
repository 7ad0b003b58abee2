"""The hits of the usual rule, an AND of ORs of terms, from the places of the terms it holds.

Such a rule matches when each of its ORs has a term found, and every term found is a hit, as
`match.evaluate` reports a true OR and AND. The rule index compiles, per term in query order,
the id of a key the article's view holds whenever the term is there: a term whose key the scan
did not find is skipped by one set lookup, without looking for its words.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from itertools import compress, islice
from operator import attrgetter
from typing import Any, cast

from bot.expr import And, Expr, Or, Term
from bot.match import Document, Occurrence
from bot.models import Hit


def plain_terms(expr: Expr) -> tuple[Term, ...] | None:
    """The terms of a term, an OR of terms, or an AND of those, in query order (the shape
    `decide.plain_hits` knows); None for another shape."""
    if type(expr) is Or:
        found: tuple[Expr, ...] = expr.children
    else:
        found = ()
        for part in expr.children if type(expr) is And else (expr,):
            found += part.children if type(part) is Or else (part,)
    if set(map(type, found)) != {Term}:
        return None
    return found  # type: ignore[return-value]


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
    """Whether a term, an OR of terms, or an AND of those matches, as `match.evaluate` says:
    its terms that fired in query order (`match.rule_match`) and its hits (`decide.plain_hits`);
    None when a part has no term found (it does not match). `keys[k]` is the id of a key of
    `plain_terms(expr)[k]` that the article's view holds whenever the term is in it: a term
    whose key is not in `present` is skipped by that one lookup. The rule's terms written
    alike are alike (`one_term_per_text`): a text's first term fires when any does, and
    hits that agree on field, offsets and term agree on all."""
    fired: dict[str, tuple[str, tuple[Occurrence, ...]]] = {}  # text: alias, places
    ids, held = iter(keys), present.__contains__
    for part in expr.children if isinstance(expr, And) else (expr,):
        found = False
        alternatives = part.children if isinstance(part, Or) else (part,)
        # the terms whose key the view holds, picked without a Python step per term
        for child in compress(alternatives, map(held, islice(ids, len(alternatives)))):
            term = cast(Term, child)  # `plain_terms` told
            if term.text in fired:  # the same term again
                found = True
                continue
            places = doc.places(term, fields)
            if places:
                fired[term.text] = (term.alias, places)
                found = True
        if not found:
            return None
    if len(fired) == 1:  # one term's places: each once, by field and offset already
        ((text, (alias, places)),) = fired.items()
        return (text,), tuple(Hit(text, o[0], o[1], o[2], alias) for o in places)
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
        Hit(text, name, start, end, alias) for _, start, end, text, alias, name in rows
    )
