"""Per-page quality signals: which pages to trust. Pure functions on CPU, no I/O.

`text_signals` reads the final text of a page: how many characters, which share are letters and digits,
how much of it copies an earlier stretch of itself (a loop the decoder's guard did not stop), its language
and its dominant script. `confidence_summary` reads the decoder's log-probabilities of the tokens it chose.
`suspect_reasons` turns both, with the finish reason, into stable reason strings; `assess_page` does all
three and gives the flat columns a page row carries.

The text signals are taken over the page's readable text: DeepSeek-OCR's grounding boxes
(`<|ref|>..<|/ref|><|det|>..<|/det|>`), other special tokens and HTML tags are layout the model writes, not
page text, so they are removed first and HTML entities unescaped; Markdown marks stay (they count as symbols).

Language identification is py3langid's (its model ships inside the package; nothing is downloaded). It
is loaded once per process, on the first page that needs it (a few seconds, about 100 MiB).
"""

from __future__ import annotations

import functools
import html
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the report reads these signals without the pipeline's config (and its torch)
    from pipeline.config import QualityConfig

# Every reason suspect_reasons can give, in the order it gives them.
REASONS = (
    "repetition",
    "hit_token_cap",
    "few_characters",
    "mostly_symbols",
    "repeated_ngrams",
    "unknown_language",
    "low_confidence",
)

_GROUNDING = re.compile(r"<\|ref\|>.*?<\|/ref\|>\s*(?:<\|det\|>.*?<\|/det\|>)?|<\|det\|>.*?<\|/det\|>", re.S)
_SPECIAL_TOKEN = re.compile(r"<\|[^|<>]*\|>|<｜[^｜<>]*｜>")
_HTML_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*\b[^<>]*>")
# Scripts written without spaces between words: each character is a token of the repetition count.
_UNSPACED = frozenset({"Han", "Kana", "Thai", "Lao", "Khmer", "Myanmar"})
# First words of Unicode character names that name no script (the letter takes no part in the count):
# marks and modifiers, and the letter-like symbols of formulas (ℓ, ℝ, ℎ, ℑ).
_NOT_A_SCRIPT = frozenset(
    {
        "COMBINING",
        "MODIFIER",
        "MATHEMATICAL",
        "SUPERSCRIPT",
        "SUBSCRIPT",
        "CIRCLED",
        "SCRIPT",
        "DOUBLE-STRUCK",
    }
    | {"BLACK-LETTER", "PLANCK", "TURNED", "INFORMATION"}
)
_SCRIPT_ALIASES = {
    "CJK": "Han",
    "IDEOGRAPHIC": "Han",
    "HIRAGANA": "Kana",
    "KATAKANA": "Kana",
    "KATAKANA-HIRAGANA": "Kana",
    "HALFWIDTH": "",  # resolved by the next word (HALFWIDTH KATAKANA LETTER A)
    "FULLWIDTH": "",
}
# py3langid's class for text that is no language (numbers, markup, identifiers, random letters).
_NO_LANGUAGE = "zxx"
# py3langid's ISO 639-3 codes of varieties of a language that has an ISO 639-1 code, and that code: a
# page in Egyptian Arabic is an "ar" page, and its probability is the sum over the varieties.
_FOLD = {
    "ary": "ar",  # Moroccan Arabic
    "arz": "ar",  # Egyptian Arabic
    "yue": "zh",  # Cantonese
    "wuu": "zh",  # Wu Chinese
    "uzs": "uz",  # Southern Uzbek
    "sdh": "ku",  # Southern Kurdish
    "ltg": "lv",  # Latgalian
    "fuv": "ff",  # Nigerian Fulfulde
    "gug": "gn",  # Paraguayan Guarani
    "kik": "ki",  # Kikuyu (its 639-3 code)
}
# A text that mixes Han with at least this share of kana (of the two together) is Japanese.
_JAPANESE_KANA_SHARE = 0.1


@dataclass(frozen=True)
class TextSignals:
    """What the final text of a page says about itself; plain values, each one a Parquet column."""

    characters: int  # non-space characters of the readable text
    letter_share: float  # letters (with their combining marks) / characters; 0.0 when there are none
    digit_share: float  # digits and other numerals / characters
    repeated_ngram_share: float  # share of word tokens that copy an earlier word n-gram of the page
    language: str  # ISO 639-1 (639-3 where the language has no 639-1 code); "" when too short or unsure
    language_probability: float  # of the best guess, also when not sure enough to name it; 0.0: not read
    script: str  # most letters' script ("Latin", "Han", "Cyrillic", "Japanese"...); "" without letters


