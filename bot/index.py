"""Every rule compiled into one index, so an article is scanned once whatever the number of rules.

Aho-Corasick automata (pyahocorasick) hold a key per term where one key tells it
(`decide.exact_key`: a word between spaces `" usfk "`, a prefix `" troop"`, a phrase of
non-Hangul words `" south korea "`, a Hangul word `"주한미군"`), else a key per word, looked for
in the view of the article's `decide.Page`, where each field's words stand in order between
spaces and its Hangul runs stand joined: one automaton for the keys of words, scanning the
words, one for the Hangul keys, scanning the runs. Each rule is filed under its rarest
*required group*: a set of keys of which the article must hold at least one for the rule to
match (the alternatives of an OR, each side of a NEAR, a term under AND or a field scope); a
rule without one (only possible for a rule built in code, since `check_query` refuses them)
is a candidate for every article.

The rules filed under the keys an article holds, that also hold their second and other groups,
are its candidates. Each is decided from the page by its compiled program (`decide.run`); the
few it cannot tell, and to find their hits the ones that match, go to the reference evaluator
(`match.match_rule`), so the index says exactly what the reference says, hits included; an AND
of ORs of terms and NEARs of those is matched and given its hits by `hits.keyed_hits`, from
the key id of each of its terms compiled with it, so that its absent terms cost one lookup each.
"""

from __future__ import annotations

import gc
import itertools
import pickle
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from operator import itemgetter
from typing import Any

import ahocorasick

from bot.decide import (
    KeyPresent,
    Page,
    PageDocument,
    Program,
    compile_rule,
    exact_key,
    plain_hits,
    run,
)
from bot.errors import IndexMissing
from bot.expr import EXPR_TYPES, And, Expr, Near, Not, Scope, Term
from bot.filing import Filer
from bot.hits import keyed_hits, one_term_per_text, plain_terms
from bot.match import Document, match_rule, rule_match
from bot.models import FIELDS, Article, Rule, RuleMatch
from bot.query import parse_query
from bot.textnorm import is_hangul

_generations = itertools.count(1)
_second = itemgetter(1)  # a key's id from the automaton's (end, id)

