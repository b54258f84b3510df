import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtprune.evaluation.metrics import agreement, corpus_ned, edit_distance_ratio, normalize_text, page_ned


def test_hand_computed_edit_ratio():
    # kitten -> sitting: substitute k/s, e/i, insert g = 3 edits over the longer length 7.
    assert page_ned("kitten", "sitting") == pytest.approx(3 / 7)
    assert page_ned("same text", "same text") == 0.0


def test_empty_pages():
    assert page_ned("", "") == 0.0
    assert page_ned("abc", "") == 1.0
    assert page_ned("", "abc") == 1.0
    # A page of markup only is an empty page once normalised.
    assert page_ned("<|ref|>image<|/ref|><|det|>[[0, 0, 10, 10]]<|/det|>", "") == 0.0


def test_full_width_and_unicode_compatibility_forms_fold():
    assert normalize_text("ＡＢＣ　１２３，ﬁ") == "ABC 123,fi"
    assert page_ned("Ｐｒｉｃｅ：１０％", "Price:10%") == 0.0
    # CJK full stop has no half-width form and must survive.
    assert normalize_text("文本。") == "文本。"


def test_whitespace_is_folded_not_removed():
    assert normalize_text("  a \n\n b\t\tc  ") == "a b c"
    # "ab" vs "a b": one inserted space over 3 chars.
    assert page_ned("ab", "a b") == pytest.approx(1 / 3)


def test_markdown_table_equals_html_table():
    markdown = "| Name | Qty |\n|---|:---:|\n| apple | 3 |\n"
    html = "<table><tr><th>Name</th><th>Qty</th></tr><tr><td>apple</td><td>3</td></tr></table>"
    assert normalize_text(markdown) == normalize_text(html) == "Name Qty apple 3"
    assert page_ned(markdown, html) == 0.0
    # One wrong cell: "4" for "3" is one substitution over the 16-char normalised text.
    assert page_ned(markdown, html.replace(">3<", ">4<")) == pytest.approx(1 / 16)


def test_grounding_tags_and_special_tokens_are_removed():
    output = (
        "<|ref|>title<|/ref|><|det|>[[12, 30, 400, 60]]<|/det|>\n# Annual report\n\n"
        "<|ref|>text<|/ref|><|det|>[[12, 80, 900, 200]]<|/det|>\nRevenue rose.<｜end▁of▁sentence｜>"
    )
    assert normalize_text(output) == "Annual report Revenue rose."
    assert page_ned(output, "Annual report\nRevenue rose.") == 0.0


def test_markdown_markers():
    text = (
        "## Title\n> quoted\n- item one\n* item two\n1. numbered\n**bold** *it* ~~gone~~ __u__ `code`\n---\n"
    )
    assert normalize_text(text) == "Title quoted item one item two 1. numbered bold it gone u code"
    assert normalize_text("![figure](img.png) see [the docs](http://x)") == "see the docs"
    # Arithmetic and identifiers are page text, not emphasis.
    assert normalize_text("2 * 3 * 4 = x_y_z") == "2 * 3 * 4 = x_y_z"


def test_html_entities_and_math_delimiters():
    assert normalize_text("a &amp; b &lt;c&gt;<br/>d") == "a & b <c> d"
    assert normalize_text("area $x^2$ and \\[ y = 1 \\]") == "area x^2 and y = 1"


def test_drop_punctuation_mode():
    assert normalize_text("Hello, world! (v2.0)", drop_punctuation=True) == "Hello world v20"
    assert page_ned("Hello, world", "Hello world", drop_punctuation=True) == 0.0
    assert page_ned("Hello, world", "Hello world") == pytest.approx(1 / 12)


def test_corpus_mean_weighs_pages_equally():
    # Page 1 identical (0), page 2 "ab" vs "ax" (1/2) -> mean 1/4, whatever the page lengths.
    assert corpus_ned(["ab", "ab"], ["ab", "ax"]) == pytest.approx(0.25)
    assert agreement(["x", "long page text"], ["x", "long page text"]) == 1.0


def test_corpus_rejects_mismatched_or_empty_input():
    with pytest.raises(ValueError):
        corpus_ned(["a"], ["a", "b"])
    with pytest.raises(ValueError):
        corpus_ned([], [])


@given(st.text(max_size=40), st.text(max_size=40))
def test_ratio_is_a_bounded_symmetric_distance(a, b):
    d = edit_distance_ratio(a, b)
    assert 0.0 <= d <= 1.0
    assert d == edit_distance_ratio(b, a)
    assert (d == 0.0) == (a == b)
