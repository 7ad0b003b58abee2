"""The watch-rule query language: parse a boolean query into an expression (bot/expr.py).

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

The expression types and the functions over them are importable from here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TypeAlias

from bot.errors import QuerySyntaxError
from bot.expr import (
    WILDCARD,
    And,
    Expr,
    Near,
    Not,
    Or,
    Scope,
    Term,
    check_query,
    describe,
    flatten,
    never_matches,
    terms,
)
from bot.models import FIELDS
from bot.textnorm import DASHES, QUOTES, cased_words, tokenize, words

OPERATORS = frozenset({"AND", "OR", "NOT"})
MIN_PREFIX = 2  # characters before a trailing `*`
MAX_DISTANCE = 100  # the largest n of NEAR/n
_SHORT_PREFIX = f"'*' needs at least {MIN_PREFIX} letters or digits right before it"
_NEAR = re.compile(r"^(O?NEAR)(?:/(\d*))?$", re.IGNORECASE)
_SCOPE = re.compile(r"^([A-Za-z]+):")
ALIAS_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_STOP = frozenset("(){}") | QUOTES  # characters that end a bare term
__all__ = [  # the parser, and the expression types and functions its callers use with it
    "ALIAS_NAME",
    "Aliases",
    "And",
    "Expr",
    "Near",
    "Not",
    "Or",
    "Scope",
    "Term",
    "describe",
    "never_matches",
    "parse_query",
    "parse_term",
    "terms",
]

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
    return replace(term, column=column)


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
        return children[0] if len(children) == 1 else Or(flatten(Or, children))

    def _and(self) -> Expr:
        children = [self._unary()]
        while (ahead := self._peek()) is not None and ahead.kind not in ("OR", ")"):
            if ahead.kind == "AND":
                self._take()
                children.append(self._operand_after(ahead, self._unary))
            else:
                children.append(self._unary())
        return children[0] if len(children) == 1 else And(flatten(And, children))

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
        expanded = tuple(replace(t, column=lexeme.column, alias=name) for t in found)
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


# --- terms ---------------------------------------------------------------------------------


def _term(lexeme: _Lexeme) -> Term:
    if lexeme.kind == "phrase":
        return _phrase(lexeme)
    if lexeme.kind == "exact":
        return _exact(lexeme)
    return _bare_term(lexeme)


# Characters of regular expressions that no word, phrase or prefix of ours uses: a rule that
# looks like a regex is refused rather than read as words (`(?=a)b` is not `a AND b`).
_REGEX_SYNTAX = frozenset("\\^$?+|[]")


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
    regex = next((i for i, char in enumerate(text) if char in _REGEX_SYNTAX), None)
    if regex is not None:
        raise QuerySyntaxError(
            f"{text[regex]!r} is regular-expression syntax, which rules do not take: write "
            'words, "exact phrases", prefix* and NEAR/n (no backreferences or lookarounds)',
            column + regex,
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
