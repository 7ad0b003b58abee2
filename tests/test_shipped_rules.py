"""The two shipped rules: they parse, catch the sample, and keep their measured quality."""

from __future__ import annotations

from collections import Counter

import pytest

from benchmarks.rule_quality import (
    ITEMS,
    RULES_DIR,
    Score,
    document,
    fires,
    load_labels,
    load_rules,
    read_items,
    score,
)
from bot.match import Document
from bot.models import FIELDS, Rule
from tests.shared import SAMPLE_ARTICLE, need

USFK = "usfk-troop-levels"
OPCON = "opcon-transfer"

# Measured on tests/data/rule_labels.json (see benchmarks/rule_quality.py); a rule edit that
# loses a labelled hit or gains a labelled false alarm fails here.
THRESHOLDS = {  # rule: (precision, recall)
    USFK: (1.00, 0.96),  # 28 of 29 relevant found, no false alarm in 149 labels
    OPCON: (0.87, 1.00),  # 7 of 7 relevant found, 1 false alarm in 84 labels
}


@pytest.fixture(scope="module")
def rules() -> dict[str, Rule]:
    return load_rules()


@pytest.fixture(scope="module")
def scores(rules: dict[str, Rule]) -> dict[str, Score]:
    labels = load_labels()
    wanted = {label.item for label in labels}
    docs = {item["id"]: document(item) for item in read_items(need(ITEMS)) if item["id"] in wanted}
    return score(rules, labels, docs)


def doc(text: str) -> Document:
    return Document.from_fields({"title": text})


def test_each_rule_file_names_itself_and_reads_all_fields(rules: dict[str, Rule]) -> None:
    assert sorted(rules) == sorted(p.stem for p in RULES_DIR.glob("*.yaml")) == [OPCON, USFK]
    for rule in rules.values():
        assert set(rule.fields) <= set(FIELDS)


@pytest.mark.parametrize("name", [USFK, OPCON])
def test_sample_article_matches_rule(rules: dict[str, Rule], name: str) -> None:
    text = need(SAMPLE_ARTICLE).read_text(encoding="utf-8")
    assert fires(rules[name], Document.from_fields({"content": text}))


def test_labels_mix_relevant_near_misses_and_both_languages() -> None:
    labels = load_labels()
    per_rule = Counter(label.rule for label in labels)
    assert per_rule[USFK] >= 60
    assert per_rule[OPCON] >= 60
    for name in (USFK, OPCON):
        verdicts = Counter(label.relevant for label in labels if label.rule == name)
        assert verdicts[True] >= 5
        assert verdicts[False] >= 50
    assert all(len(label.item) == 12 and label.reason for label in labels)


def test_every_labelled_item_is_in_the_corpus(scores: dict[str, Score]) -> None:
    assert all(not result.missing for result in scores.values())


@pytest.mark.parametrize("name", [USFK, OPCON])
def test_rule_keeps_its_measured_precision_and_recall(scores: dict[str, Score], name: str) -> None:
    precision, recall = THRESHOLDS[name]
    result = scores[name]
    assert result.precision >= precision, f"false alarms: {result.false_positives}"
    assert result.recall >= recall, f"missed: {result.false_negatives}"


# Typical wording, written for these tests (not quoted from any article).
@pytest.mark.parametrize(
    "text",
    [
        "Pentagon weighs withdrawing about 4,500 troops from South Korea",
        "Washington reviews the size of its military presence in South Korea",
        "USFK says the brigade rotation will not change overall troop levels",
        "The US keeps 28,500 soldiers in the country to deter North Korea",
        "US officials said U.S. troop levels in Japan and South Korea would not change",
        "미 국방부, 주한미군 4500명 철수 검토",
        "트럼프 행정부, 주한미군 감축 카드 만지작",
        "한국 주둔 미군 2만8500명 유지 명시",
        "주한 미군의 역할 조정과 전략적 유연성 논의",
        "Some troops currently stationed in S. Korea may move to Guam",
        "주한미군의 규모 유지 방침",
    ],
)
def test_usfk_rule_catches_common_wordings(rules: dict[str, Rule], text: str) -> None:
    assert fires(rules[USFK], doc(text))


@pytest.mark.parametrize(
    "text",
    [
        "North Korea keeps about 1.2 million troops under arms",
        "South Korean troops will shrink as conscription numbers fall",
        "The US will reduce the number of its troops in Japan and Germany",
        "Chinese troops in Korea fought for three years",
        "The company will cut 28,500 jobs in Korea",
        "주일미군 감축 논의 시작",
        "한미군사훈련 축소 요구 집회",
        "국방부, 상비병력 감축 계획 발표",
        "주한미군 아파치 헬기, 대규모 병력 공중강습 훈련",
        "South Korean troops will be cut as South Korea's birth rate falls",
        "주한미군 철수 요구 기자회견 열려",
    ],
)
def test_usfk_rule_ignores_near_misses(rules: dict[str, Rule], text: str) -> None:
    assert not fires(rules[USFK], doc(text))


@pytest.mark.parametrize(
    "text",
    [
        "Seoul aims to regain wartime operational control before 2030",
        "The allies discussed the OPCON transfer at their annual security meeting",
        "Korea seeks the transfer of operational control of its troops from the US-led command",
        "정부, 전작권 전환 로드맵 마련",
        "전시 작전통제권 환수 시점 논란",
        "미래연합사 완전운용능력 검증 착수",
        "전시 작전 통제권 전환 논의",
    ],
)
def test_opcon_rule_catches_common_wordings(rules: dict[str, Rule], text: str) -> None:
    assert fires(rules[OPCON], doc(text))


@pytest.mark.parametrize(
    "text",
    [
        "The border agency lacks operational control of the southern border",
        "Korea Airports Corporation will transfer operational control of the new terminal",
        "Seoul police said the raid was an operation under their control",
        "The firm regained operational control of its Korean subsidiary",
        "해병대 1사단 작전통제권, 육군에서 해병대로 복귀",
        "Ukrainian forces regained control of the village",
    ],
)
def test_opcon_rule_ignores_near_misses(rules: dict[str, Rule], text: str) -> None:
    assert not fires(rules[OPCON], doc(text))