# Words too common to file a rule under when it has a better choice: function words and the
# words of most news stories, English and Korean. A key inside one of them is common too.
_COMMON = frozenset(
    {
        "a", "about", "according", "across", "after", "again", "against", "agency", "ago", "air",
        "all", "almost", "already", "also", "among", "an", "and", "another", "any", "april", "are",
        "army", "around", "as", "at", "attack", "august", "authorities", "away", "back", "bank",
        "be", "became", "become", "been", "before", "began", "being", "best", "better", "between",
        "big", "billion", "border", "both", "business", "but", "by", "called", "came", "campaign",
        "can", "capital", "case", "central", "change", "chief", "children", "china", "city",
        "coast", "come", "coming", "companies", "company", "continue", "continued", "control",
        "could", "council", "countries", "country", "court", "crisis", "cut", "day", "days",
        "december", "decision", "defence", "defense", "department", "despite", "development",
        "did", "do", "does", "down", "during", "each", "early", "east", "economic", "economy",
        "election", "end", "energy", "europe", "even", "every", "face", "family", "far",
        "february", "few", "find", "fire", "first", "following", "for", "force", "forces",
        "foreign", "former", "found", "four", "free", "friday", "from", "full", "general", "get",
        "give", "given", "global", "go", "going", "good", "got", "government", "great", "group",
        "had", "half", "hand", "has", "have", "he", "head", "health", "help", "her", "here",
        "high", "himself", "his", "home", "house", "how", "however", "human", "if", "important",
        "in", "including", "increase", "international", "into", "is", "issue", "it", "its",
        "january", "july", "june", "just", "keep", "key", "known", "korea", "korean", "land",
        "large", "last", "later", "law", "leader", "leaders", "least", "left", "less", "life",
        "like", "likely", "little", "local", "long", "look", "lot", "made", "major", "make", "man",
        "many", "march", "market", "markets", "may", "me", "media", "meeting", "men", "might",
        "military", "million", "minister", "ministry", "monday", "money", "month", "months",
        "more", "most", "move", "much", "must", "my", "national", "nations", "near", "need",
        "never", "new", "news", "next", "night", "no", "north", "not", "november", "now", "number",
        "october", "of", "off", "office", "official", "officials", "oil", "old", "on", "once",
        "one", "only", "open", "or", "order", "other", "our", "out", "over", "own", "part",
        "party", "past", "peace", "people", "percent", "place", "plan", "point", "police",
        "policy", "political", "possible", "power", "president", "prime", "public", "put",
        "recent", "recently", "region", "related", "report", "reported", "reports", "result",
        "right", "rights", "run", "russia", "said", "same", "saturday", "say", "says", "second",
        "security", "see", "seen", "september", "service", "set", "several", "she", "should",
        "show", "side", "since", "small", "so", "social", "some", "south", "special", "state",
        "states", "still", "such", "sunday", "support", "take", "taken", "talks", "team", "tell",
        "than", "that", "the", "their", "them", "then", "there", "these", "they", "third", "this",
        "those", "three", "through", "thursday", "time", "to", "today", "told", "top", "toward",
        "trade", "tuesday", "two", "ukraine", "under", "united", "until", "up", "us", "use",
        "used", "very", "want", "war", "was", "water", "way", "we", "wednesday", "week", "well",
        "were", "west", "what", "when", "where", "whether", "which", "while", "who", "will",
        "with", "without", "woman", "women", "work", "working", "world", "would", "year", "years",
        "you", "young",
        "대통령", "정부", "국회", "한국", "미국", "북한", "중국", "일본", "국방", "기자", "뉴스",
        "장관", "서울", "경제", "대한", "위원장", "지난", "이번", "관련", "정책", "대표",
    }
)  # fmt: skip
_COMMON_HANGUL = "\n".join(w for w in _COMMON if is_hangul(w))
_COMMON_SORTED = sorted(w for w in _COMMON if not is_hangul(w))


@lru_cache(maxsize=1 << 16)
def word_key(word: str, prefix: bool) -> str:
    """The key that finds `word` in a page's view: Hangul inside runs, other words whole."""
    if is_hangul(word):
        return word
    return f" {word}" if prefix else f" {word} "


@lru_cache(maxsize=1 << 16)
def frequency(key: str) -> float:
    """A rough share of articles holding `key`: common words, short words and prefixes."""
    if not key.startswith(" "):  # Hangul: each syllable makes a word rarer
        if key in _COMMON_HANGUL:
            return 0.9
        return min(1.0, 0.2 * 0.25 ** (len(key) - 1))
    word = key.strip()
    prefix = not key.endswith(" ")
    at = bisect_left(_COMMON_SORTED, word)
    if at < len(_COMMON_SORTED) and (
        _COMMON_SORTED[at] == word or (prefix and _COMMON_SORTED[at].startswith(word))
    ):
        return 0.9
    share = 0.05 * 0.7 ** max(0, len(word) - 4)
    if prefix:  # a prefix stands for many words
        share = min(1.0, share * (1 + 20 * 0.5 ** max(0, len(word) - 2)))
    return share


def term_key(term: Term) -> str:
    """The key that tells `term` (`decide.exact_key`), else the key of its rarest word."""
    return exact_key(term) or _rarest_word(term.words, term.prefixes)


@lru_cache(maxsize=1 << 16)
def _rarest_word(words: tuple[str, ...], prefixes: tuple[bool, ...]) -> str:
    return min((word_key(w, p) for w, p in zip(words, prefixes, strict=True)), key=frequency)


def required(expr: Expr) -> list[frozenset[str]]:
    """Groups of keys such that, if `expr` matches, each group has a key in the page's view."""
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


@lru_cache(maxsize=1 << 16)
def _cost(group: frozenset[str]) -> float:
    return sum(frequency(key) for key in group)


