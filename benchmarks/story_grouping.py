"""How many top-level posts one story makes, with and without grouping near-duplicates.

    .venv/bin/python benchmarks/story_grouping.py [-v] [--sweep] [--shingles] [--all]

Data, read in place from the shared corpus (NEWSWATCH_SHARED, default ../shared): the 163
Naver news articles of 28 December 2025 to 2 January 2026, among them 22 Korean reports of one
US Army squadron's deactivation at Camp Humphreys; the ids and the other stories of those
days, judged by hand, are in tests/data/story_cluster.json.

- Cluster: top-level posts for the 22 reports without grouping (the baseline, in the same run:
  each report has its own link, so each was its own post) and with grouping (the bot's
  decision, bot.story.same_story, over the reports in the order the crawler saw them).
- Same days: grouping over all 163 articles; a merge of two articles the labels call
  different stories is an unrelated merge. Precision: the share of merges that are right;
  recall: the share of the labelled same-story pairs threaded.
- `--shingles`: other ways to shingle Korean (eojeol pairs, syllable bigrams, 4-grams) beside
  the bot's syllable trigrams, each at the lowest threshold that merges nothing unrelated.
- `--all`: every corpus item (20,912, other years too) as if all had arrived in one window,
  the harshest case; merges between the 163 articles and any other item are unrelated by
  construction (years apart). Takes a few minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import html
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `tests.shared` importable
    sys.path.insert(0, str(REPO))

from bot.story import (  # noqa: E402
    SIGNATURE_SIZE,
    Recent,
    Signature,
    StoryPolicy,
    same_story,
    signature_of_text,
    story_score,
    story_text,
)
from bot.textnorm import is_hangul, words  # noqa: E402
from tests.shared import CORPUS  # noqa: E402

LABELS = REPO / "tests" / "data" / "story_cluster.json"
ITEMS = CORPUS / "items.jsonl"
NOW = datetime(2026, 1, 2, tzinfo=UTC)  # every item is inside the window: the harshest case


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    body: str  # as a feed would carry it: the article's text, else the item's summary
    arrived: str = ""  # when the crawler saw it (Naver articles): the order the bot gets them

    @property
    def same_days(self) -> bool:
        return bool(self.arrived)


def load_items(only_same_days: bool = False) -> list[Item]:
    """Corpus items; the Naver articles with their full text, in the order they arrived."""
    items = []
    with ITEMS.open(encoding="utf-8") as f:
        for line in f:
            data = json.loads(line)
            body, arrived = data.get("summary") or "", ""
            if data["source_kind"] == "article_markdown":
                text = (CORPUS / data["source_file"]).read_text(encoding="utf-8")
                found = re.search(r"^crawled_at: (.+)$", text, re.MULTILINE)
                arrived = found[1].strip() if found else "?"
                body = article_body(text) or body
            elif only_same_days:
                continue
            items.append(Item(data["id"], data["title"], body, arrived))
    same_days = sorted((i for i in items if i.same_days), key=lambda i: i.arrived)
    return same_days + [i for i in items if not i.same_days]


def article_body(text: str) -> str:
    """A Markdown article's text after its front matter and header, entities decoded."""
    parts = text.split("\n---\n")
    body = parts[2] if len(parts) > 2 else text
    body = re.sub(r"\*Crawled at:.*|\*Source:.*", "", body)
    return html.unescape(html.unescape(body)).strip()


@dataclass(frozen=True)
class Labels:
    cluster: tuple[str, ...]
    story: dict[str, str]  # item id -> story name (items not in it: a story of their own)

    def same(self, a: str, b: str) -> bool:
        return self.story.get(a, a) == self.story.get(b, b)


def load_labels() -> Labels:
    data = json.loads(LABELS.read_text(encoding="utf-8"))
    story = {i: "cluster" for i in [*data["cluster"], *data["related"]]}
    for name, ids in data["other_stories"].items():
        story.update({i: name for i in ids})
    return Labels(tuple(data["cluster"]), story)


@dataclass
class Grouping:
    story_of: dict[str, str]  # item id -> id of the item that started its story
    merged: list[tuple[str, str, float]]  # (item, the member it joined, score)

    @property
    def stories(self) -> int:
        return len(set(self.story_of.values()))


