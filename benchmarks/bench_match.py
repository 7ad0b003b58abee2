"""Matching ~3 KB articles against 100, 1,000 and 10,000 rules: the rule index and the naive way.

    .venv/bin/python benchmarks/bench_match.py [--sizes 100,1000,10000] [--articles 2000]

Each rule set is written as rule files (one YAML file per rule) into a temporary folder and
loaded with the real loader. A rule is 2-3 AND-ed groups of 3-8 OR-ed terms drawn from a
vocabulary of news words and names: single words, phrases, wildcards, some Korean, and in some
rules one pair of groups joined by NEAR/n instead of AND. Articles are ~3 KB: real news items
from ../shared/corpus/items.jsonl (read in place) put together until each holds 3 KB, or, when
the corpus is absent, filler sentences with vocabulary words. One run prints which word pass
finds the articles' words (C, bot/_words.c, or the regexes where it is not built) and, per
rule set: the time to load the files, the time to build the index from the parsed rules, the index's
memory, and articles/s and MB/s for the index and for the naive baseline (one compiled regular
expression per term per rule, every one run on every article, on a sample), and their ratio.
The index is timed twice, per article from its field texts: "decide" is which rules match
(`RuleIndex.matching`: scan, candidates, their decision from the article's words, and the
reference evaluator for the few it cannot tell), "decide + hits" is that plus the hits of each
matching rule (`RuleIndex.matches`, what `work.alerts_for` asks for every article; the summary
built from the hits is not included). The naive baseline only tells whether each term occurs.
Everything runs in this one process, on one core; rates are per CPU second of this process
(time.process_time), so that other work on the machine does not count, and so is the build
time; the load time is wall time (it reads the files).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import pickle
import random
import re
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bot` importable
    sys.path.insert(0, str(REPO))

from bot.expr import Term, terms  # noqa: E402
from bot.filing import CANDIDATE_STEP  # noqa: E402
from bot.index import RuleIndex, receive  # noqa: E402
from bot.models import FIELDS, Article, Rule  # noqa: E402
from bot.rules import load_rules  # noqa: E402
from bot.textnorm import WORD_PASS, hangul_runs, is_hangul  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus" / "items.jsonl"
ARTICLE_BYTES = 3000

WORDS = [  # topical words and names
    "alliance", "ambassador", "annexation", "armistice", "artillery", "ballistic", "battalion",
    "blockade", "bomber", "brigade", "ceasefire", "coalition", "commando", "conscription", "coup",
    "cyberattack", "deployment", "deterrence", "disarmament", "drone", "embargo", "envoy",
    "escalation", "frigate", "garrison", "hypersonic", "icbm", "incursion", "infantry",
    "insurgency", "interceptor", "invasion", "legislature", "marines", "militia", "mobilization",
    "negotiation", "occupation", "peacekeeping", "pentagon", "plutonium", "reconnaissance",
    "referendum", "refugees", "reservists", "retaliation", "sanctions", "satellite", "sovereignty",
    "submarine", "surveillance", "tariff", "territorial", "treaty", "troops", "uranium", "usfk",
    "veto", "warship", "warhead", "withdrawal", "pyongyang", "taipei", "manila", "hanoi",
    "canberra", "brussels", "nato", "asean", "ishiba", "marcos", "hyundai", "semiconductor",
    "chipmaker", "recession", "earthquake", "typhoon", "wildfire", "drought", "pandemic",
    "vaccine", "outbreak",
]  # fmt: skip

PHRASES = [
    "South Korea", "North Korea", "United States", "Korean Peninsula", "joint exercise",
    "defense minister", "foreign minister", "national security", "security council",
    "nuclear test", "missile launch", "trade deal", "supply chain", "human rights",
    "prime minister", "armed forces", "special forces", "air force", "coast guard",
    "Forces Korea", "operational control", "troop levels", "cost sharing", "free trade",
    "climate change", "central bank", "interest rates", "state media", "war games",
]  # fmt: skip

PREFIXES = [
    "troop*", "missil*", "sanction*", "negotiat*", "deploy*", "withdr*", "nucle*", "militar*",
    "diplomat*", "warship*", "drone*", "tariff*", "election*", "protest*", "invad*", "alli*",
]  # fmt: skip

KOREAN = [
    "주한미군", "감축", "철수", "전작권", "한미동맹", "핵잠수함", "미사일", "국방부", "합참",
    "방위비", "연합훈련", "핵실험", "외교부", "대북제재", "병력", "주둔", "관세", "반도체",
]  # fmt: skip

FILLER = (
    "Officials said on Tuesday that talks would continue next week. ",
    "The report cited people familiar with the matter. ",
    "Markets were little changed in early trading. ",
    "관계자는 화요일 회의가 다음 주에도 이어질 것이라고 밝혔다. ",
)


# Drawn from the corpus when it is there: words neither rare nor common (names, places,
# topics), pairs of them that occur side by side, and Korean words.
NAMES: list[str] = []
PAIRS: list[str] = []
HANGUL: list[str] = []


def read_corpus() -> list[dict[str, str]]:
    if not CORPUS.exists():
        return []
    with CORPUS.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def corpus_vocabulary(items: list[dict[str, str]]) -> None:
    """Words found in 3 to 20 of the corpus items (of about 21,000), pairs in 2 to 10: the
    names, places and topics a client's rule is about, each in well under 1 % of articles."""
    words: dict[str, int] = {}
    pairs: dict[str, int] = {}
    hangul: dict[str, int] = {}
    for item in items:
        text = f"{item.get('title') or ''} {item.get('summary') or ''}"
        latin = re.findall(r"[A-Za-z]{4,}", text.lower())
        for word in set(latin):
            words[word] = words.get(word, 0) + 1
        for pair in {f"{a} {b}" for a, b in itertools.pairwise(latin)}:
            pairs[pair] = pairs.get(pair, 0) + 1
        for word in set(re.findall(r"[가-힣]{2,4}", text)):
            hangul[word] = hangul.get(word, 0) + 1
    NAMES[:] = sorted(w for w, n in words.items() if 3 <= n <= 20)
    PAIRS[:] = sorted(p for p, n in pairs.items() if 2 <= n <= 10)
    HANGUL[:] = sorted(w for w, n in hangul.items() if 3 <= n <= 20)