def _rarest(groups: list[frozenset[str]]) -> frozenset[str] | None:
    if len(groups) < 2:
        return groups[0] if groups else None
    return min(groups, key=_cost)


def program_groups(
    program: Program,
    cost: Callable[[frozenset[int]], float],
    expr_groups: Callable[[Expr], list[frozenset[int]]],
) -> list[frozenset[int]]:
    """`required` read off a compiled rule, as key ids, without walking its expression again:
    a term's first key is its `term_key`, an OR's keys are one group, an AND's parts each
    give theirs. A NEAR gives a group per side, the keys of every term on it (the condition
    `decide.run` asks first); a NOT or a field scope is asked of `expr_groups`."""
    kind = type(program)
    if kind is int:
        return [frozenset((program,))]  # type: ignore[arg-type]
    if kind is frozenset:
        return [program]  # type: ignore[list-item]
    if kind is bool:
        return []
    what, part = program[0], program[1]  # type: ignore[index]
    if what == "term":
        return [frozenset((part if type(part) is int else part[0],))]
    if what == "near":
        left: frozenset[int] = program[2]  # type: ignore[index]
        right: frozenset[int] = program[3]  # type: ignore[index]
        return [left, right]
    if what == "expr":
        return expr_groups(part)
    if what == "all":
        return [group for child in part for group in program_groups(child, cost, expr_groups)]
    best = []  # "any": one of its parts
    for child in part:
        groups = program_groups(child, cost, expr_groups)
        if not groups:
            return []
        best.append(groups[0] if len(groups) == 1 else min(groups, key=cost))
    return [frozenset().union(*best)]


def _intern(program: Program, interned: dict[Any, Any]) -> Program:
    """Equal sets of keys stored once: rules share alias sets."""
    if type(program) is frozenset:
        return interned.setdefault(program, program)  # type: ignore[no-any-return]
    if type(program) is tuple and program[0] in ("all", "any"):
        return (program[0], tuple(_intern(p, interned) for p in program[1]))
    return program


