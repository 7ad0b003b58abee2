"""Where the rule index files its rules, packed in flat arrays, and the candidates it yields.

A rule is filed under each key id of its rarest required group (a group of keys of which an
article must hold one for the rule to match); it keeps its other groups, rarest first, to be
checked against the article's keys; a rule without a required group is always a candidate.
`Filing` holds this as arrays of unsigned ints (`array("I")`, compressed-sparse-row style: an
offset per key id into one array listing the rules filed under each key, each rule as the
offset of its record, which holds its position and its other groups in one place), a few
bytes per entry where dicts of tuples and sets took tens, and it pickles as bytes. Its
`candidates` runs in C (`bot/_filing.c`) where the extension was built, else in Python
(`python_candidates`, the reference the C is tested against).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Collection, Iterable, Set
from dataclasses import dataclass, field

Candidates = Callable[
    [Iterable[int], "array[int]", "array[int]", "array[int]", "array[int]"], list[int]
]


def _c_candidates() -> Candidates | None:
    """The candidate step in C (bot/_filing.c), or None when it was not built (no C compiler)."""
    try:
        from bot import _filing
    except ImportError:
        return None
    return _filing.candidates


@dataclass(frozen=True)
class Filing:
    """The rules filed by key id (see the module's docstring): `filed_at[k]:filed_at[k + 1]` is
    the slice of `filed` holding the rules filed under key id k, each as the offset of its
    record in `records`: its position, the number of its other groups, then each of them as
    its length and its key ids, rarest first; `always` the rules without a required group."""

    filed_at: array[int]
    filed: array[int]
    records: array[int]
    always: array[int]

    @property
    def keys(self) -> int:
        """The number of key ids (rules may be filed under any below it)."""
        return len(self.filed_at) - 1

    def candidates(self, present: Set[int]) -> list[int]:
        """The rules filed under a key id in `present` whose other groups each hold one, and
        those always candidates: their positions, in rule order."""
        return CANDIDATES(present, self.filed_at, self.filed, self.records, self.always)


@dataclass
class Filer:
    """Files rules one after the other, in rule order (`file`), then packs them (`packed`)."""

    _filed: dict[int, list[int]] = field(default_factory=dict)  # key id → records' offsets
    _records: array[int] = field(default_factory=lambda: array("I"))
    _always: array[int] = field(default_factory=lambda: array("I"))
    _rules: int = 0

    def file(self, groups: Collection[Collection[int]]) -> None:
        """The next rule, by its required groups' key ids, rarest group first (none: it is
        always a candidate); a group must hold at least one key id."""
        rule = self._rules
        self._rules += 1
        if not groups:
            self._always.append(rule)
            return
        if not all(groups):
            raise ValueError(f"rule {rule}: an empty required group")
        records = self._records
        first, *others = groups
        for key in first:
            self._filed.setdefault(key, []).append(len(records))
        records.extend((rule, len(others)))
        for group in others:
            records.append(len(group))
            records.extend(group)

    def packed(self, keys: int) -> Filing:
        """The rules filed so far, for key ids below `keys`."""
        filed_at, filed = array("I", [0]), array("I")
        lists = self._filed
        for key in range(keys):
            rules = lists.get(key)
            if rules is not None:
                filed.extend(rules)
            filed_at.append(len(filed))
        if len(filed) != sum(map(len, lists.values())):
            raise ValueError(f"a rule filed under a key id not below {keys}")
        return Filing(filed_at, filed, self._records, self._always)


def python_candidates(
    present: Iterable[int],
    filed_at: array[int],
    filed: array[int],
    records: array[int],
    always: array[int],
) -> list[int]:
    """`Filing.candidates` in Python: what the C extension returns, from the same arrays."""
    keys = len(filed_at) - 1
    present = present if isinstance(present, Set) else frozenset(present)
    found = set().union(*[filed[filed_at[k] : filed_at[k + 1]] for k in present if 0 <= k < keys])
    chosen = set(always)
    isdisjoint = present.isdisjoint
    for at in found:
        rule, others = records[at], records[at + 1]
        at += 2
        while others:  # its other groups, rarest first
            stop = at + 1 + records[at]
            if isdisjoint(records[at + 1 : stop]):
                break
            at, others = stop, others - 1
        else:
            chosen.add(rule)
    return sorted(chosen)


CANDIDATES: Candidates = _c_candidates() or python_candidates
CANDIDATE_STEP = "python" if CANDIDATES is python_candidates else "C"
