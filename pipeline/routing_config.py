"""RoutingConfig: which pages skip the GPU and take their own text layer, as PipelineConfig.routing. The
thresholds are data, fitted on the labelled set by benchmarks/calibrate_routing.py into
routing_thresholds.json (shipped beside this module); a config may override any of them. The rules that read
them are in pipeline/stages/routing.py; docs/routing.md explains each."""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Route = Literal["ocr", "text_layer"]
THRESHOLDS_FILE = "routing_thresholds.json"

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
    mode: Route = "ocr"
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
    thresholds: RoutingThresholds = Field(default_factory=lambda: RoutingThresholds.model_validate({}))
