"""The watch-rule query language: parse a boolean query into a small frozen AST.

    query   := or
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*        side-by-side terms are AND-ed
    unary   := "NOT" unary | primary
    primary := term | "phrase" | "(" or ")"

Operators are the uppercase words AND, OR, NOT. A term is any run of characters other than
space, parentheses and quote marks; it is tokenized like article text, and a term made of several
words (`F-35A`, `U.S.-ROK`) is a phrase. A trailing `*` makes the word before it a prefix (at least
two characters). A query that an article containing none of its terms would match (`NOT x`,
`a OR NOT b`) is refused. Every mistake raises QuerySyntaxError with the 1-based column of the
culprit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

from bot.errors import QuerySyntaxError
from bot.textnorm import DASHES, QUOTES, tokenize, words

OPERATORS = frozenset({"AND", "OR", "NOT"})
MIN_PREFIX = 2  # characters before a trailing `*`
WILDCARD = "*"
_SHORT_PREFIX = f"'*' needs at least {MIN_PREFIX} letters or digits right before it"


@dataclass(frozen=True)
class Term:
    """A word or phrase; `words` are normalized, `prefixes[i]` marks a trailing `*` on word i."""

    text: str = field(compare=False)  # as written, without a phrase's quote marks
    words: tuple[str, ...]
    prefixes: tuple[bool, ...]
    phrase: bool = False
    column: int = field(default=0, compare=False)

    @property
    def prefix(self) -> bool:
        """True when the last word carries a trailing `*`."""
        return self.prefixes[-1]

    def __str__(self) -> str:
        body = " ".join(w + WILDCARD * p for w, p in zip(self.words, self.prefixes, strict=True))
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


Expr: TypeAlias = Term | And | Or | Not
EXPR_TYPES = (Term, And, Or, Not)


def parse_query(text: str) -> Expr:
    """Parse `text`; raise QuerySyntaxError(reason, column) when it is not a valid query."""
    tokens = list(_lex(text))
    if not tokens:
        raise QuerySyntaxError("the query is empty", 1)
    parser = _Parser(tokens)
    expr = parser.parse()
    _require_positive(expr)
    return expr


def describe(expr: Expr) -> str:
    """The canonical text of `expr`: normalized words, explicit operators, grouping parentheses."""
    return str(expr)


def terms(expr: Expr) -> tuple[Term, ...]:
    """Every term of `expr` in query order (repeats included)."""
    if isinstance(expr, Term):
        return (expr,)
    if isinstance(expr, Not):
        return terms(expr.child)
    return tuple(t for child in expr.children for t in terms(child))


# --- lexer ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lexeme:
    kind: str  # "(", ")", "AND", "OR", "NOT", "term", "phrase"
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
        elif char in QUOTES:
            end = next((j for j in range(i + 1, n) if text[j] in QUOTES), -1)
            if end < 0:
                raise QuerySyntaxError("unterminated quote: add the closing quote mark", i + 1)
            yield _Lexeme("phrase", text[i + 1 : end], i + 1)
            i = end + 1
        else:
            j = i
            while j < n and not (text[j].isspace() or text[j] in "()" or text[j] in QUOTES):
                j += 1
            word = text[i:j]
            yield _Lexeme(word if word in OPERATORS else "term", word, i + 1)
            i = j


# --- parser --------------------------------------------------------------------------------


class _Parser:
    def __init__(self, lexemes: list[_Lexeme]) -> None:
        self._lexemes = lexemes
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
        return self._primary(ahead)

    def _operand_after(self, operator: _Lexeme, parse: Callable[[], Expr]) -> Expr:
        ahead = self._peek()
        if ahead is None or ahead.kind in ("AND", "OR", ")"):
            following = "the end of the query" if ahead is None else repr(ahead.text)
            raise QuerySyntaxError(
                f"{operator.text} needs a term after it, found {following}", operator.column
            )
        return parse()

    def _primary(self, ahead: _Lexeme) -> Expr:
        if ahead.kind in ("AND", "OR"):
            raise QuerySyntaxError(f"{ahead.text} needs a term before it", ahead.column)
        if ahead.kind == ")":
            raise QuerySyntaxError("unbalanced ')': no '(' opens it", ahead.column)
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
        if ahead.kind == "phrase":
            return _phrase(ahead)
        return _bare_term(ahead)


def _flatten(kind: type[And] | type[Or], children: list[Expr]) -> tuple[Expr, ...]:
    flat: list[Expr] = []
    for child in children:
        flat.extend(child.children if isinstance(child, kind) else (child,))
    return tuple(flat)


# --- terms ---------------------------------------------------------------------------------


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
    if isinstance(expr, Term):
        return False
    if isinstance(expr, Not):
        return not _matches_empty(expr.child)
    if isinstance(expr, And):
        return all(_matches_empty(c) for c in expr.children)
    return any(_matches_empty(c) for c in expr.children)


def _require_positive(expr: Expr) -> None:
    """Reject a query that an article without any of its terms would match (`NOT x`)."""
    if not _matches_empty(expr):
        return
    culprit = expr
    while not isinstance(culprit, Not):
        assert not isinstance(culprit, Term)
        culprit = next(c for c in culprit.children if _matches_empty(c))
    raise QuerySyntaxError(
        "the query needs a term that must be present: "
        f"'{culprit}' alone would match almost every article",
        culprit.column,
    )