Sign = Callable[[str, str], Signature]


def bot_signature(title: str, body: str) -> Signature:
    """The signature the bot computes for an article with this headline and text."""
    return signature_of_text(story_text(title, body))


def group(items: Sequence[Item], policy: StoryPolicy, sign: Sign = bot_signature) -> Grouping:
    """The bot's decision, item after item, against every earlier item.

    The bot compares a new article with each recent one of its channel; over 20,912 items
    that is 2·10⁸ comparisons, so here an index of hash values finds, for each item, the
    earlier items sharing s of its hashes, and skips those whose score cannot reach the
    threshold even if all s were among the k smallest of both (Jaccard ≤ s / the larger
    sketch): an exact shortcut, the same merges as comparing with all.
    """
    index: dict[int, list[int]] = {}
    members: list[Recent] = []
    ids: list[str] = []
    story_of: dict[str, str] = {}
    merged = []
    for item in items:
        sig = sign(item.title, item.body)
        shared: Counter[int] = Counter()
        for h in sig.hashes:
            shared.update(index.get(h, ()))
        candidates = [
            members[k]
            for k, s in sorted(shared.items())
            if _bound(sig, members[k].signature, s) >= policy.threshold
        ]
        found = same_story(sig, candidates, NOW, policy)
        n = len(members)
        if found is None:
            story_of[item.id] = item.id
            members.append(Recent(n, n, sig, NOW))
        else:
            story_of[item.id] = ids[found.story_id]
            merged.append((item.id, ids[found.alert_id], story_score(sig, found.signature)))
            members.append(Recent(n, found.story_id, sig, NOW))
        ids.append(item.id)
        for h in sig.hashes:
            index.setdefault(h, []).append(n)
    return Grouping(story_of, merged)


def _bound(a: Signature, b: Signature, shared: int) -> float:
    """The highest score two sketches sharing `shared` hashes can get."""
    return story_score(a, b, min(shared / max(len(a.hashes), len(b.hashes), 1), 1.0))


@dataclass(frozen=True)
class Figures:
    baseline: int  # top-level posts for the cluster without grouping
    posts: int  # with grouping
    merges: int  # over the same days
    unrelated: int  # merges of two different stories
    precision: float
    recall: float


def measure(
    items: Sequence[Item], labels: Labels, policy: StoryPolicy, sign: Sign = bot_signature
) -> Figures:
    """The cluster's posts with and without grouping, and the merges over the same days."""
    same_days = [i for i in items if i.same_days]
    wanted = set(labels.cluster)
    cluster = [i for i in same_days if i.id in wanted]
    baseline = len({i.id for i in cluster})  # each report has its own link: its own post
    posts = group(cluster, policy, sign).stories
    grouping = group(same_days, policy, sign)
    unrelated = sum(1 for a, b, _ in grouping.merged if not labels.same(a, b))
    by_story = Counter(labels.story.get(i.id, i.id) for i in same_days)
    possible = sum(n - 1 for n in by_story.values())
    right = len(grouping.merged) - unrelated
    return Figures(
        baseline,
        posts,
        len(grouping.merged),
        unrelated,
        right / max(len(grouping.merged), 1),
        right / max(possible, 1),
    )


def report(items: Sequence[Item], labels: Labels, policy: StoryPolicy, verbose: bool) -> Figures:
    started = time.perf_counter()
    figures = measure(items, labels, policy)
    elapsed = time.perf_counter() - started
    print(
        f"threshold {policy.threshold:.2f}: the {len(labels.cluster)} "
        f"reports make {figures.baseline} top-level posts without grouping, {figures.posts} "
        f"with it ({figures.baseline / max(figures.posts, 1):.1f}x fewer); over the "
        f"{sum(1 for i in items if i.same_days)} articles of those days {figures.merges} "
        f"merges, {figures.unrelated} unrelated (precision {figures.precision:.2f}, recall "
        f"{figures.recall:.2f}); {elapsed:.1f} s"
    )
    if verbose:
        by_id = {i.id: i for i in items}
        for a, b, score in group([i for i in items if i.same_days], policy).merged:
            mark = "  " if labels.same(a, b) else "✗ "
            print(f"  {mark}{score:.2f} {by_id[a].title[:50]!r} → {by_id[b].title[:50]!r}")
    return figures


