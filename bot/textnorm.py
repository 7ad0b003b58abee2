"""Text normalization and tokenization shared by the query parser and the matcher."""

from __future__ import annotations

import re
import unicodedata
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from itertools import accumulate

# Hangul syllables, jamo (conjoining, compatibility, extended) and halfwidth jamo.
_HANGUL = "\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uffa0-\uffdc"
_IS_HANGUL = re.compile(f"[{_HANGUL}]+")
# CJK ideographs (Hanja in Korean headlines: 美, 北, 韓美). Each one is a token of its own.
_HAN = "\u3005\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# Letters that read as apostrophes (U+02BB, U+02BC) separate words like U+0027 and U+2019 do.
_NOT_OTHER = rf"\W_{_HANGUL}{_HAN}\u02bb\u02bc"
# A letter or digit of any other script (Latin, digits, Cyrillic, kana, ...).
_OTHER = rf"[^{_NOT_OTHER}]"
_LATIN = "[A-Za-zＡ-Ｚａ-ｚ]"  # ASCII letters, also full width
# Combining marks may continue a word (NFD "café"); NFKC folds them into the letter.
_MARK = "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"

# 1: a number with digit-group commas, 28,500 or ２８，５００ (never 1,5 or 2020,2021).
_NUMBER_WORD = rf"(?=\d)(?<!{_OTHER})(\d{{1,3}}(?:[,，]\d{{3}})+)(?!{_OTHER})"
# 2: a dotted acronym of single letters: U.S. U.S e.g. (the trailing dot is kept in the span).
_ACRONYM_WORD = (
    rf"(?={_LATIN}[.．])(?<!{_OTHER})(?<![.．])((?:{_LATIN}[.．])+{_LATIN}(?!{_OTHER})[.．]?)"
)
# 3: a Hangul run is one word, particles included: 주한미군은.
_HANGUL_WORD = rf"([{_HANGUL}]+)"
# 4: one Han ideograph.
_HAN_WORD = rf"([{_HAN}])"
# 5: a run of letters and digits of any other script.
_OTHER_WORD = rf"({_OTHER}+(?:{_MARK}+{_OTHER}*)*)"
_TOKEN = re.compile("|".join((_NUMBER_WORD, _ACRONYM_WORD, _HANGUL_WORD, _HAN_WORD, _OTHER_WORD)))
_NUMBER, _ACRONYM, _HANGUL_RUN = 1, 2, 3
_DROP = {_NUMBER: str.maketrans("", "", ",，"), _ACRONYM: str.maketrans("", "", ".．")}

# Quote marks that open or close a phrase in a query, whichever way a word processor curled them.
QUOTES = frozenset('"“”„‟«»＂')
# Hyphen, dash and minus variants; in article text all of them simply separate words.
DASHES = frozenset("-‐‑‒–—―−﹣－")


@dataclass(frozen=True, slots=True)
class Token:
    """One normalized word; `start:end` is its span in the ORIGINAL text."""

    text: str
    start: int
    end: int
    hangul: bool
    cased: str = field(default="", compare=False)  # NFKC without case folding, for `{US}`