@dataclass(frozen=True)
class ConfidenceSummary:
    """The decoder's log-probabilities of the tokens it chose, summed up. With no tokens every value is
    neutral (0.0: as if every token were certain), so a page that was not scored never reads as
    low-confidence; `tokens` = 0 tells it apart."""

    tokens: int
    mean_logprob: float
    min_logprob: float
    low_probability_share: float  # share of tokens chosen with a probability below the threshold


@dataclass(frozen=True)
class PageQuality:
    """Everything the quality signals say about one page."""

    signals: TextSignals
    confidence: ConfidenceSummary
    reasons: tuple[str, ...]

    def columns(self) -> dict[str, Any]:
        """Flat row columns (pipeline/schema.py): the text signals under their own names, the confidence
        under scored_tokens / mean_logprob / min_logprob / low_probability_share, `suspect`, and
        `suspect_reasons` comma-separated."""
        c = self.confidence
        return {
            **asdict(self.signals),
            "scored_tokens": c.tokens,
            "mean_logprob": c.mean_logprob,
            "min_logprob": c.min_logprob,
            "low_probability_share": c.low_probability_share,
            "suspect": bool(self.reasons),
            "suspect_reasons": ",".join(self.reasons),
        }


def _default_config() -> QualityConfig:
    from pipeline.config import QualityConfig

    return QualityConfig()


def readable_text(text: str) -> str:
    """The page text without grounding boxes, special tokens and HTML tags, entities unescaped."""
    text = _GROUNDING.sub(" ", text)
    text = _SPECIAL_TOKEN.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    return html.unescape(text)


@functools.cache
def script_of(char: str) -> str:
    """The script of one letter, from its Unicode name ("Latin", "Han", "Kana", "Devanagari"...); "" for a
    character that names none (combining marks, mathematical letters, unnamed code points)."""
    words = unicodedata.name(char, "").split()
    while words:
        first = words.pop(0)
        if first in _NOT_A_SCRIPT:
            return ""
        alias = _SCRIPT_ALIASES.get(first)
        if alias is None:
            return first.title()
        if alias:
            return alias
    return ""


def _views(text: str, sample_characters: int) -> tuple[Counter[str], str, str]:
    """Counts of letters, digits, other characters and of each letter's script, and two views of the text:
    its word tokens (punctuation out, unspaced scripts one token per character), and the letters only of
    its first `sample_characters` characters (what language identification reads)."""
    counts: Counter[str] = Counter()
    tokens_table: dict[int, str] = {}
    letters_table: dict[int, str] = {}
    for char, n in Counter(text).items():
        if char.isspace():
            continue
        kind = unicodedata.category(char)[0]
        if kind in "LM":
            counts["letters"] += n
            script = script_of(char)
            if script:
                counts["script:" + script] += n
            if script in _UNSPACED:
                tokens_table[ord(char)] = f" {char} "
            continue
        letters_table[ord(char)] = " "
        if kind == "N":
            counts["digits"] += n
        else:
            counts["other"] += n
            tokens_table[ord(char)] = " "
    return counts, text.translate(tokens_table), text[:sample_characters].translate(letters_table)


def repeated_share(tokens: Sequence[str], ngram: int) -> float:
    """Share of `tokens` covered by n-grams that already occurred earlier in `tokens`: 0.0 for text that
    never repeats itself, (k - 1) / k for a text copied k times. One pass, O(len(tokens) * ngram)."""
    if len(tokens) < 2 * ngram:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    covered = reach = 0  # reach: end of the covered stretch so far, so overlapping copies count once
    grams = zip(*(tokens[k:] for k in range(ngram)), strict=False)  # the n-gram starting at each token
    for start, gram in enumerate(grams):
        if gram in seen:
            covered += start + ngram - max(start, reach)
            reach = start + ngram
        else:
            seen.add(gram)
    return covered / len(tokens)


@functools.cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def identify_language(letters: str, config: QualityConfig) -> tuple[str, float]:
    """(language, probability) of a letters-only text: ("", 0.0) when it is too short to read (under
    min_language_bytes), ("", p) when the best guess is no language or below min_language_probability.
    The identifier's regional varieties are folded into their language first (see _FOLD)."""
    sample = " ".join(letters.split())
    if len(sample.replace(" ", "").encode()) < config.min_language_bytes:
        return "", 0.0
    folded: dict[str, float] = {}
    for code, probability in _identifier().rank(sample):
        language = _FOLD.get(code, code)
        folded[language] = folded.get(language, 0.0) + float(probability)
    language = max(folded, key=folded.__getitem__)
    probability = min(folded[language], 1.0)  # float32 sums can pass 1 by a rounding step
    if language == _NO_LANGUAGE or probability < config.min_language_probability:
        return "", probability
    return language, probability