def vocabulary_term(rng: random.Random) -> str:
    """Mostly corpus words, pairs as phrases, wildcards and Korean; some topical words."""
    roll = rng.random()
    if NAMES and roll < 0.9:
        if roll < 0.55:
            return rng.choice(NAMES)
        if roll < 0.67:
            return '"' + rng.choice(PAIRS) + '"'
        if roll < 0.78:
            word = rng.choice([w for w in rng.sample(NAMES, 20) if len(w) >= 7] or NAMES)
            return word[: len(word) - 2] + "*"
        return rng.choice(HANGUL)
    roll = rng.random()
    if roll < 0.55:
        return rng.choice(WORDS)
    if roll < 0.72:
        return '"' + rng.choice(PHRASES) + '"'
    if roll < 0.85:
        return rng.choice(PREFIXES)
    return rng.choice(KOREAN)


def group(rng: random.Random) -> str:
    chosen = list(dict.fromkeys(vocabulary_term(rng) for _ in range(rng.randint(3, 8))))
    return "(" + " OR ".join(chosen) + ")"


def query(rng: random.Random) -> str:
    groups = [group(rng) for _ in range(rng.randint(2, 3))]
    if rng.random() < 0.2:  # one pair of groups must stand close together
        first, second = groups[0], groups[1]
        groups[:2] = [f"{first} NEAR/{rng.randint(3, 10)} {second}"]
    return " AND ".join(groups)


def write_rules(folder: Path, count: int, rng: random.Random) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        text = f"name: rule-{i:05d}\nchannel: '#bench-{i % 50}'\nquery: >-\n  {query(rng)}\n"
        (folder / f"rule-{i:05d}.yaml").write_text(text, encoding="utf-8")


def corpus_articles(items: list[dict[str, str]], count: int, rng: random.Random) -> list[Article]:
    articles = []
    for n in range(count):
        parts, size, title = [], 0, ""
        while size < ARTICLE_BYTES:
            if items:
                item = rng.choice(items)
                title = title or item.get("title") or ""
                text = item.get("summary") or item.get("title") or ""
            else:
                words = [vocabulary_term(rng).strip('"*') for _ in range(3)]
                text = rng.choice(FILLER) + " ".join(words) + ". "
            parts.append(text)
            size += len(text.encode())
        content = " ".join(parts)
        articles.append(
            Article("bench", f"k{n}", f"c{n}", title or "Untitled", None, "", content, None, "b")
        )
    return articles


def size_mb(articles: list[Article]) -> float:
    return sum(len(a.field_text(f).encode()) for a in articles for f in FIELDS) / 1e6


def naive_patterns(rule: Rule) -> list[re.Pattern[str]]:
    """One regular expression per term, as a straightforward matcher would write it."""
    assert not isinstance(rule.expr, str)
    found = []
    for term in terms(rule.expr):  # type: ignore[arg-type]
        assert isinstance(term, Term)
        parts = []
        for word, prefix in zip(term.words, term.prefixes, strict=True):
            body = re.escape(word)
            if is_hangul(word):
                parts.append(body)
            else:
                parts.append(rf"\b{body}\w*" if prefix else rf"\b{body}\b")
        found.append(re.compile(r"\W+".join(parts), re.IGNORECASE))
    return found


