"""Summaries: sentence splitting, choice of sentences, bold marks and caps."""

from __future__ import annotations

import re

import pytest

from bot.models import Article, Hit, RuleMatch
from bot.summarize import MARK_END, MARK_START, split_sentences, summarize
from tests.factories import article as make_article
from tests.shared import SAMPLE_ARTICLE, need


def article(content: str = "", summary: str = "", title: str = "A title") -> Article:
    return make_article(content=content, summary=summary, title=title)


def match(art: Article, *terms: str, field: str = "content", rule: str = "rule") -> RuleMatch:
    """A RuleMatch with a Hit for every case-insensitive occurrence of each term in `field`."""
    text = art.field_text(field)
    hits = tuple(
        Hit(term, field, m.start(), m.end())
        for term in terms
        for m in re.finditer(re.escape(term), text, re.IGNORECASE)
    )
    return RuleMatch(rule=rule, terms=terms, hits=hits)


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def plain(sentence: str) -> str:
    return sentence.replace(MARK_START, "").replace(MARK_END, "")


def bolded(sentence: str) -> list[str]:
    return re.findall(f"{MARK_START}(.*?){MARK_END}", sentence)


# -- splitting


def test_abbreviations_initials_and_decimals_do_not_end_a_sentence() -> None:
    text = (
        "The U.S. envoy met Mr. Park and Gen. Lee on Jan. 3 in Seoul. "
        "Prices rose 3.5 percent, said J. Smith at 5 p.m. on Friday. Exports fell."
    )
    assert sentences(text) == [
        "The U.S. envoy met Mr. Park and Gen. Lee on Jan. 3 in Seoul.",
        "Prices rose 3.5 percent, said J. Smith at 5 p.m. on Friday.",
        "Exports fell.",
    ]


def test_question_and_exclamation_marks_end_sentences_with_their_closing_quotes() -> None:
    text = 'Is it over? "We won!" Then came the vote. "Why?" she asked.'
    assert sentences(text) == [
        "Is it over?",
        '"We won!"',
        "Then came the vote.",
        '"Why?" she asked.',
    ]


def test_korean_sentence_endings_split_and_quoted_speech_stays_inside() -> None:
    text = (
        '정부는 "협력을 강화한다."라고 밝혔다. 회의는 언제 열리나요? '
        "금리는 3.5% 올랐다.그러나 환율은 내렸다"
    )
    assert sentences(text) == [
        '정부는 "협력을 강화한다."라고 밝혔다.',
        "회의는 언제 열리나요?",
        "금리는 3.5% 올랐다.",
        "그러나 환율은 내렸다",
    ]


def test_ideographic_full_stop_splits_without_a_space() -> None:
    assert sentences("会議が開かれた。結果は未定だ。") == ["会議が開かれた。", "結果は未定だ。"]


def test_line_breaks_end_sentences_and_spans_are_trimmed() -> None:
    text = "  Headline without a stop\n\n  First paragraph here.  \nSecond one.\n"
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == [
        "Headline without a stop",
        "First paragraph here.",
        "Second one.",
    ]
    assert all(not text[s].isspace() and not text[e - 1].isspace() for s, e in spans)


def test_empty_and_blank_text_has_no_sentences() -> None:
    assert split_sentences("") == []
    assert split_sentences(" \n\t ") == []


# -- choosing


BODY = (
    "Markets opened quietly on Monday. "
    "Analysts expect the central bank to hold rates. "
    "Samsung shares rose after the chip forecast. "
    "Weather was mild across the region. "
    "Samsung and SK Hynix both gained on chip demand. "
    "Traders went home early."
)


def test_sentences_with_the_most_distinct_terms_are_preferred() -> None:
    art = article(content=BODY)
    result = summarize(art, [match(art, "Samsung", "chip", "SK Hynix")], max_sentences=1)
    assert [plain(s) for s in result] == ["Samsung and SK Hynix both gained on chip demand."]


def test_summary_is_in_document_order_and_fills_with_the_earliest_sentences() -> None:
    art = article(content=BODY)
    result = summarize(art, [match(art, "SK Hynix")])
    assert [plain(s) for s in result] == [
        "Markets opened quietly on Monday.",
        "Analysts expect the central bank to hold rates.",
        "Samsung and SK Hynix both gained on chip demand.",
    ]


def test_without_hits_the_lead_sentences_are_used_and_never_more_than_asked() -> None:
    art = article(content=BODY)
    assert len(summarize(art, [], max_sentences=3)) == 3
    assert [plain(s) for s in summarize(art, [], max_sentences=1)] == [
        "Markets opened quietly on Monday."
    ]
    assert len(summarize(art, [], max_sentences=0)) == 1  # at least one


def test_matched_terms_are_marked_exactly_where_the_hits_are() -> None:
    art = article(content=BODY)
    result = summarize(art, [match(art, "Samsung"), match(art, "chip", rule="other")])
    assert bolded(result[1]) == ["Samsung", "chip"]
    assert bolded(result[2]) == ["Samsung", "chip"]
    b, e = MARK_START, MARK_END
    assert result[1] == f"{b}Samsung{e} shares rose after the {b}chip{e} forecast."


def test_overlapping_and_adjacent_hits_become_one_mark() -> None:
    art = article(content="The North Korea talks resumed today in Geneva.")
    rm = match(art, "North Korea", "Korea talks", "North")
    (sentence,) = summarize(art, [rm])
    assert bolded(sentence) == ["North Korea talks"]