def text_signals(text: str, config: QualityConfig | None = None) -> TextSignals:
    """The signals of one page's final text (see TextSignals)."""
    config = config or _default_config()
    counts, token_view, letters_view = _views(readable_text(text), config.language_sample_characters)
    characters = counts["letters"] + counts["digits"] + counts["other"]
    scripts = {k.removeprefix("script:"): n for k, n in counts.items() if k.startswith("script:")}
    language, probability = identify_language(letters_view, config)
    return TextSignals(
        characters=characters,
        letter_share=counts["letters"] / characters if characters else 0.0,
        digit_share=counts["digits"] / characters if characters else 0.0,
        repeated_ngram_share=repeated_share(token_view.split(), config.repeat_ngram_words),
        language=language,
        language_probability=probability,
        script=dominant_script(scripts),
    )


def dominant_script(letters_per_script: dict[str, int]) -> str:
    """The script with the most letters (ties: the first by name); "" for none. Han and kana together
    are "Japanese" when kana is at least _JAPANESE_KANA_SHARE of them: Japanese mixes the two in
    proportions that change from sentence to sentence, and Chinese has no kana."""
    counts = dict(letters_per_script)
    han, kana = counts.get("Han", 0), counts.get("Kana", 0)
    if kana and kana >= _JAPANESE_KANA_SHARE * (han + kana):
        counts.pop("Han", None)
        counts["Japanese"] = han + counts.pop("Kana")
    return max(sorted(counts), key=counts.__getitem__) if counts else ""


def confidence_summary(
    token_logprobs: Sequence[float], low_token_probability: float = 0.1
) -> ConfidenceSummary:
    """Summary of the natural-log probabilities of the chosen tokens (see ConfidenceSummary; empty input
    gives tokens=0 and neutral 0.0 values)."""
    if not token_logprobs:
        return ConfidenceSummary(tokens=0, mean_logprob=0.0, min_logprob=0.0, low_probability_share=0.0)
    low = math.log(low_token_probability)
    return ConfidenceSummary(
        tokens=len(token_logprobs),
        mean_logprob=math.fsum(token_logprobs) / len(token_logprobs),
        min_logprob=min(token_logprobs),
        low_probability_share=sum(lp < low for lp in token_logprobs) / len(token_logprobs),
    )


def suspect_reasons(
    signals: TextSignals, confidence: ConfidenceSummary, finish_reason: str, config: QualityConfig
) -> list[str]:
    """Why a page should not be trusted as it is, in REASONS order; [] for a page nothing speaks against.

    repetition / hit_token_cap: the decoder ended by its loop guard / at its token cap. few_characters:
    under min_characters. mostly_symbols: letters and digits under min_alphanumeric_share of a non-empty
    text. repeated_ngrams: repeated_ngram_share at or over its maximum. unknown_language: the text was long
    enough to read a language (language_probability > 0) and none was named. low_confidence: scored
    tokens whose mean log-probability is under min_mean_logprob or whose low-probability share is over
    max_low_probability_share."""
    alphanumeric = signals.letter_share + signals.digit_share
    checks = {
        "repetition": finish_reason == "repetition",
        "hit_token_cap": finish_reason == "length",
        "few_characters": signals.characters < config.min_characters,
        "mostly_symbols": signals.characters > 0 and alphanumeric < config.min_alphanumeric_share,
        "repeated_ngrams": signals.repeated_ngram_share >= config.max_repeated_ngram_share,
        "unknown_language": signals.language_probability > 0 and not signals.language,
        "low_confidence": confidence.tokens > 0
        and (
            confidence.mean_logprob < config.min_mean_logprob
            or confidence.low_probability_share > config.max_low_probability_share
        ),
    }
    return [reason for reason in REASONS if checks[reason]]


def assess_page(
    text: str, token_logprobs: Sequence[float], finish_reason: str, config: QualityConfig | None = None
) -> PageQuality:
    """The text signals, confidence summary and suspect reasons of one page in one call."""
    config = config or _default_config()
    signals = text_signals(text, config)
    confidence = confidence_summary(token_logprobs, config.low_token_probability)
    return PageQuality(
        signals, confidence, tuple(suspect_reasons(signals, confidence, finish_reason, config))
    )