def naive_rate(rules: list[Rule], articles: list[Article]) -> float:
    """Articles per second when every term of every rule is searched in every article."""
    patterns = [p for rule in rules for p in naive_patterns(rule)]
    started = time.process_time()
    for article in articles:
        text = "\n".join(article.field_text(f) for f in FIELDS)
        for pattern in patterns:
            pattern.search(text)
    return len(articles) / (time.process_time() - started)


def index_memory(rules: list[Rule]) -> int:
    """Bytes the index holds beyond the parsed rules, its automaton included."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = RuleIndex(rules)
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    automaton = sum(a.get_stats()["total_size"] for a in (index._automaton, index._hangul))
    return traced + int(automaton)


def bench(count: int, articles: list[Article], naive_sample: int, rng: random.Random) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "rules"
        write_rules(folder, count, rng)
        started = time.perf_counter()
        ruleset = load_rules(folder, "#bench")
        load_s = time.perf_counter() - started
    assert not ruleset.errors, ruleset.errors[:3]
    rules = list(ruleset.rules)
    gc.collect()
    started = time.process_time()
    index = RuleIndex(rules)
    build_s = time.process_time() - started
    memory = index_memory(rules)
    started = time.process_time()
    every_rule = pickle.dumps(tuple(rules))  # what each poll sent its worker before the index
    pickle.loads(every_rule)
    every_rule_s = time.process_time() - started
    shipped = index.ship(with_index=True)
    started = time.process_time()
    index = receive(shipped)  # as a worker process holds it
    receive_s = time.process_time() - started
    per_poll = len(pickle.dumps(index.ship()))

    mb = size_mb(articles)
    hangul_runs("주한 미군")  # the format characters, found once per process, before the timing
    decided = 0
    started = time.process_time()
    for article in articles:  # which rules match: `RuleIndex.matching`
        texts = {name: article.field_text(name) for name in FIELDS}
        decided += len(index.matching(texts, article.feed))
    decide = len(articles) / (time.process_time() - started)
    matched = 0
    started = time.process_time()
    for article in articles:  # and their hits: what `work.alerts_for` asks for an article
        matched += len(index.matches(article))
    engine = len(articles) / (time.process_time() - started)
    assert decided == matched
    candidates = asked = 0
    for article in articles:
        texts = {name: article.field_text(name) for name in FIELDS}
        candidates += len(index.candidates(index.present(texts.values()), article.feed))
        asked += sum(value is None for _, value in index._decided(texts, article.feed)[1])
    sample = articles[:naive_sample]
    naive = naive_rate(rules, sample)
    per_article = mb / len(articles)
    n = len(articles)
    print(
        f"{count:>6} rules: load the files {load_s:5.2f} s, build the index {build_s:4.2f} s, "
        f"index memory {memory / count / 1024:4.2f} KiB per rule ({index.keys} keys), "
        f"sent to a worker {len(shipped.payload or b'') / 1e6:.1f} MB ({receive_s:.2f} s)\n"
        f"        decide {decide:7.0f} articles/s {decide * per_article:6.2f} MB/s | "
        f"decide + hits {engine:7.0f} articles/s {engine * per_article:6.2f} MB/s | "
        f"naive {naive:6.2f} articles/s {naive * per_article:6.3f} MB/s ({len(sample)} articles) "
        f"| decide/naive {decide / naive:5.0f}x, decide + hits/naive {engine / naive:5.0f}x\n"
        f"        per article: {candidates / n:.1f} candidates decided, {asked / n:.2f} of them "
        f"by the reference evaluator, {matched / n:.2f} matched | per poll, sent to the worker: "
        f"{per_poll} bytes (all the rules, as before: {len(every_rule) / 1e6:.1f} MB, "
        f"{every_rule_s:.2f} s to pickle and unpickle)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    items = read_corpus()
    corpus_vocabulary(items)
    articles = corpus_articles(items, args.articles, rng)
    source = "corpus items" if CORPUS.exists() else "synthetic text"
    print(
        f"{len(articles)} articles of ~{size_mb(articles) / len(articles) * 1e3:.1f} KB "
        f"({source}); vocabulary: {len(NAMES)} words, {len(PAIRS)} pairs, "
        f"{len(HANGUL)} Korean words from the corpus and {len(WORDS) + len(PHRASES)} of ours; "
        f"one process, one core; the article's words found by the word pass in {WORD_PASS}, "
        f"the candidates by the candidate step in {CANDIDATE_STEP}"
    )
    for count in (int(s) for s in args.sizes.split(",")):
        naive_sample = max(3, min(len(articles), 30_000 // count))
        bench(count, articles, naive_sample, rng)


if __name__ == "__main__":
    main()