def harshest(items: Sequence[Item], labels: Labels, policy: StoryPolicy) -> None:
    """Every corpus item in one window: merges that join the same days to other years."""
    started = time.perf_counter()
    grouping = group(items, policy)
    same_days = {i.id for i in items if i.same_days}
    across = [(a, b) for a, b, _ in grouping.merged if (a in same_days) != (b in same_days)]
    inside = sum(1 for a, b, _ in grouping.merged if a in same_days and b in same_days)
    print(
        f"all {len(items)} items in one window: {len(grouping.merged)} merges; {inside} among "
        f"the same days, {len(across)} joining one of them to an item of another year "
        f"(unrelated), {len(grouping.merged) - inside - len(across)} among other items (not "
        f"judged); {time.perf_counter() - started:.0f} s"
    )
    by_id = {i.id: i for i in items}
    for a, b in across:
        print(f"  ✗ {by_id[a].title[:50]!r} → {by_id[b].title[:50]!r}")


def _sketch(shingles: set[str]) -> Signature:
    hashes = {
        int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big") for s in shingles
    }
    return Signature(tuple(heapq.nsmallest(SIGNATURE_SIZE, hashes)), len(hashes))


def hangul_grams(n: int) -> Sign:
    """Hangul shingled by syllable n-grams (spaces left out), other words in pairs."""

    def sign(title: str, body: str) -> Signature:
        tokens = words(story_text(title, body))
        run = "".join(t for t in tokens if is_hangul(t))
        other = [t for t in tokens if not is_hangul(t)]
        found = {run[i : i + n] for i in range(max(len(run) - n + 1, 0))}
        found.update(" ".join(other[i : i + 2]) for i in range(max(len(other) - 1, 0)))
        return _sketch(found)

    return sign


def eojeol_pairs(title: str, body: str) -> Signature:
    """Every word in pairs, a Hangul eojeol (particles included) being one word."""
    tokens = words(story_text(title, body))
    return _sketch({" ".join(tokens[i : i + 2]) for i in range(max(len(tokens) - 1, 0))})


def compare_shingles(items: Sequence[Item], labels: Labels) -> None:
    """For each way of shingling Korean: the lowest threshold (0.30 to 0.70) at which no
    unrelated articles merge, and the posts and recall it gives."""
    variants: list[tuple[str, Sign]] = [
        ("eojeol pairs", eojeol_pairs),
        ("syllable bigrams", hangul_grams(2)),
        ("syllable trigrams (the bot)", bot_signature),
        ("syllable 4-grams", hangul_grams(4)),
    ]
    for name, sign in variants:
        for step in range(30, 75, 5):
            policy = StoryPolicy(threshold=step / 100)
            figures = measure(items, labels, policy, sign)
            if figures.unrelated == 0:
                print(
                    f"{name}: no unrelated merge from threshold {policy.threshold:.2f}, where "
                    f"the 22 reports make {figures.posts} posts (recall {figures.recall:.2f})"
                )
                break
        else:
            print(f"{name}: unrelated merges at every threshold up to 0.70")


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="list the merges")
    parser.add_argument("--sweep", action="store_true", help="try several thresholds")
    parser.add_argument("--all", action="store_true", help="also every corpus item at once")
    parser.add_argument("--shingles", action="store_true", help="compare ways to shingle Hangul")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not ITEMS.exists():
        print(f"corpus not found: {ITEMS} (set NEWSWATCH_SHARED)")
        return 1
    items = load_items(only_same_days=not args.all)
    labels = load_labels()
    policy = StoryPolicy()
    thresholds = [0.3, 0.4, 0.45, 0.5, 0.6, 0.7] if args.sweep else [policy.threshold]
    for threshold in thresholds:
        report(items, labels, replace(policy, threshold=threshold), args.verbose)
    if args.shingles:
        compare_shingles(items, labels)
    if args.all:
        harshest(items, labels, policy)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
