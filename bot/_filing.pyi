"""The rule index's candidate step in C (bot/_filing.c): what `filing.python_candidates` returns."""

from array import array
from collections.abc import Iterable

def candidates(
    present: Iterable[int],
    filed_at: array[int],
    filed: array[int],
    records: array[int],
    always: array[int],
    /,
) -> list[int]: ...