@contextmanager
def _collector_paused() -> Iterator[None]:
    """While an index is built or unpickled: it makes many small objects that live as long as
    the index, which the cyclic collector would scan (with every rule) again and again."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


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
        with _collector_paused():
            self._build()

    def _build(self) -> None:
        self._evaluated: list[Rule] = []  # each rule with its parsed query
        keys: dict[str, int] = {}
        interned: dict[Any, Any] = {}  # many rules share sets of keys (alias sets)
        self._programs: list[Program] = []  # each rule compiled for `decide.run`
        filer = Filer()  # each rule filed under its rarest group's key ids, with its others

        # Each rule that is a term, an OR of terms, a NEAR of those or an AND of those
        # (`hits.plain_terms`) whose terms written alike are alike (`hits.one_term_per_text`)
        # keeps, per term in query order, the id of the key the view holds when the term is
        # there (its first key id): a matching rule's absent terms are then skipped by one
        # lookup each. Packed in an array: an int object each would weigh more than the rest
        # of the rule's index.
        self._keyed: list[array[int] | None] = [None] * len(self.rules)
        compiled = array("I")  # the first key id of each term compiled, in query order

        costs: list[float] = []  # each key's `frequency`, by id

        def key_id(key: str) -> int:
            found = keys.get(key)
            if found is None:
                found = keys[key] = len(keys)
                costs.append(frequency(key))
            return found

        def key_ids(
            term: Term,
        ) -> list[int]:  # the key that tells it, or every word's, rarest first
            key = exact_key(term)
            if key is not None:
                ids = [key_id(key)]
            else:
                words = zip(term.words, term.prefixes, strict=True)
                found = dict.fromkeys([term_key(term), *(word_key(w, p) for w, p in words)])
                ids = [key_id(key) for key in found]
            compiled.append(ids[0])
            return ids

        def cost(group: frozenset[int]) -> float:
            return sum(map(costs.__getitem__, group))

        def expr_groups(expr: Expr) -> list[frozenset[int]]:
            return [frozenset(map(key_id, group)) for group in required(expr)]

        for position, rule in enumerate(self.rules):
            expr = rule.expr
            if expr is None:
                expr = parse_query(rule.query)
                rule = replace(rule, expr=expr)
            self._evaluated.append(rule)
            program: Program = True  # not a parsed query: `match_rule` says why
            if isinstance(expr, EXPR_TYPES):
                every_field = set(FIELDS) <= set(rule.fields)
                del compiled[:]
                program = _intern(compile_rule(expr, every_field, key_ids), interned)
                plain = plain_terms(expr)
                if plain and len(plain) == len(compiled) and one_term_per_text(plain):
                    self._keyed[position] = compiled[:]  # compiled in query order
            self._programs.append(program)
            groups = program_groups(program, cost, expr_groups)
            filer.file([list(group) for group in sorted(set(groups), key=cost)])  # rarest first
        self._filing = filer.packed(len(keys))
        self._limited = any(rule.feeds is not None for rule in self.rules)
        # Two automata: the keys of words (each starting with a space) for the fields' words,
        # the Hangul ones for the Hangul runs only, where every Hangul word of an exact page
        # also stands; scanning the words for them too found most of them twice.
        self._automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        self._hangul = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for key, number in keys.items():
            (self._automaton if key.startswith(" ") else self._hangul).add_word(key, number)
        for automaton in (self._automaton, self._hangul):
            if len(automaton):
                automaton.make_automaton()
        self.keys = len(keys)

    def present(self, texts: Iterable[str]) -> set[int]:
        """The ids of the keys found in the words of `texts`."""
        return self._scan(Page.of({str(i): text for i, text in enumerate(texts)}))

    def _scan(self, page: Page) -> set[int]:
        """The ids of the keys in the page's view: its words' keys found in the fields' words,
        its Hangul keys in the Hangul runs (and, on a page that is not exact, where a
        normalized word may hold Hangul its runs lack, in the words too)."""
        fields = page.fields.values()
        found: set[int] = set()
        words = "\n".join([f.text for f in fields])
        if len(self._automaton):
            found.update(map(_second, self._automaton.iter(words)))
        if len(self._hangul):
            runs = "".join([f.hangul for f in fields])
            if runs:
                found.update(map(_second, self._hangul.iter(runs)))
            if not page.exact:
                found.update(map(_second, self._hangul.iter(words)))
        return found

    def candidates(self, present: set[int], feed: str | None = None) -> list[int]:
        """Positions of the rules that may match, given the keys present, in rule order: those
        filed under a present key that hold their other groups too (`Filing.candidates`, in C
        where it was built), and the rules without a required group, less the rules limited
        to feeds other than `feed`."""
        chosen = self._filing.candidates(present)
        if feed is None or not self._limited:
            return chosen
        rules = self.rules
        return [i for i in chosen if (feeds := rules[i].feeds) is None or feed in feeds]

    def match_fields(
        self, texts: Mapping[str, str], feed: str | None = None
    ) -> list[tuple[Rule, RuleMatch]]:
        """Every rule matching an article with these field texts (rules limited to feeds other
        than `feed` are skipped; None: no rule is), in rule order, as `match_rule` says.

        The candidates are decided from the article's words (`decide`); an AND of ORs of terms
        and NEARs of those is matched and given its hits by `hits.keyed_hits`, from its terms'
        keys and places; of the others, only the rules that match, and those it cannot tell,
        are evaluated by `match_rule`, for their hits (or, for a matching AND of ORs of terms
        whose terms written alike are not alike, by `decide.plain_hits`)."""
        page, decided, present, has = self._decided(texts, feed)
        doc: Document | None = None
        found = []
        for i, value in decided:
            if doc is None:
                exact = page.exact
                doc = PageDocument.of(texts, page, has) if exact else Document.from_fields(texts)
            rule = self._evaluated[i]
            expr = rule.expr
            keys = self._keyed[i]
            if keys is not None and isinstance(expr, EXPR_TYPES):  # an AND of ORs of terms
                fired = keyed_hits(expr, keys, present, doc, rule.fields)
                if fired is not None:
                    found.append((self.rules[i], RuleMatch(rule.name, *fired)))
                continue
            if value and isinstance(expr, EXPR_TYPES):  # it matches: its hits, without a walk
                hits = plain_hits(expr, doc, rule.fields)
                if hits is not None:
                    found.append((self.rules[i], rule_match(rule.name, expr, hits)))
                    continue
            match = match_rule(rule, doc)
            if match is not None:
                found.append((self.rules[i], match))
        return found

    def matching(self, texts: Mapping[str, str], feed: str | None = None) -> list[Rule]:
        """The rules `match_fields` returns, without their hits: what the index decides, with
        the reference evaluator asked only about rules the decision cannot tell."""
        page, decided, _, has = self._decided(texts, feed)
        doc: Document | None = None
        found = []
        for i, value in decided:
            if value is None:
                if doc is None:  # as `match_fields` asks it
                    doc = (
                        PageDocument.of(texts, page, has)
                        if page.exact
                        else Document.from_fields(texts)
                    )
                value = match_rule(self._evaluated[i], doc) is not None
            if value:
                found.append(self.rules[i])
        return found

    def _decided(
        self, texts: Mapping[str, str], feed: str | None
    ) -> tuple[Page, list[tuple[int, bool | None]], set[int], KeyPresent]:
        """The article's page, each candidate that may match, with True (it does) or None
        (ask the reference), the ids of the keys in its view, and whether a word may be in
        the article (from the scan)."""
        page = Page.of(texts)
        present = self._scan(page)
        in_words, in_runs = self._automaton.get, self._hangul.get

        def has(word: str, prefix: bool) -> bool:  # asked for each term of a matching rule
            key = word_key(word, prefix)
            key_id: int = (in_words if key[:1] == " " else in_runs)(key, -1)
            if key_id < 0:  # not indexed (a word of a phrase indexed whole): look for it
                return page.holds(key)
            return key_id in present

        chosen = self.candidates(present, feed)
        if not chosen:
            return page, [], present, has
        exact = page.exact and set(page.fields) <= set(FIELDS)  # what the programs assume
        decided: list[tuple[int, bool | None]] = []
        for i in chosen:
            value = None
            if exact and self._programs[i] is not True:
                value = run(self._programs[i], page, self._evaluated[i].fields, present, has)
            if value is not False:
                decided.append((i, value))
        return page, decided, present, has

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


# In a worker process: the last index received, kept until another generation arrives.
_received: list[RuleIndex] = []


def receive(shipped: Shipped) -> RuleIndex:
    """The index `shipped` stands for, in a worker process: the one kept from an earlier call
    of the same generation, else the one it carries; raise IndexMissing when it carries none."""
    if _received and _received[0].generation == shipped.generation:
        return _received[0]
    if shipped.payload is None:
        raise IndexMissing(shipped.generation)
    _received.clear()  # the old generation goes first: never two indexes at once
    with _collector_paused():
        index = pickle.loads(shipped.payload)
    if not isinstance(index, RuleIndex):
        raise TypeError(f"a shipped rule index unpickled to a {type(index).__name__}")
    _received.append(index)
    # The index stays until the next generation, and it is millions of objects for 10,000
    # rules: left to the cyclic collector, each full collection would scan them all (matching
    # is three times slower). Frozen, they are freed by reference counting when replaced.
    gc.freeze()
    return index


def index_of(rules: RuleIndex | Sequence[Rule] | Shipped) -> RuleIndex:
    """An index for any way of naming rules: an index, rules (compiled now), or a shipped one."""
    if isinstance(rules, RuleIndex):
        return rules
    if isinstance(rules, Shipped):
        return receive(rules)
    return RuleIndex(rules)
