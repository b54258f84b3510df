"""The grounding parser on published DeepSeek-OCR outputs (tests/data/grounding/, SOURCE.md says where each
came from) and on generated hostile strings: it never raises, boxes stay in 0-999, flags say what broke."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtprune.deepseek.grounding import (
    DET,
    DET_END,
    MODEL_MAX,
    REF,
    REF_END,
    Block,
    ParsedPage,
    figure_placeholder,
    link_figures,
    page_markdown,
    parse_grounding,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "grounding"
TAGS = (REF, REF_END, DET, DET_END)


def _read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def _page(name: str, **kwargs) -> ParsedPage:
    return parse_grounding(_read(name), **kwargs)


def test_a_clean_v1_page_gives_its_blocks_in_order_with_labels_boxes_and_text():
    page = _page("v1_arc_length.txt")
    assert page.format == "grounding" and page.parsed
    assert not (page.truncated or page.looped or page.clamped or page.malformed_blocks)
    labels = [b.label for b in page.blocks]
    assert labels == ["image", "text", "equation", "equation", "text", "text"] + [
        "equation",
        "text",
        "equation",
        "text",
        "equation",
    ]
    assert [b.order for b in page.blocks] == list(range(11))
    figure, first_text, first_formula = page.blocks[:3]
    assert figure.boxes == ((45, 12, 333, 230),) and figure.text == ""
    assert first_text.boxes == ((25, 266, 610, 293),)
    assert first_text.text == "Bogenlänge (Lennen wir schon von Integration) :"
    assert first_formula.text.startswith("\\[s = \\int_a^b") and first_formula.text.endswith("(f(x))\\]")
    assert (page.n_figures, page.n_formulas, page.n_tables) == (1, 5, 0)
    assert page.figures() == (figure,)


def test_markdown_has_no_tags_and_a_placeholder_where_the_figure_was():
    page = _page("v1_arc_length.txt")
    assert not any(tag in page.markdown for tag in TAGS)
    assert page.markdown.startswith(figure_placeholder(0) + "\n\nBogenlänge")
    assert "\n\n\n" not in page.markdown
    linked = page_markdown(page, {0: "figures/p1_0.png"})
    assert linked.startswith("![](figures/p1_0.png)\n\nBogenlänge")
    assert link_figures(page.markdown, {0: "figures/p1_0.png"}) == linked


def test_html_tables_are_kept_as_they_came_and_counted():
    page = _page("v1_truth_tables.txt")
    tables = [b for b in page.blocks if b.kind == "table"]
    assert page.n_tables == 2 and len(tables) == 2
    assert tables[0].text == "<table><tr><td>A</td><td>¬A</td></tr><tr><td>w</td><td>f</td></tr>" + (
        "<tr><td>f</td><td>w</td></tr></table>"
    )
    assert tables[0].boxes == ((293, 194, 558, 360),)
    assert tables[0].text in page.markdown


def _normalised(markdown: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"</?center>", "", markdown)).strip()


def test_markdown_matches_deepseeks_own_rendering_of_the_same_output():
    """v1_gundam_manual.result.mmd is what DeepSeek's infer() wrote for this output: tags removed, the i-th
    image block replaced by ![](images/i.jpg). Ours differs only in whitespace and <center>."""
    page = _page("v1_gundam_manual.txt")
    links = {block.order: f"images/{i}.jpg" for i, block in enumerate(page.figures())}
    assert len(links) == 7 and page.n_figures == 7
    ours = page_markdown(page, links)
    assert _normalised(ours) == _normalised(_read("v1_gundam_manual.result.mmd"))


def test_captions_follow_their_figures_and_lose_the_center_tags():
    page = _page("v1_gundam_manual.txt")
    kinds = [b.kind for b in page.blocks]
    assert kinds[5:8] == ["figure", "caption", "figure"]
    caption = page.blocks[6]
    assert caption.label == "image_caption" and caption.boxes == ((155, 404, 277, 416),)
    assert caption.text == "<center>Filter exhaust valve. </center>"
    assert "\n\nFilter exhaust valve.\n\n" in page.markdown


def test_ocr2_uses_the_same_grammar():
    page = _page("ocr2_table_excerpt.txt")
    assert page.parsed and [b.label for b in page.blocks] == ["sub_title", "table", "sub_title"]
    assert page.blocks[1].boxes == ((76, 96, 908, 147),) and page.blocks[1].text.startswith(
        "<table><tr><td>七"
    )
    cut = _page("ocr2_title_cut_at_20_tokens.txt", hit_token_cap=True)
    assert cut.truncated and cut.blocks == (Block(0, "title", ((330, 198, 559, 230),), "# R"),)


def test_a_free_ocr_answer_is_one_plain_block_without_a_box():
    page = _page("ocr2_free_ocr_cut_at_20_tokens.txt")
    assert page.format == "plain" and not page.parsed
    assert page.blocks == (Block(0, "", (), "R&D QUALITY IMPROVEMENT SUGGESTION/SOLUTION FORM\n\nName/"),)
    assert page.markdown == page.blocks[0].text


def test_an_empty_output_has_no_blocks():
    page = _page("v1_empty.txt")
    assert page.format == "empty" and page.blocks == () and page.markdown == "" and not page.parsed


def test_coordinates_out_of_range_are_clamped_and_flagged():
    page = _page("v1_bad_coordinates.txt")
    by_text = {b.text: b for b in page.blocks}
    negative = by_text["\\[\\int \\sinh x \\, dx = \\cosh x \\quad \\text{auf } \\mathbb{R}\\]"]
    assert negative.boxes == ((110, 0, 444, 43),) and negative.clamped  # written [[110, -1, 444, 43]]
    too_far = by_text["\\[\\int \\sinh x \\, dx = \\cosh x \\quad \\mathrm{auf} \\mathbb{R}\\]"]
    assert too_far.boxes == ((999, 0, 999, 100),) and too_far.clamped  # written [[1100, 0, 999, 100]]
    assert page.clamped and sum(b.clamped for b in page.blocks) == 3
    assert all(0 <= v <= MODEL_MAX for b in page.blocks for box in b.boxes for v in box)


def test_a_det_the_text_ran_into_keeps_the_text_and_is_malformed():
    page = _page("v1_bad_coordinates.txt")  # <|det|>[[110, \frac{1}{1+x^2}} ... with no <|/det|>
    broken = [b for b in page.blocks if b.malformed]
    assert len(broken) == 1 and broken[0].boxes == ()
    assert broken[0].text.startswith("\\frac{1}{1+x^2}} \\, dx = \\frac{1}{2} \\ln")
    assert broken[0].label == "equation" and page.blocks[broken[0].order + 1].boxes == ((100, 363, 100, 400),)


def test_junk_between_the_tags_is_dropped_and_the_box_kept():
    page = _page(
        "v1_label_glitch.txt"
    )  # <|ref|>equation<|/ref|>权利的text<|/ref|><|det|>[[70, 456, 647, 491]]
    glitch = next(b for b in page.blocks if b.malformed)
    assert glitch.label == "equation" and glitch.boxes == ((70, 456, 647, 491),)
    assert "权利的" not in page.markdown and glitch.text.startswith("\\[\n\\langle")


def test_a_ref_left_open_takes_its_label_from_the_first_word():
    page = _page("v1_unclosed_ref.txt")  # ...<|ref|>equation\r\n\[ I = ... \]  (no <|/ref|>, no det)
    last = page.blocks[-1]
    assert last.label == "equation" and last.boxes == () and last.malformed
    assert last.text.startswith("\\[\nI = \\int_{-4}^{-2} 3") and last.text.endswith("\\]")
    assert not page.truncated  # the block is whole: only its header broke


def test_repeated_text_at_new_places_is_not_a_loop():
    page = _page("v1_repeated_legit.txt")  # "# Parameter:" and "Gemäss Ausgabe ..." once per exercise
    texts = [b.text for b in page.blocks]
    assert texts.count("Gemäss Ausgabe erhalten wir die *Aufleitung*") == 6
    assert page.repeated_blocks == 0 and not page.looped


def test_blocks_repeated_without_boxes_are_a_loop():
    page = _page("v1_block_loop.txt")  # the exercise list again and again with [[0, 0, 0, 0]] or no det
    assert page.looped and page.repeated_blocks >= 10
    first = next(b for b in page.blocks if b.text == "A: Die Augensumme beträgt 4,")
    assert not first.repeated and first.boxes == ((144, 502, 427, 520),)
    assert page.truncated  # it ends on a header with no text


def test_a_block_whose_text_loops_flags_the_page():
    page = _page("v1_text_loop.txt")
    assert page.looped and page.repeated_blocks == 0
    assert page.blocks[-1].text.endswith("overline[")


def test_the_token_cap_marks_the_page_truncated():
    text = _read("v1_arc_length.txt")
    assert not parse_grounding(text).truncated
    assert parse_grounding(text, hit_token_cap=True).truncated


def test_a_cut_inside_any_tag_is_truncated():
    text = _read("v1_arc_length.txt")
    starts = [m.start() for m in re.finditer(r"<\|/?(?:ref|det)\|>", text)]
    cuts = [s + k for s in starts for k in range(2, 8) if text[s + k - 1] != ">"]
    assert len(cuts) > 100
    for cut in cuts:
        assert parse_grounding(text[:cut]).truncated, repr(text[max(0, cut - 30) : cut])


def test_a_cut_inside_the_coordinates_or_a_table_is_truncated():
    assert parse_grounding("<|ref|>text<|/ref|><|det|>[[10, 20, 30").truncated
    assert parse_grounding("<|ref|>table<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\n<table><tr><td>a").truncated
    assert parse_grounding("<|ref|>equation<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\n\\[x = ").truncated
    line_break = "<|ref|>equation<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\n\\[ a \\\\[2pt] b \\]"
    assert not parse_grounding(line_break).truncated  # `\\[2pt]` is a LaTeX line break, not `\[`


def test_a_ref_can_carry_several_boxes():
    page = parse_grounding(
        "<|ref|>text<|/ref|><|det|>[[10, 20, 300, 40], [500, 20, 990, 40]]<|/det|>\nTwo columns"
    )
    assert page.blocks[0].boxes == ((10, 20, 300, 40), (500, 20, 990, 40))
    reversed_box = parse_grounding("<|ref|>image<|/ref|><|det|>[[300, 400, 100, 200]]<|/det|>").blocks[0]
    assert reversed_box.boxes == ((100, 200, 300, 400),) and reversed_box.clamped


def test_text_before_the_first_ref_is_a_block_without_a_box():
    page = parse_grounding("stray words\n<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nbody")
    assert [(b.label, b.boxes, b.text) for b in page.blocks] == [
        ("", (), "stray words"),
        ("text", ((1, 2, 3, 4),), "body"),
    ]


def test_the_end_of_sentence_token_is_removed():
    page = parse_grounding("<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nbody<｜end▁of▁sentence｜>")
    assert page.blocks[0].text == "body" and not page.truncated


def test_tags_decoded_away_as_special_tokens_still_parse():
    """skip_special_tokens=True drops <|ref|> and <|det|> and leaves `label[[...]]` at line starts."""
    text = _read("v1_gundam_manual.txt")
    stripped = re.sub(r"<\|/?(?:ref|det)\|>", "", text)
    page = parse_grounding(stripped)
    assert page.format == "stripped" and page.parsed
    assert page.blocks == parse_grounding(text).blocks
    assert parse_grounding("see [[1, 2, 3, 4]] in the text").format == "plain"


# Hostile strings: fragments real outputs break into, plus anything hypothesis finds.
FRAGMENTS = [
    *TAGS,
    "<|",
    "<|re",
    "<|/de",
    "|>",
    "<|grounding|>",
    "<｜end▁of▁sentence｜>",
    "text",
    "image",
    "table",
    "equation",
    "[[",
    "]]",
    "[",
    "]",
    ", ",
    "-1",
    "1100",
    "9" * 400,
    "-" + "9" * 5000,
    "0.5",
    "1e999",
    "\n",
    "\n\n",
    "<table><tr><td>",
    "</td></tr></table>",
    "\\[",
    "\\]",
    "权利的",
    "Ünïcödé ✓",
    "\r\n",
    "\x00",
]
hostile = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=12), max_size=60).map("".join)
numbers = st.integers(min_value=-(10**30), max_value=10**30)


def _check_invariants(page: ParsedPage) -> None:
    for i, block in enumerate(page.blocks):
        assert block.order == i
        for x0, y0, x1, y1 in block.boxes:
            assert 0 <= x0 <= x1 <= MODEL_MAX and 0 <= y0 <= y1 <= MODEL_MAX
    assert not any(tag in page.markdown for tag in TAGS)
    assert page.format in ("grounding", "stripped", "plain", "empty")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_string_parses_without_raising(text):
    page = parse_grounding(text)
    _check_invariants(page)
    page_markdown(page, {b.order: "x.png" for b in page.blocks})


@settings(max_examples=300, deadline=None)
@given(hostile, st.booleans())
def test_hostile_strings_parse_without_raising(text, hit_cap):
    page = parse_grounding(text, hit_token_cap=hit_cap)
    _check_invariants(page)
    assert page.truncated or not hit_cap


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(numbers, numbers, numbers, numbers), min_size=1, max_size=4))
def test_any_coordinates_end_inside_the_model_frame(boxes):
    det = "[" + ", ".join(f"[{a}, {b}, {c}, {d}]" for a, b, c, d in boxes) + "]"
    page = parse_grounding(f"<|ref|>text<|/ref|><|det|>{det}<|/det|>\nbody")
    (block,) = page.blocks
    assert len(block.boxes) == len(boxes)
    _check_invariants(page)
    inside = all(0 <= v <= MODEL_MAX for box in boxes for v in box) and all(
        a <= c and b <= d for a, b, c, d in boxes
    )
    assert block.clamped == (not inside)


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.txt")))
@settings(max_examples=40, deadline=None)
@given(cut=st.floats(min_value=0.0, max_value=1.0))
def test_every_stored_output_cut_anywhere_parses(name, cut):
    text = _read(name)
    _check_invariants(parse_grounding(text[: int(len(text) * cut)]))
