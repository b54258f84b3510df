"""The page router: OCR a page, or take its own text layer, decided from PageFeatures by a short list of
threshold rules (the first that fires gives the reason). The thresholds are data, fitted on the labelled
set by benchmarks/calibrate_routing.py into routing_thresholds.json (shipped beside this module); a config
may override any of them. docs/routing.md explains each rule."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.stages.page_features import PageFeatures

Route = Literal["ocr", "text_layer"]
THRESHOLDS_FILE = "routing_thresholds.json"
# Reasons, one per rule (stable strings: they land in page rows and summaries).
OCR_MODE = "ocr_mode"  # the config OCRs every page
NO_TEXT_LAYER = "no_text_layer"  # no characters and an image: a scan
EMPTY_PAGE = "empty_page"  # no characters, no image, no outlined text: nothing to read
VECTOR_TEXT = "vector_text"  # text drawn as glyph outlines
INVISIBLE_TEXT = "invisible_text"  # the layer is a scanner's invisible one and it is not trusted
UNMAPPED_GLYPHS = "unmapped_glyphs"  # glyphs with no Unicode mapping
BROKEN_ENCODING = "broken_encoding"  # the text reads as garbage (symbols, split or mixed-script words)
IMAGE_COVERED = "image_covered"  # mostly image with little text: the image holds what matters
TEXT_LAYER_GOOD = "text_layer_good"
DOCUMENT_OCR = "document_ocr"  # the page's layer is good, but its document goes to OCR as a whole

_FROZEN = ConfigDict(frozen=True, extra="forbid")


@functools.cache
def calibrated_thresholds() -> dict[str, float | None]:
    """The fitted thresholds from the JSON shipped with the package."""
    return json.loads(files(__package__).joinpath(THRESHOLDS_FILE).read_text())["thresholds"]


class RoutingThresholds(BaseModel):
    """Where each rule fires; None turns a rule off. A field left out takes its calibrated value."""

    model_config = _FROZEN

    # No characters at all: this many glyph-like paths means outlined text (else images mean a scan).
    min_glyph_paths: float | None
    max_blank_image_cover: float | None
    # Some characters: these shares over the limit send the page to OCR.
    max_invisible_share: float | None  # used only when invisible text is not trusted
    max_unmapped_share: float | None
    max_symbol_share: float | None
    max_single_letter_word_share: float | None
    max_mixed_script_word_share: float | None
    max_odd_word_share: float | None
    max_mean_word_letters: float | None
    # Outlined text beside a little real text (a title): glyph-like paths per character over the limit
    # (charts' markers are glyph-like too, but a page of them still carries its prose).
    max_glyph_paths_per_char: float | None
    # Mostly image and little text: image cover over the first and character density under the second.
    max_image_cover: float | None
    min_chars_per_kpt2_on_images: float | None

    @model_validator(mode="before")
    @classmethod
    def _calibrated_defaults(cls, data: Any) -> Any:
        return {**calibrated_thresholds(), **data} if isinstance(data, dict) else data


class RoutingConfig(BaseModel):
    """Which pages skip the GPU. Every field trades GPU time against the risk of an inexact text layer."""

    model_config = _FROZEN

    # "ocr": every page goes to OCR (the behaviour before routing). "text_layer": a page whose own text
    # layer passes every rule takes it (exact text, no GPU), the rest go to OCR.
    mode: Literal["ocr", "text_layer"] = "ocr"
    # Decide per document: a document takes its text layer only if at least document_text_share of its
    # pages pass; otherwise all its pages go to OCR (one source for the whole document's Markdown). Pages
    # that fail the rules go to OCR either way.
    per_document: bool = False
    document_text_share: float = Field(default=1.0, ge=0, le=1)
    # Whether an invisible layer (render mode 3, what scanners' OCR writes) may count as good text. Off:
    # scans always go to OCR (a scanner's OCR is often weaker, and plausible errors pass every rule here).
    trust_invisible_text: bool = False
    # Word-based signs (single-letter, mixed-script, odd words, word length) need this many words to mean
    # something: one "B" in "Appendix B" is half of a two-word page.
    min_words_for_signs: int = Field(default=20, ge=1)
    thresholds: RoutingThresholds = Field(default_factory=RoutingThresholds)


@dataclass(frozen=True)
class RouteDecision:
    route: Route
    reason: str


def _over(value: float, limit: float | None) -> bool:
    return limit is not None and value > limit


def _under(value: float, limit: float | None) -> bool:
    return limit is not None and value < limit


def _no_layer(f: PageFeatures, t: RoutingThresholds) -> RouteDecision:
    if t.min_glyph_paths is not None and f.glyph_paths >= t.min_glyph_paths:
        return RouteDecision("ocr", VECTOR_TEXT)
    if _over(f.image_cover, t.max_blank_image_cover):
        return RouteDecision("ocr", NO_TEXT_LAYER)
    return RouteDecision("text_layer", EMPTY_PAGE)


def _broken_encoding(f: PageFeatures, t: RoutingThresholds, min_words: int) -> bool:
    if _over(f.symbol_share, t.max_symbol_share):
        return True
    if f.words < min_words:
        return False
    return (
        _over(f.single_letter_word_share, t.max_single_letter_word_share)
        or _over(f.mixed_script_word_share, t.max_mixed_script_word_share)
        or _over(f.odd_word_share, t.max_odd_word_share)
        or _over(f.mean_word_letters, t.max_mean_word_letters)
    )


def _ocr_reason(f: PageFeatures, cfg: RoutingConfig) -> str | None:
    """The first rule that sends a page with a text layer to OCR, or None."""
    t = cfg.thresholds
    if not cfg.trust_invisible_text and _over(f.invisible_share, t.max_invisible_share):
        return INVISIBLE_TEXT
    if _over(f.unmapped_share, t.max_unmapped_share):
        return UNMAPPED_GLYPHS
    if _broken_encoding(f, t, cfg.min_words_for_signs):
        return BROKEN_ENCODING
    if _over(f.glyph_paths / f.chars, t.max_glyph_paths_per_char):
        return VECTOR_TEXT
    if _over(f.image_cover, t.max_image_cover) and _under(f.chars_per_kpt2, t.min_chars_per_kpt2_on_images):
        return IMAGE_COVERED
    return None


def route_page(features: PageFeatures, cfg: RoutingConfig) -> RouteDecision:
    """OCR or text layer for one page, with the reason."""
    if cfg.mode == "ocr":
        return RouteDecision("ocr", OCR_MODE)
    if features.chars == 0:
        return _no_layer(features, cfg.thresholds)
    reason = _ocr_reason(features, cfg)
    return RouteDecision("ocr", reason) if reason else RouteDecision("text_layer", TEXT_LAYER_GOOD)


def route_document(features_list: list[PageFeatures], cfg: RoutingConfig) -> list[RouteDecision]:
    """Decisions for a document's pages, in order: per page, or (per_document) all to OCR unless at least
    document_text_share of the pages pass."""
    decisions = [route_page(f, cfg) for f in features_list]
    if not cfg.per_document or not decisions:
        return decisions
    passing = sum(d.route == "text_layer" for d in decisions)
    if passing >= cfg.document_text_share * len(decisions):
        return decisions
    return [d if d.route == "ocr" else RouteDecision("ocr", DOCUMENT_OCR) for d in decisions]
