"""The watch-rule query language: parse a boolean query into a small frozen AST.

    query   := or
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*        side-by-side terms are AND-ed
    unary   := "NOT" unary | near
    near    := primary [("NEAR/n" | "ONEAR/n") primary]
    primary := term | "phrase" | "{exact}" | "@alias" | field ":" primary | "(" or ")"

Operators are the uppercase words AND, OR, NOT, NEAR/n and ONEAR/n. A term is any run of
characters other than space, parentheses, braces and quote marks; it is tokenized like article
text, and a term made of several words (`F-35A`, `U.S.-ROK`) is a phrase. A trailing `*` makes the
word before it a prefix (at least two characters). `{US}` matches only that exact case. `@name`
stands for the alias set `name` (an OR of its terms). `title:`, `summary:` and `content:` scope
what follows them to one field. Each side of NEAR/ONEAR is a term or a group of terms joined by
OR. A query that an article containing none of its terms would match (`NOT x`, `a OR NOT b`) is
refused, and so is one that can never match (`x NOT x`). Every mistake raises QuerySyntaxError
with the 1-based column of the culprit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from bot.errors import QuerySyntaxError
from bot.models import FIELDS
from bot.textnorm import DASHES, QUOTES, cased_words, tokenize, words

OPERATORS = frozenset({"AND", "OR", "NOT"})
MIN_PREFIX = 2  # characters before a trailing `*`
MAX_DISTANCE = 100  # the largest n of NEAR/n
WILDCARD = "*"
_SHORT_PREFIX = f"'*' needs at least {MIN_PREFIX} letters or digits right before it"
_NEAR = re.compile(r"^(O?NEAR)(?:/(\d*))?$", re.IGNORECASE)
_SCOPE = re.compile(r"^([A-Za-z]+):")
ALIAS_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_STOP = frozenset("(){}") | QUOTES  # characters that end a bare term


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
Aliases: TypeAlias = Mapping[str, tuple[Term, ...]]  # alias name → its terms


def parse_query(text: str, aliases: Aliases | None = None, *, check: bool = True) -> Expr:
    """Parse `text`; raise QuerySyntaxError(reason, column) when it is not a valid query.

    `@name` is replaced by the terms of alias set `name` from `aliases`. `check=False` skips
    `check_query` (for a part of a structured rule, checked as a whole afterwards).
    """
    tokens = list(_lex(text))
    if not tokens:
        raise QuerySyntaxError("the query is empty", 1)
    parser = _Parser(tokens, aliases or {})
    expr = parser.parse()
    if check:
        check_query(expr)
    return expr


def combine(
    all_of: Sequence[Expr] = (), any_of: Sequence[Expr] = (), none_of: Sequence[Expr] = ()
) -> Expr:
    """The structured form: every one of `all_of`, one of `any_of`, none of `none_of`.

    It builds the very AST the parser builds for `a b (c OR d) NOT e NOT f`.
    """
    parts = list(all_of)
    if any_of:
        parts.append(any_of[0] if len(any_of) == 1 else Or(_flatten(Or, list(any_of))))
    parts += [n.child if isinstance(n, Not) else Not(n) for n in none_of]
    if not parts:
        raise ValueError("nothing to combine")
    return parts[0] if len(parts) == 1 else And(_flatten(And, parts))


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


def parse_term(text: str, column: int = 1) -> Term:
    """One term as written in an alias set: a word, several words (a phrase), `{EXACT}`, `x*`."""
    tokens = list(_lex(text))
    if any(t.kind in OPERATORS or t.kind == "NEAR" for t in tokens):
        raise QuerySyntaxError(
            "an alias entry is one term or phrase: list alternatives as separate entries", column
        )
    if len(tokens) == 1 and tokens[0].kind in ("term", "exact", "phrase"):
        term = _term(tokens[0])
    elif text.strip() and not any(c in _STOP for c in text):
        term = _phrase(_Lexeme("phrase", text, 0))
    else:
        raise QuerySyntaxError(
            "an alias entry is one term or phrase (no operators, groups or quotes)", column
        )
    return _shift(term, column)


def _shift(term: Term, column: int) -> Term:
    return Term(term.text, term.words, term.prefixes, term.phrase, column, term.cased, term.alias)


# --- lexer ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lexeme:
    kind: str  # "(", ")", "AND", "OR", "NOT", "NEAR", "term", "phrase", "exact", "alias", "scope"
    text: str
    column: int


def _lex(text: str) -> Iterator[_Lexeme]:
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "()":
            yield _Lexeme(char, char, i + 1)
            i += 1
        elif char in QUOTES or char == "{":
            closers = QUOTES if char in QUOTES else frozenset("}")
            end = next((j for j in range(i + 1, n) if text[j] in closers), -1)
            if end < 0:
                what = "quote: add the closing quote mark" if char in QUOTES else "'{': add '}'"
                raise QuerySyntaxError(f"unterminated {what}", i + 1)
            yield _Lexeme("phrase" if char in QUOTES else "exact", text[i + 1 : end], i + 1)
            i = end + 1
        elif char == "}":
            raise QuerySyntaxError("unbalanced '}': no '{' opens it", i + 1)
        else:
            j = i
            while j < n and not (text[j].isspace() or text[j] in _STOP):
                j += 1
            word = text[i:j]
            scope = _SCOPE.match(word)
            if scope is not None and _is_scope(scope[1], word, text[j : j + 1], i + 1):
                yield _Lexeme("scope", scope[1], i + 1)
                i += scope.end()
                continue
            if word in OPERATORS:
                kind = word
            elif (near := _NEAR.match(word)) and (near[1] in ("NEAR", "ONEAR") or "/" in word):
                kind = "NEAR"  # a lower-case "near" alone is an ordinary word
            elif word.startswith("@"):
                kind = "alias"
            else:
                kind = "term"
            yield _Lexeme(kind, word, i + 1)
            i = j


def _is_scope(name: str, word: str, following: str, column: int) -> bool:
    """Whether `name:` opens a field scope; a mistyped field name before a group is an error."""
    glued = len(word) > len(name) + 1 or (following != "" and not following.isspace())
    if name in FIELDS:
        if not glued:
            raise QuerySyntaxError(f"no space after '{name}:': write {name}:(…)", column)
        return True
    if len(word) == len(name) + 1 and following and (following == "(" or following in QUOTES):
        raise QuerySyntaxError(
            f"unknown field {name!r} before ':' (expected: {', '.join(FIELDS)})", column
        )
    return False


# --- parser --------------------------------------------------------------------------------


class _Parser:
    def __init__(self, lexemes: list[_Lexeme], aliases: Aliases) -> None:
        self._lexemes = lexemes
        self._aliases = aliases
        self._pos = 0

    def parse(self) -> Expr:
        expr = self._or()
        if (extra := self._peek()) is not None:  # only a ')' stops the loops early
            raise QuerySyntaxError("unbalanced ')': no '(' opens it", extra.column)
        return expr

    def _peek(self) -> _Lexeme | None:
        return self._lexemes[self._pos] if self._pos < len(self._lexemes) else None

    def _take(self) -> _Lexeme:
        lexeme = self._lexemes[self._pos]
        self._pos += 1
        return lexeme

    def _or(self) -> Expr:
        children = [self._and()]
        while (ahead := self._peek()) is not None and ahead.kind == "OR":
            self._take()
            children.append(self._operand_after(ahead, self._and))
        return children[0] if len(children) == 1 else Or(_flatten(Or, children))

    def _and(self) -> Expr:
        children = [self._unary()]
        while (ahead := self._peek()) is not None and ahead.kind not in ("OR", ")"):
            if ahead.kind == "AND":
                self._take()
                children.append(self._operand_after(ahead, self._unary))
            else:
                children.append(self._unary())
        return children[0] if len(children) == 1 else And(_flatten(And, children))

    def _unary(self) -> Expr:
        ahead = self._peek()
        assert ahead is not None, "callers check for the end of the query"
        if ahead.kind == "NOT":
            self._take()
            child = self._operand_after(ahead, self._unary)
            return child.child if isinstance(child, Not) else Not(child, ahead.column)
        return self._near()

    def _near(self) -> Expr:
        left_at = self._peek()
        assert left_at is not None
        left = self._primary(left_at)
        operator = self._peek()
        if operator is None or operator.kind != "NEAR":
            return left
        self._take()
        ordered, distance = _near_operator(operator)
        right_at = self._peek()
        if right_at is None or right_at.kind in ("AND", "OR", "NOT", ")", "NEAR"):
            following = "the end of the query" if right_at is None else repr(right_at.text)
            raise QuerySyntaxError(
                f"{operator.text} needs a term or group after it, found {following}",
                operator.column,
            )
        right = self._primary(right_at)
        _proximity_side(left, left_at.column)
        _proximity_side(right, right_at.column)
        if (again := self._peek()) is not None and again.kind == "NEAR":
            raise QuerySyntaxError(
                f"{again.text} cannot follow another proximity operator: "
                "combine two of them with AND",
                again.column,
            )
        return Near(left, right, distance, ordered, operator.column)

    def _operand_after(self, operator: _Lexeme, parse: Callable[[], Expr]) -> Expr:
        ahead = self._peek()
        if ahead is None or ahead.kind in ("AND", "OR", ")", "NEAR"):
            following = "the end of the query" if ahead is None else repr(ahead.text)
            raise QuerySyntaxError(
                f"{operator.text} needs a term after it, found {following}", operator.column
            )
        return parse()

    def _primary(self, ahead: _Lexeme) -> Expr:
        if ahead.kind in ("AND", "OR", "NEAR"):
            raise QuerySyntaxError(f"{ahead.text} needs a term before it", ahead.column)
        if ahead.kind == ")":
            raise QuerySyntaxError("unbalanced ')': no '(' opens it", ahead.column)
        if ahead.kind == "NOT":  # after a field scope: title:NOT x
            raise QuerySyntaxError("put NOT before the field scope: NOT title:x", ahead.column)
        self._take()
        if ahead.kind == "(":
            first = self._peek()
            if first is None:
                raise QuerySyntaxError("unbalanced '(': add the closing ')'", ahead.column)
            if first.kind == ")":
                raise QuerySyntaxError("empty parentheses", first.column)
            inner = self._or()
            close = self._peek()
            if close is None or close.kind != ")":
                raise QuerySyntaxError("unbalanced '(': add the closing ')'", ahead.column)
            self._take()
            return inner
        if ahead.kind == "scope":
            target = self._peek()
            if target is None:
                raise QuerySyntaxError(
                    f"{ahead.text}: needs a term or group after it", ahead.column
                )
            return Scope(ahead.text, self._primary(target), ahead.column)
        if ahead.kind == "alias":
            return self._alias(ahead)
        return _term(ahead)

    def _alias(self, lexeme: _Lexeme) -> Expr:
        name = lexeme.text[1:].lower()
        if not ALIAS_NAME.match(name):
            raise QuerySyntaxError(
                "an alias is '@' and a name of lower-case letters, digits, '_' or '-'",
                lexeme.column,
            )
        found = self._aliases.get(name)
        if found is None:
            known = ", ".join(f"@{a}" for a in sorted(self._aliases)) or "none are defined"
            raise QuerySyntaxError(f"unknown alias @{name} (known: {known})", lexeme.column)
        if not found:
            raise QuerySyntaxError(f"alias @{name} is empty: it can never match", lexeme.column)
        expanded = tuple(
            Term(t.text, t.words, t.prefixes, t.phrase, lexeme.column, t.cased, name) for t in found
        )
        return expanded[0] if len(expanded) == 1 else Or(expanded)


def _near_operator(lexeme: _Lexeme) -> tuple[bool, int]:
    found = _NEAR.match(lexeme.text)
    assert found is not None
    op, digits = found[1], found[2]
    if op != op.upper():
        raise QuerySyntaxError(
            f"write proximity operators in capitals: {op.upper()}/5", lexeme.column
        )
    if not digits:
        raise QuerySyntaxError(f"{op} needs a distance in words: {op}/5", lexeme.column)
    distance = int(digits)
    if not 1 <= distance <= MAX_DISTANCE:
        raise QuerySyntaxError(
            f"{op} distance must be 1 to {MAX_DISTANCE} words, not {distance}", lexeme.column
        )
    return op == "ONEAR", distance


def _proximity_side(expr: Expr, column: int) -> None:
    """Each side of NEAR is a term or an OR of terms (phrases, wildcards, aliases included)."""
    if isinstance(expr, Term):
        return
    if isinstance(expr, Or) and all(isinstance(c, Term) for c in expr.children):
        return
    if isinstance(expr, Scope):
        reason = "put the field scope around the whole proximity: title:(a NEAR/5 b)"
    else:
        reason = "each side of NEAR/ONEAR must be a term or a group of terms joined by OR"
    raise QuerySyntaxError(reason, column)


def _flatten(kind: type[And] | type[Or], children: list[Expr]) -> tuple[Expr, ...]:
    flat: list[Expr] = []
    for child in children:
        flat.extend(child.children if isinstance(child, kind) else (child,))
    return tuple(flat)


# --- terms ---------------------------------------------------------------------------------


def _term(lexeme: _Lexeme) -> Term:
    if lexeme.kind == "phrase":
        return _phrase(lexeme)
    if lexeme.kind == "exact":
        return _exact(lexeme)
    return _bare_term(lexeme)


def _bare_term(lexeme: _Lexeme) -> Term:
    text, column = lexeme.text, lexeme.column
    if text.lower() in ("and", "or", "not"):
        raise QuerySyntaxError(
            f"{text!r} is not an operator: write {text.upper()} to combine terms, "
            f'or "{text}" in quotes to search for the word',
            column,
        )
    if text[0] in DASHES and len(text) > 1:
        raise QuerySyntaxError(
            f"a leading {text[0]!r} does not exclude: write NOT {text[1:]}", column
        )
    words, prefixes = _words(text, column)
    return Term(text, words, prefixes, phrase=len(words) > 1, column=column)


def _phrase(lexeme: _Lexeme) -> Term:
    inside = lexeme.column + 1  # column of the first character after the opening quote
    found: list[str] = []
    prefixes: list[bool] = []
    at = 0
    for chunk in lexeme.text.split():
        at = lexeme.text.index(chunk, at)
        if WILDCARD in chunk:
            chunk_words, chunk_prefixes = _words(chunk, inside + at)
        else:  # punctuation between words ("Q & A") is no error
            chunk_words = words(chunk)
            chunk_prefixes = (False,) * len(chunk_words)
        found.extend(chunk_words)
        prefixes.extend(chunk_prefixes)
        at += len(chunk)
    if not found:
        raise QuerySyntaxError("empty phrase: put words between the quotes", lexeme.column)
    return Term(
        lexeme.text.strip(), tuple(found), tuple(prefixes), phrase=True, column=lexeme.column
    )


def _exact(lexeme: _Lexeme) -> Term:
    """`{US}`: the words inside the braces, matched only in exactly that case."""
    inner = _phrase(_Lexeme("phrase", lexeme.text, lexeme.column))
    cased = cased_words(lexeme.text.replace(WILDCARD, " "))
    if len(cased) != len(inner.words):
        raise QuerySyntaxError("'{…}' holds words and phrases only", lexeme.column)
    return Term(
        lexeme.text.strip(),
        inner.words,
        inner.prefixes,
        phrase=len(inner.words) > 1,
        column=lexeme.column,
        cased=cased,
    )


def _words(text: str, column: int) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    """Tokenize one chunk of a term; a `*` is allowed only as its last character."""
    star = text.find(WILDCARD)
    if 0 <= star < len(text) - 1:
        raise QuerySyntaxError("'*' is allowed only at the end of a word", column + star)
    body = text[:-1] if star >= 0 else text
    tokens = tokenize(body)
    if not tokens:
        if star >= 0:
            raise QuerySyntaxError(_SHORT_PREFIX, column + star)
        raise QuerySyntaxError(f"{text!r} has no letters or digits to search for", column)
    prefixes = [False] * len(tokens)
    if star >= 0:
        last = tokens[-1]
        if last.end != len(body) or len(last.text) < MIN_PREFIX:
            raise QuerySyntaxError(_SHORT_PREFIX, column + star)
        prefixes[-1] = True
    return tuple(t.text for t in tokens), tuple(prefixes)


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
