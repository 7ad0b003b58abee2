"""Query expressions: the frozen AST a parsed query is, and what can be known from it alone.

Each node prints as the canonical query text (`describe`). `check_query` refuses a query that
an article containing none of its terms would match (`NOT x`, `a OR NOT b`) and one that can
never match (`x NOT x`); `never_matches` says why, for a given set of fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from bot.errors import QuerySyntaxError
from bot.models import FIELDS

WILDCARD = "*"


@dataclass(frozen=True)
class Term:
    """A word or phrase; `words` are normalized, `prefixes[i]` marks a trailing `*` on word i.

    `cased` holds the words in their exact case (NFKC, not folded) for an exact-case term.
    """

    text: str = field(compare=False)  # as written, without a phrase's quote marks
    words: tuple[str, ...]
    prefixes: tuple[bool, ...]
    phrase: bool = False
    column: int = field(default=0, compare=False)
    cased: tuple[str, ...] | None = None
    alias: str = field(default="", compare=False)  # the alias set it came from, if any

    @property
    def prefix(self) -> bool:
        """True when the last word carries a trailing `*`."""
        return self.prefixes[-1]

    def __str__(self) -> str:
        shown = self.cased if self.cased is not None else self.words
        body = " ".join(w + WILDCARD * p for w, p in zip(shown, self.prefixes, strict=True))
        if self.cased is not None:
            return f"{{{body}}}"
        return f'"{body}"' if self.phrase else body


@dataclass(frozen=True)
class And:
    """All children must match."""

    children: tuple[Expr, ...]

    def __str__(self) -> str:
        return " AND ".join(f"({c})" if isinstance(c, Or) else str(c) for c in self.children)


@dataclass(frozen=True)
class Or:
    """At least one child must match."""

    children: tuple[Expr, ...]

    def __str__(self) -> str:
        return " OR ".join(f"({c})" if isinstance(c, And) else str(c) for c in self.children)


@dataclass(frozen=True)
class Not:
    """The child must not match."""

    child: Expr
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        inner = str(self.child)
        return f"NOT {inner}" if isinstance(self.child, Term) else f"NOT ({inner})"


@dataclass(frozen=True)
class Near:
    """A term of `left` within `distance` words of a term of `right` in the same field.

    `ordered` (ONEAR) requires the left one to start first. Each side is a Term or an Or of Terms.
    """

    left: Expr
    right: Expr
    distance: int
    ordered: bool = False
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        op = "ONEAR" if self.ordered else "NEAR"
        sides = [f"({s})" if isinstance(s, Or) else str(s) for s in (self.left, self.right)]
        return f"{sides[0]} {op}/{self.distance} {sides[1]}"


@dataclass(frozen=True)
class Scope:
    """The child must match within one field (`title:(…)`)."""

    name: str  # one of FIELDS
    child: Expr
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"{self.name}:" + (
            str(self.child) if isinstance(self.child, Term) else f"({self.child})"
        )


Expr: TypeAlias = Term | And | Or | Not | Near | Scope
EXPR_TYPES = (Term, And, Or, Not, Near, Scope)


def combine(
    all_of: Sequence[Expr] = (), any_of: Sequence[Expr] = (), none_of: Sequence[Expr] = ()
) -> Expr:
    """The structured form: every one of `all_of`, one of `any_of`, none of `none_of`.

    It builds the very AST the parser builds for `a b (c OR d) NOT e NOT f`.
    """
    parts = list(all_of)
    if any_of:
        parts.append(any_of[0] if len(any_of) == 1 else Or(flatten(Or, list(any_of))))
    parts += [n.child if isinstance(n, Not) else Not(n) for n in none_of]
    if not parts:
        raise ValueError("nothing to combine")
    return parts[0] if len(parts) == 1 else And(flatten(And, parts))


def check_query(expr: Expr) -> None:
    """Refuse a query that matches articles without its terms, or that can never match."""
    _require_positive(expr)
    _require_satisfiable(expr)


def describe(expr: Expr) -> str:
    """The canonical text of `expr`: normalized words, explicit operators, grouping parentheses."""
    return str(expr)


def children(expr: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of `expr`."""
    if isinstance(expr, Term):
        return ()
    if isinstance(expr, Not | Scope):
        return (expr.child,)
    if isinstance(expr, Near):
        return (expr.left, expr.right)
    return expr.children


def terms(expr: Expr) -> tuple[Term, ...]:
    """Every term of `expr` in query order (repeats included)."""
    if isinstance(expr, Term):
        return (expr,)
    return tuple(t for child in children(expr) for t in terms(child))


def flatten(kind: type[And] | type[Or], items: list[Expr]) -> tuple[Expr, ...]:
    """The children of a new `kind` node over `items`: a nested node of that kind is opened."""
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.children if isinstance(item, kind) else (item,))
    return tuple(flat)


# --- meaning checks ------------------------------------------------------------------------


def _matches_empty(expr: Expr) -> bool:
    """Whether `expr` holds for an article containing none of its terms."""
    if isinstance(expr, Term | Near):
        return False
    if isinstance(expr, Not):
        return not _matches_empty(expr.child)
    if isinstance(expr, Scope):
        return _matches_empty(expr.child)
    if isinstance(expr, And):
        return all(_matches_empty(c) for c in expr.children)
    return any(_matches_empty(c) for c in expr.children)


def _require_positive(expr: Expr) -> None:
    """Reject a query that an article without any of its terms would match (`NOT x`)."""
    if not _matches_empty(expr):
        return
    culprit = expr
    while not isinstance(culprit, Not):
        assert not isinstance(culprit, Term | Near)
        culprit = next(c for c in children(culprit) if _matches_empty(c))
    raise QuerySyntaxError(
        "the query needs a term that must be present: "
        f"'{culprit}' alone would match almost every article",
        culprit.column,
    )


def never_matches(expr: Expr, fields: tuple[str, ...] = FIELDS) -> tuple[str, int] | None:
    """Why `expr` can never match when searched in `fields`, and the column to blame; or None.

    Found: a field scope outside `fields` (or inside a scope of another field), and an AND
    holding both X and NOT X, or X and NOT (X OR …). A sufficient test, not a complete one.
    """
    if isinstance(expr, Term):
        return None
    if isinstance(expr, Scope):
        if expr.name not in fields:
            where = ", ".join(fields)
            return f"{expr.name}: is outside the fields searched ({where})", expr.column
        return never_matches(expr.child, (expr.name,))
    if isinstance(expr, Not):
        return None  # NOT of something impossible is always true, never a problem
    if isinstance(expr, And):
        for child in expr.children:
            if isinstance(child, Not):
                excluded = child.child.children if isinstance(child.child, Or) else (child.child,)
                for other in expr.children:
                    if other in excluded:
                        return f"it requires '{other}' and excludes it too", child.column
    found = [never_matches(c, fields) for c in children(expr)]
    if isinstance(expr, Or):
        return found[0] if all(f is not None for f in found) else None
    return next((f for f in found if f is not None), None)


def _require_satisfiable(expr: Expr) -> None:
    found = never_matches(expr)
    if found is not None:
        reason, column = found
        raise QuerySyntaxError(f"the query can never match: {reason}", column)
