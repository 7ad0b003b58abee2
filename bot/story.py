"""One story, one thread: MinHash signatures of an article's text and the near-duplicate test."""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.models import Article
from bot.textnorm import is_hangul, words

SIGNATURE_SIZE = 128  # hash values kept per article (bottom-k MinHash)
LEAD_CHARS = 800  # of the body: copies of a report share its lead, not its tail
SHINGLE_WORDS = 2  # Latin script: overlapping runs of this many words
HANGUL_GRAM = 3  # Hangul: overlapping runs of this many syllables, spaces left out
WINDOW = timedelta(hours=72)
MIN_SHINGLES = 40  # a shorter text is scored as if it had this many
MAX_RECENT = 2000  # a channel's newest stories compared with a new alert, at most
THRESHOLD = 0.5  # estimated share of the smaller text's shingles found in the other


EDIT_MODES = ("ignore", "thread")


@dataclass(frozen=True)
class StoryPolicy:
    """`stories:` in config.yaml: whether near-duplicates thread, and how near, how recent."""

    enabled: bool = True
    window: timedelta = WINDOW
    threshold: float = THRESHOLD
    edits: str = "ignore"  # or "thread": a substantive edit at the source is told in the thread


@dataclass(frozen=True)
class Signature:
    """A bottom-k MinHash sketch: the smallest `SIGNATURE_SIZE` shingle hashes, ascending, and
    how many distinct shingles the text had."""

    hashes: tuple[int, ...]
    size: int

    def encode(self) -> str:
        """As kept in the store: the shingle count, then each hash in hex."""
        return " ".join([str(self.size), *(f"{h:x}" for h in self.hashes)])

    @classmethod
    def decode(cls, text: str) -> Signature:
        size, *hashes = text.split()
        return cls(tuple(int(h, 16) for h in hashes), int(size))


@dataclass(frozen=True)
class StoryGrouping:
    """What the store needs to group a poll's new alerts: the policy and each new article's
    signature, by its feed key."""

    policy: StoryPolicy
    signatures: Mapping[str, Signature]


@dataclass(frozen=True)
class Recent:
    """A story member the store remembers: its alert, the story it belongs to, its signature."""

    alert_id: int
    story_id: int
    signature: Signature
    at: datetime


def shingles(text: str) -> set[str]:
    """The text's shingles: pairs of Latin-script words, and syllable trigrams across Hangul.

    Korean rewrites of one report keep the stems and change particles and spacing
    (`비행대대가`, `비행대대는`; `운용중단`, `운용 중단`), so Hangul is shingled by syllables
    with the spaces left out; other scripts by overlapping word pairs. Hanja count as words.
    """
    out: set[str] = set()
    latin: list[str] = []
    hangul: list[str] = []
    for word in words(text):
        if is_hangul(word):
            hangul.append(word)
            continue
        latin.append(word)
    run = "".join(hangul)
    out.update(run[i : i + HANGUL_GRAM] for i in range(max(len(run) - HANGUL_GRAM + 1, 0)))
    if len(latin) < SHINGLE_WORDS:
        out.update(latin)
    else:
        out.update(
            " ".join(latin[i : i + SHINGLE_WORDS]) for i in range(len(latin) - SHINGLE_WORDS + 1)
        )
    return out


def _hash(shingle: str) -> int:
    return int.from_bytes(hashlib.blake2b(shingle.encode(), digest_size=8).digest(), "big")


def signature_of_text(text: str) -> Signature:
    """The MinHash sketch of a text (one hash per shingle; the k smallest are kept)."""
    hashes = {_hash(s) for s in shingles(text)}
    return Signature(tuple(heapq.nsmallest(SIGNATURE_SIZE, hashes)), len(hashes))


def story_text(title: str, body: str) -> str:
    """What copies of one report share: the headline and the lead (the body's first
    `LEAD_CHARS` characters). A long article and a short copy then have comparable sizes, and
    a wire story's tail of unrelated boilerplate does not count."""
    return f"{title}\n{body[:LEAD_CHARS]}"


def signature(article: Article) -> Signature:
    """The article's signature over its title and the longer of its summary and content."""
    body = article.content if len(article.content) > len(article.summary) else article.summary
    return signature_of_text(story_text(article.title, body))


def jaccard(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity: of the k smallest hashes of both texts, the share found in
    both sketches (each of those k is in a sketch exactly when it is in that text)."""
    union = heapq.nsmallest(SIGNATURE_SIZE, set(a.hashes) | set(b.hashes))
    if not union:
        return 0.0
    mine, theirs = set(a.hashes), set(b.hashes)
    return sum(1 for h in union if h in mine and h in theirs) / len(union)


def story_score(a: Signature, b: Signature, j: float | None = None) -> float:
    """How much of the smaller text the other one shares, estimated (0 to 1).

    From the Jaccard estimate J and the two sizes: |A∩B| = J·(|A|+|B|)/(1+J), divided by the
    smaller size, so a short copy (a lead paragraph, a caption) of a long report scores high
    where Jaccard would not. The smaller size counts as at least `MIN_SHINGLES`, so a bare
    headline is never "contained" in every article that uses its words.
    """
    j = jaccard(a, b) if j is None else j
    if j <= 0.0:
        return 0.0
    common = j * (a.size + b.size) / (1.0 + j)
    return min(common / max(min(a.size, b.size), MIN_SHINGLES), 1.0)


def same_story(
    sig: Signature, recent: Iterable[Recent], now: datetime, policy: StoryPolicy
) -> Recent | None:
    """The recent member `sig` is a near-duplicate of (the most similar one within the window,
    at or above the threshold), or None: a story of its own."""
    if not policy.enabled or not sig.hashes:
        return None
    best: tuple[float, int] | None = None
    found: Recent | None = None
    for member in recent:
        if member.at < now - policy.window:
            continue
        score = story_score(sig, member.signature)
        if score >= policy.threshold and (best is None or (score, -member.alert_id) > best):
            best, found = (score, -member.alert_id), member
    return found


def story_sources(sources: Sequence[str], head: str) -> int:
    """How many other sources reported a story: distinct reply sources besides the head's."""
    return len({s for s in sources if s and s != head})


def substantive_edit(
    old_title: str, old: Signature | None, new_title: str, new: Signature, threshold: float
) -> bool:
    """Whether an article edited at its source changed enough to say so: its headline (spacing
    aside) is another, or its text is no longer a near-duplicate of what was alerted."""
    if " ".join(old_title.split()) != " ".join(new_title.split()):
        return True
    if old is None or not old.hashes or not new.hashes:
        return False
    return story_score(old, new) < threshold