def test_korean_terms_are_marked_inside_words() -> None:
    art = article(content="날씨가 맑았다. 삼성전자가 새 반도체 공장을 발표했다. 시장은 조용했다.")
    (sentence,) = summarize(art, [match(art, "삼성", "반도체")], max_sentences=1)
    assert (
        sentence
        == f"{MARK_START}삼성{MARK_END}전자가 새 {MARK_START}반도체{MARK_END} 공장을 발표했다."
    )


def test_long_sentences_are_cut_at_a_word_with_an_ellipsis_and_marks_stay_balanced() -> None:
    words = " ".join(f"word{i}" for i in range(200))
    art = article(content=f"{words} Samsung tail.")
    at = words.index("word7 ")
    rm = RuleMatch("r", ("word7",), (Hit("word7", "content", at, at + 5),))
    (sentence,) = summarize(art, [rm], max_chars=120)
    assert len(sentence) - sentence.count(MARK_START) * 2 <= 120
    assert sentence.endswith("…")
    assert plain(sentence)[:-1].rstrip() == plain(sentence)[:-1]  # no space before "…"
    assert words.startswith(plain(sentence)[:-1])
    assert words[len(plain(sentence)) - 1] == " "  # the cut fell between words
    assert bolded(sentence) == ["word7"]
    # a cut inside a marked word still closes the mark
    art2 = article(content="x" * 500)
    (cut,) = summarize(art2, [RuleMatch("r", ("x",), (Hit("x", "content", 0, 500),))], max_chars=50)
    assert cut.count(MARK_START) == cut.count(MARK_END) == 1 and cut.endswith(MARK_END + "…")


def test_a_hit_beyond_the_cap_is_kept_by_starting_the_excerpt_near_it() -> None:
    words = " ".join(f"w{i}" for i in range(300))
    art = article(content=words + ".")
    at = words.index(" w250 ") + 1
    rm = RuleMatch("r", ("w250",), (Hit("w250", "content", at, at + 4),))
    (sentence,) = summarize(art, [rm], max_chars=80)
    assert sentence.startswith("…w2") and sentence.endswith("…")
    assert len(plain(sentence)) <= 80
    assert bolded(sentence) == ["w250"]
    assert plain(sentence)[1:-1] in words


def test_body_is_content_when_longer_else_summary_else_title() -> None:
    long_content = article(content="Content one. Content two.", summary="Summary.")
    assert plain(summarize(long_content, [])[0]) == "Content one."
    short_content = article(content="Short.", summary="The summary is longer here.")
    assert plain(summarize(short_content, [])[0]) == "The summary is longer here."
    title_only = article(title="Only a title")
    assert summarize(title_only, []) == ("Only a title",)
    assert summarize(article(title=""), []) == ()


def test_hits_of_other_fields_or_out_of_range_are_ignored() -> None:
    art = article(content="Alpha beta gamma. Delta epsilon.")
    stray = RuleMatch("r", ("x",), (Hit("x", "title", 0, 5), Hit("x", "content", 30, 99)))
    result = summarize(art, [stray])
    assert all(MARK_START not in s and MARK_END not in s for s in result)


def test_stray_mark_characters_in_text_are_removed() -> None:
    art = article(content=f"Bad {MARK_START}input{MARK_END} here\x00 and\x1b there.")
    (sentence,) = summarize(art, [])
    assert sentence == "Bad input here and there."


def test_whitespace_inside_a_sentence_collapses() -> None:
    art = article(content="Spread   over\t\tmany     spaces.")
    assert summarize(art, []) == ("Spread over many spaces.",)


def test_real_article_summary_keeps_its_own_sentences_and_marks_the_terms() -> None:
    text = need(SAMPLE_ARTICLE).read_text(encoding="utf-8")
    art = article(content=text, summary="")
    matches = [match(art, "deterrence", "Hegseth"), match(art, "alliance", rule="alliance")]
    result = summarize(art, matches)
    assert 1 <= len(result) <= 3
    flat = " ".join(text.split())
    for sentence in result:
        body = plain(sentence).removesuffix("…")
        assert body in flat  # taken verbatim from the article (whitespace collapsed)
        assert len(plain(sentence)) <= 300
    marked = {t.lower() for s in result for t in bolded(s)}
    assert {"deterrence", "hegseth"} <= marked
    # "U.S. Secretary of Defense" is one sentence, not split after "U.S."
    assert not any(plain(s).endswith("U.S.") for s in result)


@pytest.mark.parametrize("cap", [5, 10, 40])
def test_every_sentence_respects_the_cap(cap: int) -> None:
    art = article(
        content="Supercalifragilistic expialidocious words everywhere today. Another one."
    )
    for sentence in summarize(art, [match(art, "words")], max_chars=cap):
        assert len(plain(sentence)) <= cap


def test_a_megabyte_of_text_with_many_hits_is_summarized_quickly() -> None:
    import time

    body = "Filler words here and there. " * 30_000 + " ".join(["chip"] * 50_000) + " end."
    art = article(content=body)
    rm = match(art, "chip")
    started = time.perf_counter()
    result = summarize(art, [rm])
    assert time.perf_counter() - started < 2.0  # a guard, not a benchmark
    assert any(MARK_START + "chip" in s for s in result)
    assert all(len(plain(s)) <= 300 for s in result)
