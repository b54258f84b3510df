"""The page router on the labelled set: the confusion table under both trust settings (printed and
asserted), the per-document rule, the thresholds file, and the reasons for the kinds built to trigger them."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib.resources import files

import pytest
from pydantic import ValidationError
from routing_fixtures import routing_pages, routing_samples

from pipeline.stages import routing
from pipeline.stages.routing import RoutingConfig, RoutingThresholds, route_document, route_page
from pipeline.stages.routing_fit import confusion, confusion_table, fit_thresholds

pytest.importorskip("pymupdf")

ON = RoutingConfig(mode="text_layer")
TRUSTED = RoutingConfig(mode="text_layer", trust_invisible_text=True)


def _of(kind: str):
    return [s for s in routing_samples() if s.kind == kind]


def test_confusion_table_on_the_labelled_set():
    table = confusion(list(routing_samples()), RoutingThresholds())
    print("\n" + confusion_table(table))
    for trust in (True, False):
        assert table.right(trust) >= 0.98 * table.total(trust)
        assert table.false_text_layer(trust) <= 0.01 * table.wrong_layer(trust)
    assert table.wrong_layer(True) >= 30 and table.total(True) - table.wrong_layer(True) >= 30


def test_the_stored_thresholds_are_the_fit():
    """routing_thresholds.json is what benchmarks/calibrate_routing.py fits on this set (rerun it after
    changing a feature or the set)."""
    assert fit_thresholds(list(routing_samples())) == routing.calibrated_thresholds()


def test_ocr_mode_is_the_default_and_routes_every_page_to_ocr():
    assert RoutingConfig().mode == "ocr"
    decisions = {route_page(s.features, RoutingConfig()) for s in routing_samples()}
    assert decisions == {routing.RouteDecision("ocr", routing.OCR_MODE)}


def test_invisible_layers_follow_trust():
    for s in _of("scan_good_layer"):
        assert route_page(s.features, TRUSTED) == routing.RouteDecision("text_layer", routing.TEXT_LAYER_GOOD)
        assert route_page(s.features, ON) == routing.RouteDecision("ocr", routing.INVISIBLE_TEXT)
    for s in _of("scan_garbage_layer"):
        assert route_page(s.features, TRUSTED).reason == routing.BROKEN_ENCODING
        assert route_page(s.features, ON).reason == routing.INVISIBLE_TEXT


@pytest.mark.parametrize(
    ("kind", "reasons"),
    [
        ("born_latin", {routing.TEXT_LAYER_GOOD}),
        ("near_empty", {routing.EMPTY_PAGE, routing.TEXT_LAYER_GOOD}),
        ("scan_image_only", {routing.NO_TEXT_LAYER, routing.IMAGE_COVERED}),
        ("unmapped_font", {routing.UNMAPPED_GLYPHS}),
        ("wrong_unicode_map", {routing.BROKEN_ENCODING}),
        ("vector_outlined", {routing.VECTOR_TEXT}),
        ("figure_page", {routing.IMAGE_COVERED}),
    ],
)
def test_reasons_by_kind(kind, reasons):
    assert {route_page(s.features, ON).reason for s in _of(kind)} <= reasons


def test_per_document_rule():
    good = [s.features for s in _of("born_latin")[:3]]
    scan = _of("scan_image_only")[0].features
    pages = [*good, scan]
    assert [d.route for d in route_document(pages, ON)] == ["text_layer"] * 3 + ["ocr"]
    whole = route_document(pages, RoutingConfig(mode="text_layer", per_document=True))
    assert [d.reason for d in whole] == [routing.DOCUMENT_OCR] * 3 + [routing.NO_TEXT_LAYER]
    most = route_document(pages, RoutingConfig(mode="text_layer", per_document=True, document_text_share=0.7))
    assert [d.route for d in most] == ["text_layer"] * 3 + ["ocr"]  # a failing page is OCRed either way
    assert route_document(good, RoutingConfig(mode="text_layer", per_document=True)) == route_document(
        good, ON
    )
    assert route_document([], ON) == []


def test_thresholds_default_to_the_calibrated_file_and_override_one_at_a_time():
    stored = json.loads(files("pipeline").joinpath(routing.THRESHOLDS_FILE).read_text())
    assert RoutingThresholds().model_dump() == stored["thresholds"]
    tighter = RoutingThresholds(max_unmapped_share=0.0)
    assert (
        tighter.max_unmapped_share == 0.0
        and tighter.min_glyph_paths == stored["thresholds"]["min_glyph_paths"]
    )
    with pytest.raises(ValidationError):
        RoutingThresholds(max_unknown=1.0)
    with pytest.raises(ValidationError):
        RoutingConfig(mode="gpu")


def test_a_rule_set_to_none_is_off():
    page = _of("unmapped_font")[0].features
    assert route_page(page, ON).reason == routing.UNMAPPED_GLYPHS
    off = RoutingConfig(mode="text_layer", thresholds=RoutingThresholds(max_unmapped_share=None))
    assert route_page(page, off).route == "text_layer"  # nothing else is wrong with a fully unmapped page


def test_word_signs_wait_for_enough_words():
    page = replace(_of("born_latin")[0].features, words=5, single_letter_word_share=1.0)
    assert route_page(page, ON).route == "text_layer"
    assert route_page(replace(page, words=50), ON).reason == routing.BROKEN_ENCODING


def test_generator_is_deterministic():
    from pipeline.routing_set import labelled_pages

    again = labelled_pages(seed=0)
    assert [(p.kind, p.label, p.page_index) for p in again] == [
        (p.kind, p.label, p.page_index) for p in routing_pages()
    ]
    assert all(a.pdf_bytes == b.pdf_bytes for a, b in zip(again, routing_pages(), strict=True))