def normalize(text: str) -> str:
    """NFKC plus case folding: the form every word is compared in."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKC", text).casefold()


def tokenize(text: str) -> tuple[Token, ...]:
    """Split `text` into normalized words, each keeping the offsets of its original characters."""
    tokens: list[Token] = []
    append, make, nfkc = tokens.append, Token, unicodedata.normalize  # looked up once
    for found in _TOKEN.finditer(text):
        kind = found.lastindex or 0
        raw = found[kind]
        if kind in _DROP:
            raw = raw.translate(_DROP[kind])
        if raw.isascii():
            cased, word = raw, raw.lower()
        else:
            cased = nfkc("NFKC", raw)
            word = cased.casefold()
        if word:
            start, end = found.span()
            append(make(word, start, end, kind == _HANGUL_RUN, cased))
    return tuple(tokens)


def words(text: str) -> tuple[str, ...]:
    """The normalized words of `text`, without offsets."""
    return tuple(token.text for token in tokenize(text))


def is_hangul(word: str) -> bool:
    """True when `word` is written in Hangul (such a word then matches inside longer words)."""
    return _IS_HANGUL.fullmatch(word) is not None


def cased_words(text: str) -> tuple[str, ...]:
    """The words of `text` normalized but not case-folded (for exact-case terms)."""
    return tuple(token.cased for token in tokenize(text))


def squeezable(gap: str) -> bool:
    """Whether the characters between two Hangul words only space them (`주한 미군`)."""
    if gap.isspace():  # the usual case, decided without a loop
        return True
    return bool(gap) and all(c.isspace() or unicodedata.category(c) == "Cf" for c in gap)


_SEPARATORS = str.maketrans("", "", ",，.．")  # only numbers and acronyms can hold these
# The tokenizer's pattern without its groups, so that it has one group of ours.
_WORD = re.compile(re.sub(r"(?<!\\)\((?!\?)", "(?:", _TOKEN.pattern))
# For `split`, the same words found faster, with one group so that `split` keeps them: a
# lookahead lets the engine skip the gaps (every word starts with a letter or digit, or a Hangul
# or Han character), then shortcuts for the two usual words, each tried only where it finds what
# the full pattern would: two or more ASCII letters not followed by a letter, digit or combining
# mark (so not an acronym, a number or a longer word), and a Hangul run.
_ENDS = f"(?!{_OTHER}|{_MARK})"
_WORD_AROUND = re.compile(
    f"(?=[^\\W_]|[{_HANGUL}{_HAN}])([A-Za-z]{{2,}}{_ENDS}|[{_HANGUL}]+|{_WORD.pattern})"
)


def split_words(text: str) -> list[str]:
    """`text` around the words `tokenize` finds, as found: [gap, word, gap, …, word, gap]
    (one regex pass in C, no token object per word)."""
    return _WORD_AROUND.split(text)


def raw_words(parts: list[str]) -> str:
    """The words of `split_words`, not yet normalized (numbers and acronyms without their
    commas and dots), joined by NUL."""
    joined = "\x00".join(parts[1::2])
    if "." in joined:  # str.replace is much faster than str.translate
        joined = joined.replace(".", "")
    if "," in joined:
        joined = joined.replace(",", "")
    if not joined.isascii() and ("，" in joined or "．" in joined):
        joined = joined.translate(_SEPARATORS)
    return joined


def word_spans(parts: list[str]) -> list[tuple[int, int]]:
    """Where each word of `split_words` stands in the text (`tokenize`'s start and end)."""
    ends = list(accumulate(map(len, parts)))
    return list(zip(ends[0::2], ends[1::2], strict=False))


_NOT_HANGUL_OR_NUL = re.compile(f"[^{_HANGUL}\x00]")


@cache
def format_characters() -> str:
    """The invisible format characters (category Cf), which may stand inside a Hangul run."""
    return "".join(c for c in map(chr, range(0x110000)) if unicodedata.category(c) == "Cf")


@cache
def _runs() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Hangul words that only spaces (or invisible format characters) separate, and those."""
    gap = f"[\\s{re.escape(format_characters())}]+"
    # the lookahead lets the regex engine skip to a Hangul letter (four times faster)
    return re.compile(f"(?=[{_HANGUL}])[{_HANGUL}]+(?:{gap}[{_HANGUL}]+)*"), re.compile(gap)


def hangul_runs(text: str) -> str:
    """The Hangul of `text` as `match` searches it: words only spaced apart (`squeezable`)
    joined without their spaces, `주한 미군` → `주한미군`, each such run ended by NUL; not
    normalized."""
    if text.isascii():
        return ""
    runs, gaps = _runs()
    found = runs.findall(text)
    if not found:
        return ""
    joined = "\x00".join(found).replace(" ", "")  # most gaps are one space
    if _NOT_HANGUL_OR_NUL.search(joined) is not None:
        joined = gaps.sub("", joined)
    return joined + "\x00"


Scanned = tuple[str, bytes, str, str | None]
Scan = Callable[[str], Scanned]


def regex_scan(text: str) -> Scanned:
    """`scan_words` by the regexes above: `raw_words`, the words' spans, `hangul_runs` (and
    no normalized words: the caller normalizes them)."""
    parts = split_words(text)
    ends = list(accumulate(map(len, parts)))
    return raw_words(parts), array("I", ends[:-1]).tobytes(), hangul_runs(text), None


def _c_scan() -> Scan | None:
    """The word pass in C (bot/_words.c), or None when it was not built (no C compiler)."""
    try:
        from bot import _words
    except ImportError:
        return None

    def first_scan(text: str) -> Scanned:
        global _scan
        _words.format_characters(format_characters())  # made once, when first needed
        _scan = _words.scan
        return _scan(text)

    return first_scan


_scan: Scan = _c_scan() or regex_scan
WORD_PASS = "regex" if _scan is regex_scan else "C"


def scan_words(text: str) -> Scanned:
    """A field's words in one pass, in C when it was built (else `regex_scan`, the same): the
    words as written NUL-joined (`raw_words`), each word's start and end in `text` (start,
    end, start, end, … as the bytes of an `array("I")`), the Hangul runs (`hangul_runs`),
    and, from C when every word is ASCII, Hangul syllables or CJK unified ideographs (which
    `normalize` leaves as they are, ASCII letters aside), the words normalized between single
    spaces (`" w1 w2 … "`); else None."""
    return _scan(text)
