"""Page-quality signals: text signals on crafted texts, the confidence summary, each suspect reason raised
by a page built to raise it (and by no other), and language identification over 21 languages."""

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from benchmarks.multilingual_text import SCRIPTS, SENTENCES, page_text
from pipeline.config import QualityConfig
from pipeline.stages.quality import (
    REASONS,
    ConfidenceSummary,
    assess_page,
    confidence_summary,
    dominant_script,
    repeated_share,
    suspect_reasons,
    text_signals,
)

CLEAN_EN = " ".join(SENTENCES["en"])
CONFIDENT = [math.log(0.95)] * 40


def test_empty_text_has_neutral_signals():
    s = text_signals("")
    assert (s.characters, s.letter_share, s.digit_share, s.repeated_ngram_share) == (0, 0.0, 0.0, 0.0)
    assert (s.language, s.language_probability, s.script) == ("", 0.0, "")


def test_shares_count_non_space_characters():
    s = text_signals("abc 123 !!")
    assert s.characters == 8
    assert s.letter_share == pytest.approx(3 / 8) and s.digit_share == pytest.approx(3 / 8)


def test_grounding_special_tokens_and_html_are_not_page_text():
    raw = "<|ref|>title<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\n# Hello <b>there</b> &amp; 42<|end|>"
    s = text_signals(raw)
    assert s.characters == len("#Hellothere&42")
    assert s.letter_share == pytest.approx(10 / 14) and s.digit_share == pytest.approx(2 / 14)


def test_combining_marks_count_as_letters():
    s = text_signals("कृपया निर्देशों")  # Devanagari vowel signs and viramas are marks, not symbols
    assert s.letter_share == 1.0 and s.script == "Devanagari"


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("Привет мир hello", "Cyrillic"),
        ("ＡＢＣ full width", "Latin"),
        ("汉字汉字汉字", "Han"),
        ("ひらがなと漢字", "Japanese"),
        ("ｶﾀｶﾅ", "Japanese"),
        ("12 345 !!", ""),
        ("ℓ ℝ ℎ ℑ", ""),  # letter-like symbols of formulas belong to no script
    ],
)
def test_dominant_script(text, script):
    assert text_signals(text).script == script


def test_a_little_kana_in_han_text_stays_han():
    assert dominant_script({"Han": 95, "Kana": 5}) == "Han"
    assert dominant_script({"Han": 60, "Kana": 40, "Latin": 70}) == "Japanese"
    assert dominant_script({}) == ""


@given(
    base=st.lists(st.text(min_size=1, max_size=3), min_size=5, max_size=30, unique=True),
    copies=st.integers(1, 6),
)
def test_a_text_copied_k_times_repeats_k_minus_1_of_k(base, copies):
    tokens = base * copies
    expected = (copies - 1) / copies if len(tokens) >= 10 else 0.0
    assert repeated_share(tokens, ngram=5) == pytest.approx(expected)


def test_repeated_share_counts_overlapping_copies_once():
    assert repeated_share(list("abcdabcd"), ngram=2) == pytest.approx(4 / 8)
    assert repeated_share(list("aaaaaaaa"), ngram=2) == pytest.approx(7 / 8)  # all but the first token
    assert repeated_share(CLEAN_EN.split(), ngram=5) == 0.0


def test_unspaced_scripts_repeat_by_character():
    once = SENTENCES["zh"][3]
    assert text_signals(once).repeated_ngram_share == 0.0
    assert text_signals(once * 3).repeated_ngram_share == pytest.approx(2 / 3, abs=0.02)


def test_confidence_summary_of_known_log_probabilities():
    probs = [0.5, 0.05, 1.0, 0.2]
    c = confidence_summary([math.log(p) for p in probs])
    assert c.tokens == 4
    assert c.mean_logprob == pytest.approx(sum(math.log(p) for p in probs) / 4)
    assert c.min_logprob == pytest.approx(math.log(0.05))
    assert c.low_probability_share == 0.25  # only 0.05 is under p = 0.1
    assert (
        confidence_summary([math.log(p) for p in probs], low_token_probability=0.3).low_probability_share
        == 0.5
    )


def test_no_tokens_give_a_neutral_summary():
    assert confidence_summary([]) == ConfidenceSummary(0, 0.0, 0.0, 0.0)


def _garbage_letters(seed: int, words: int = 60) -> str:
    rng = random.Random(seed)
    return " ".join(
        "".join(rng.choice("qwrtzpsdfghjklxcvbnm") for _ in range(rng.randint(3, 8))) for _ in range(words)
    )


