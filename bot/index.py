"""Every rule compiled into one index, so an article is scanned once whatever the number of rules.

One Aho-Corasick automaton (pyahocorasick) holds a key for every term of every rule: a word
between spaces (`" usfk "`), a prefix after a space (`" troop"`), or a Hangul word alone
(`"주한미군"`), looked for in `textnorm.word_view` of the article, where each word stands between
spaces and the Hangul stands as one run. A term's key is its rarest word: all of a phrase's
words must be there. Each rule is filed under its rarest *required group*: a set of keys of
which the article must hold at least one for the rule to match (the alternatives of an OR, each
side of a NEAR, a term under AND or a field scope); a rule without one (only possible for a rule
built in code, since `check_query` refuses them) is evaluated for every article.

The rules filed under the keys an article holds are its candidates. A candidate whose other
required groups are not all present cannot match and is dropped; the rest are decided by the
reference evaluator (`match.match_rule`), so the index says exactly what the reference says,
hits included. Only the decision costs grow with the rules that could match; the scan does not.
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import ahocorasick

from bot.errors import IndexMissing
from bot.expr import EXPR_TYPES, And, Expr, Near, Not, Scope, Term
from bot.match import Document, match_rule
from bot.models import FIELDS, Article, Rule, RuleMatch
from bot.query import parse_query
from bot.textnorm import is_hangul, word_view

Group = frozenset[int]  # key ids, one of which must be present

_generations = itertools.count(1)

# Words too common to file a rule under when it has a better choice (estimated frequency).
_COMMON = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "he",
        "in", "is", "it", "its", "not", "of", "on", "or", "said", "says", "that", "the", "this",
        "to", "was", "were", "will", "with",
    }
)  # fmt: skip


def word_key(word: str, prefix: bool) -> str:
    """The key that finds `word` in a word view: Hangul inside runs, other words whole."""
    if is_hangul(word):
        return word
    return f" {word}" if prefix else f" {word} "


def frequency(key: str) -> float:
    """A rough share of articles holding `key`: short words and prefixes are common."""
    if not key.startswith(" "):  # Hangul: each syllable makes a word rarer
        return min(1.0, 0.2 * 0.25 ** (len(key) - 1))
    word = key.strip()
    if word in _COMMON:
        return 0.9
    share = 0.05 * 0.7 ** max(0, len(word) - 4)
    if not key.endswith(" "):  # a prefix stands for many words
        share = min(1.0, share * (1 + 20 * 0.5 ** max(0, len(word) - 2)))
    return share


def term_key(term: Term) -> str:
    """The key of `term`'s rarest word (every word of a phrase must be present)."""
    keys = [word_key(w, p) for w, p in zip(term.words, term.prefixes, strict=True)]
    return min(keys, key=frequency)


def required(expr: Expr) -> list[frozenset[str]]:
    """Groups of keys such that, if `expr` matches, each group has a key in the word view."""
    if isinstance(expr, Term):
        return [frozenset((term_key(expr),))]
    if isinstance(expr, Not):
        return []  # an absent term proves nothing
    if isinstance(expr, Scope):
        return required(expr.child)
    if isinstance(expr, Near):
        return required(expr.left) + required(expr.right)
    if isinstance(expr, And):
        return [group for child in expr.children for group in required(child)]
    best = [_rarest(required(child)) for child in expr.children]  # an Or: one of them
    if any(group is None for group in best):
        return []
    return [frozenset().union(*(g for g in best if g is not None))]


def _cost(group: frozenset[str]) -> float:
    return sum(frequency(key) for key in group)


def _rarest(groups: list[frozenset[str]]) -> frozenset[str] | None:
    return min(groups, key=_cost) if groups else None


@dataclass(frozen=True)
class Shipped:
    """A rule index as a worker process receives it: its generation, and the index itself only
    when the worker does not have that generation yet (see `receive`)."""

    generation: int
    payload: bytes | None = None


