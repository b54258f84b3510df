"""The page router: OCR a page, or take its own text layer, decided from PageFeatures by a short list of
threshold rules (the first that fires gives the reason). The config and its thresholds (data, fitted on the
labelled set by benchmarks/calibrate_routing.py) are in pipeline/routing_config.py, where PipelineConfig
reads them. docs/routing.md explains each rule."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.routing_config import (  # noqa: F401  (re-exported: the router's config beside its rules)
    THRESHOLDS_FILE,
    Route,
    RoutingConfig,
    RoutingThresholds,
    calibrated_thresholds,
)
from pipeline.stages.page_features import PageFeatures

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
