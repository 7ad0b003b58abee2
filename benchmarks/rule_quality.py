"""Precision and recall of the shipped rules on the hand labels, and their matches in the corpus.

    .venv/bin/python benchmarks/rule_quality.py [-v]

Labels: tests/data/rule_labels.json (item ids, judged on title and summary). Items are read in
place from the shared corpus (NEWSWATCH_SHARED, default ../shared). `-v` lists the mistakes.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `tests.shared` importable
    sys.path.insert(0, str(REPO))

from bot.match import Document, match_rule  # noqa: E402
from bot.models import Rule  # noqa: E402
from bot.rules import load_library  # noqa: E402
from tests.shared import CORPUS  # noqa: E402

RULES_DIR = REPO / "rules"
ALIASES_DIR = REPO / "aliases"
LABELS = REPO / "tests" / "data" / "rule_labels.json"
ITEMS = CORPUS / "items.jsonl"


@dataclass(frozen=True)
class Label:
    item: str
    rule: str
    relevant: bool
    reason: str


@dataclass(frozen=True)
class Score:
    rule: str
    false_positives: tuple[str, ...] = ()
    false_negatives: tuple[str, ...] = ()
    true_positives: int = 0
    true_negatives: int = 0
    missing: tuple[str, ...] = field(default=())  # labelled ids absent from the corpus

    @property
    def labelled(self) -> int:
        return (
            self.true_positives
            + self.true_negatives
            + len(self.false_positives)
            + len(self.false_negatives)
        )

    @property
    def precision(self) -> float:
        found = self.true_positives + len(self.false_positives)
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        relevant = self.true_positives + len(self.false_negatives)
        return self.true_positives / relevant if relevant else 1.0


def load_rules(directory: Path = RULES_DIR, aliases: Path = ALIASES_DIR) -> dict[str, Rule]:
    """Every rule file with the alias sets, through the bot's own loader; a broken file stops
    the measurement."""
    ruleset = load_library(directory, aliases, "#news-alerts")
    if ruleset.errors:
        raise SystemExit("\n".join(str(error) for error in ruleset.errors))
    return {rule.name: rule for rule in ruleset.rules}


def fires(rule: Rule, doc: Document) -> bool:
    return match_rule(rule, doc) is not None


def load_labels(path: Path = LABELS) -> list[Label]:
    rows = json.loads(path.read_text(encoding="utf-8"))["labels"]
    return [Label(r["id"], r["rule"], r["relevant"], r["reason"]) for r in rows]


def read_items(path: Path = ITEMS) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def document(item: Mapping[str, str]) -> Document:
    """Corpus items carry a title and a summary (the feed's content, HTML stripped)."""
    return Document.from_fields({"title": item["title"], "summary": item["summary"]})


def score(
    rules: Mapping[str, Rule], labels: list[Label], docs: Mapping[str, Document]
) -> dict[str, Score]:
    """Confusion counts of each rule on its labels."""
    tally: dict[str, dict[str, list[str]]] = {
        name: {"tp": [], "tn": [], "fp": [], "fn": [], "missing": []} for name in rules
    }
    for label in labels:
        counts = tally[label.rule]
        doc = docs.get(label.item)
        if doc is None:
            counts["missing"].append(label.item)
            continue
        fired = fires(rules[label.rule], doc)
        kind = ("tp" if label.relevant else "fp") if fired else ("fn" if label.relevant else "tn")
        counts[kind].append(label.item)
    return {
        name: Score(
            name,
            tuple(c["fp"]),
            tuple(c["fn"]),
            len(c["tp"]),
            len(c["tn"]),
            tuple(c["missing"]),
        )
        for name, c in tally.items()
    }


def main(argv: list[str]) -> int:
    if not ITEMS.exists():
        print(f"corpus not found: {ITEMS} (set NEWSWATCH_SHARED)", file=sys.stderr)
        return 2
    rules = load_rules()
    labels = load_labels()
    started = time.perf_counter()
    items = {item["id"]: item for item in read_items()}
    docs = {item_id: document(item) for item_id, item in items.items()}
    indexed = time.perf_counter()
    corpus_matches = {
        name: sum(fires(rule, d) for d in docs.values()) for name, rule in rules.items()
    }
    matched = time.perf_counter()
    reasons = {(label.rule, label.item): label.reason for label in labels}

    print(
        f"{'rule':<20} {'labels':>6} {'relevant':>8} {'TP':>4} {'FP':>4} {'FN':>4} "
        f"{'precision':>9} {'recall':>6} {'corpus matches':>15}"
    )
    for name, result in score(rules, labels, docs).items():
        relevant = result.true_positives + len(result.false_negatives)
        print(
            f"{name:<20} {result.labelled:>6} {relevant:>8} {result.true_positives:>4} "
            f"{len(result.false_positives):>4} {len(result.false_negatives):>4} "
            f"{result.precision:>9.3f} {result.recall:>6.3f} "
            f"{corpus_matches[name]:>7} / {len(docs)}"
        )
        if "-v" in argv:
            for kind, ids in (("FP", result.false_positives), ("FN", result.false_negatives)):
                for item_id in ids:
                    title = items[item_id]["title"][:70]
                    print(f"    {kind} {item_id} {title} -- {reasons[(name, item_id)]}")
        if result.missing:
            print(f"    {len(result.missing)} labelled ids are not in the corpus")
    print(
        f"tokenized {len(docs)} items in {indexed - started:.2f} s; "
        f"matched {len(rules)} rules in {matched - indexed:.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