# (reason, text, token log-probs, finish reason): each page is the clean page changed in one way.
PAGES = [
    ("repetition", CLEAN_EN, CONFIDENT, "repetition"),
    ("hit_token_cap", CLEAN_EN, CONFIDENT, "length"),
    ("few_characters", "Page 3", CONFIDENT, "eos"),
    ("mostly_symbols", CLEAN_EN + "\n" + "| --- | --- | --- |\n" * 25, CONFIDENT, "eos"),
    ("repeated_ngrams", "\n\n".join([CLEAN_EN] * 3), CONFIDENT, "eos"),
    ("unknown_language", _garbage_letters(seed=1), CONFIDENT, "eos"),
    ("low_confidence", CLEAN_EN, [math.log(0.3)] * 40, "eos"),  # mean log-prob -1.2
    ("low_confidence", CLEAN_EN, [math.log(0.99)] * 28 + [math.log(0.09)] * 12, "eos"),  # 30% under p=0.1
]


def test_a_clean_page_raises_nothing():
    assert assess_page(CLEAN_EN, CONFIDENT, "eos").reasons == ()
    assert assess_page(CLEAN_EN, [], "").reasons == ()  # a text-layer page: no tokens, no finish reason


@pytest.mark.parametrize(("reason", "text", "logprobs", "finish"), PAGES, ids=[p[0] for p in PAGES])
def test_each_reason_is_raised_by_its_page_alone(reason, text, logprobs, finish):
    assert assess_page(text, logprobs, finish).reasons == (reason,)


def test_every_reason_has_a_page():
    assert {p[0] for p in PAGES} == set(REASONS)


def test_thresholds_come_from_the_config():
    looping = text_signals("\n\n".join([CLEAN_EN] * 3))
    confident = confidence_summary(CONFIDENT)
    assert suspect_reasons(looping, confident, "eos", QualityConfig()) == ["repeated_ngrams"]
    assert suspect_reasons(looping, confident, "eos", QualityConfig(max_repeated_ngram_share=0.9)) == []
    short = text_signals("Page 3")
    assert suspect_reasons(short, confident, "eos", QualityConfig(min_characters=5)) == []


def test_config_is_frozen_and_strict():
    with pytest.raises(ValidationError):
        QualityConfig(min_charcters=5)
    with pytest.raises(ValidationError):
        QualityConfig(min_alphanumeric_share=1.5)
    with pytest.raises(ValidationError):
        QualityConfig().min_characters = 3


def test_columns_are_the_schemas_plain_values():
    from pipeline.schema import PAGES_SCHEMA

    columns = assess_page("\n\n".join([CLEAN_EN] * 3), [math.log(0.5)] * 4, "length").columns()
    assert columns["suspect"] and columns["suspect_reasons"] == "hit_token_cap,repeated_ngrams"
    assert columns["language"] == "en" and columns["script"] == "Latin"
    assert columns["scored_tokens"] == 4 and columns["mean_logprob"] == pytest.approx(math.log(0.5))
    assert all(isinstance(v, int | float | str) for v in columns.values())
    assert set(columns) <= set(PAGES_SCHEMA.names)
    clean = assess_page(CLEAN_EN, CONFIDENT, "eos").columns()
    assert (clean["suspect"], clean["suspect_reasons"]) == (False, "")


@pytest.mark.parametrize(
    "text", ["", "Hi", "Bonjour", "数据", "12 345 678 90", "<table><tr><td>1</td></tr></table>"]
)
def test_short_or_letterless_text_has_no_language(text):
    s = text_signals(text)
    assert (s.language, s.language_probability) == ("", 0.0)


def test_language_of_sentences_in_21_languages():
    items = [(lang, s) for lang, sentences in SENTENCES.items() for s in sentences]
    guesses = [(lang, text_signals(s)) for lang, s in items]
    wrong = [
        (lang, g.language, round(g.language_probability, 2)) for lang, g in guesses if g.language != lang
    ]
    accuracy = 1 - len(wrong) / len(items)
    print(f"\nlanguage accuracy on {len(items)} sentences, {len(SENTENCES)} languages: {accuracy:.3f}")
    print(f"wrong (expected, guessed, probability): {wrong}")
    assert accuracy >= 0.9, wrong
    assert [g.script for _, g in guesses] == [SCRIPTS[lang] for lang, _ in guesses]


def test_language_of_ocr_like_pages_in_21_languages():
    items = [(lang, page_text(lang, seed)) for lang in SENTENCES for seed in range(2)]
    wrong = [(lang, text_signals(t).language) for lang, t in items if text_signals(t).language != lang]
    accuracy = 1 - len(wrong) / len(items)
    print(f"\nlanguage accuracy on {len(items)} OCR-like pages: {accuracy:.3f}; wrong: {wrong}")
    assert accuracy >= 0.95, wrong


def test_only_the_sampled_start_of_a_long_page_is_identified():
    mixed = CLEAN_EN + "\n\n" + " ".join(SENTENCES["fr"]) * 8
    assert text_signals(mixed).language == "fr"
    assert text_signals(mixed, QualityConfig(language_sample_characters=len(CLEAN_EN))).language == "en"