class RuleIndex:
    """The rules in force compiled for matching; `matches` is the one call per article."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.generation = next(_generations)
        self._payload: bytes | None = None
        self._evaluated: list[Rule] = []  # each rule with its parsed query
        self._groups: list[tuple[Group, ...]] = []  # all required groups of each rule
        self._always: list[int] = []  # rules without a required group
        keys: dict[str, int] = {}
        interned: dict[Group, Group] = {}  # many rules share groups (alias sets)
        filed: dict[int, list[int]] = {}  # key id → rules filed under it
        for position, rule in enumerate(self.rules):
            expr = rule.expr
            if expr is None:
                expr = parse_query(rule.query)
                rule = replace(rule, expr=expr)
            self._evaluated.append(rule)
            groups = required(expr) if isinstance(expr, EXPR_TYPES) else []
            ids = []
            for group in groups:
                as_ids = frozenset(keys.setdefault(key, len(keys)) for key in group)
                ids.append(interned.setdefault(as_ids, as_ids))
            self._groups.append(tuple(ids))
            if not groups:
                self._always.append(position)
                continue
            rarest = min(groups, key=_cost)
            for key in rarest:
                filed.setdefault(keys[key], []).append(position)
        self._filed: list[tuple[int, ...]] = [tuple(filed.get(i, ())) for i in range(len(keys))]
        self._automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for key, key_id in keys.items():
            self._automaton.add_word(key, key_id)
        if keys:
            self._automaton.make_automaton()
        self.keys = len(keys)

    @classmethod
    def build(cls, rules: Iterable[Rule]) -> RuleIndex:
        return cls(rules)

    def present(self, texts: Iterable[str]) -> set[int]:
        """The ids of the keys found in the word view of `texts`."""
        if not self.keys:
            return set()
        view = word_view("\n".join(texts))
        return {key_id for _, key_id in self._automaton.iter(view)}

    def candidates(self, present: set[int], feed: str | None = None) -> list[int]:
        """Positions of the rules that may match, given the keys present, in rule order."""
        filed = self._filed
        found: set[int] = set(self._always)
        for key_id in present:
            found.update(filed[key_id])
        chosen = []
        for i in sorted(found):
            feeds = self.rules[i].feeds
            if feed is not None and feeds is not None and feed not in feeds:
                continue
            if all(not present.isdisjoint(group) for group in self._groups[i]):
                chosen.append(i)
        return chosen

    def match_fields(
        self, texts: Mapping[str, str], feed: str | None = None
    ) -> list[tuple[Rule, RuleMatch]]:
        """Every rule matching an article with these field texts (rules limited to feeds other
        than `feed` are skipped; None: no rule is), in rule order, as `match_rule` says."""
        chosen = self.candidates(self.present(texts.values()), feed)
        if not chosen:
            return []
        doc = Document.from_fields(texts)
        found = []
        for i in chosen:
            match = match_rule(self._evaluated[i], doc)
            if match is not None:
                found.append((self.rules[i], match))
        return found

    def matches(self, article: Article) -> list[tuple[Rule, RuleMatch]]:
        """Every rule that matches `article` (rules limited to other feeds are skipped)."""
        texts = {name: article.field_text(name) for name in FIELDS}
        return self.match_fields(texts, article.feed)

    def ship(self, *, with_index: bool = False) -> Shipped:
        """What a worker call carries: the generation, and the pickled index when asked (made
        once per index)."""
        if not with_index:
            return Shipped(self.generation)
        if self._payload is None:
            self._payload = pickle.dumps(self, pickle.HIGHEST_PROTOCOL)
        return Shipped(self.generation, self._payload)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_payload"] = None
        return state

    def __len__(self) -> int:
        return len(self.rules)


EMPTY = RuleIndex(())

# In a worker process: the last index received, kept until another generation arrives.
_received: list[RuleIndex] = []


def receive(shipped: Shipped) -> RuleIndex:
    """The index `shipped` stands for, in a worker process: the one kept from an earlier call
    of the same generation, else the one it carries; raise IndexMissing when it carries none."""
    if _received and _received[0].generation == shipped.generation:
        return _received[0]
    if shipped.payload is None:
        raise IndexMissing(shipped.generation)
    index = pickle.loads(shipped.payload)
    if not isinstance(index, RuleIndex):
        raise TypeError(f"a shipped rule index unpickled to a {type(index).__name__}")
    _received[:] = [index]
    return index


def index_of(rules: RuleIndex | Sequence[Rule] | Shipped) -> RuleIndex:
    """An index for any way of naming rules: an index, rules (compiled now), or a shipped one."""
    if isinstance(rules, RuleIndex):
        return rules
    if isinstance(rules, Shipped):
        return receive(rules)
    return RuleIndex(rules)
