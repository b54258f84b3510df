import pytest
from evaluation_fixtures import PDF_LINES, omnidocbench_records

from rtprune.evaluation.datasets import load_omnidocbench, load_pdf_sample, omnidocbench_reference
from rtprune.evaluation.metrics import normalize_text


def test_omnidocbench_reference_follows_reading_order_and_rules():
    page1, page2 = omnidocbench_records()
    # header, page number, ignored and order-less blocks are out; truncated pieces are joined in place.
    assert omnidocbench_reference(page1) == (
        "Results\n\nThe paragraph continues here.\n\n<table><tr><td>x</td><td>1</td></tr></table>"
    )
    assert normalize_text(omnidocbench_reference(page1)) == "Results The paragraph continues here. x 1"
    assert omnidocbench_reference(page2) == "Second page.\n\nE = mc^2"
    # Excluded categories are a choice of the caller.
    assert omnidocbench_reference(page1, excluded=()).startswith("Journal of Tests\n\nResults")


def test_truncated_chains_of_three_blocks_merge():
    page = {
        "layout_dets": [
            {"anno_id": k, "category_type": "text_block", "order": i, "text": k} for i, k in enumerate("abc")
        ],
        "extra": {
            "relation": [
                {"source_anno_id": "b", "target_anno_id": "c", "relation_type": "truncated"},
                {"source_anno_id": "a", "target_anno_id": "b", "relation_type": "truncated"},
            ]
        },
    }
    assert omnidocbench_reference(page) == "abc"


def test_load_omnidocbench_folder(omnidocbench_folder):
    sample = load_omnidocbench(omnidocbench_folder)
    assert [p.page_id for p in sample.pages] == ["page_one.png", "page_two.png"]
    assert sample.pages[0].image.size == (200, 100) and sample.pages[0].image.mode == "RGB"
    assert sample.pages[1].image.getpixel((0, 0)) == (120, 120, 120)
    assert sample.pages[1].reference == "Second page.\n\nE = mc^2"
    assert sample.skipped == []


def test_load_omnidocbench_reports_missing_images(omnidocbench_folder):
    (omnidocbench_folder / "images" / "page_two.png").unlink()
    sample = load_omnidocbench(omnidocbench_folder)
    assert [p.page_id for p in sample.pages] == ["page_one.png"]
    assert sample.skipped == [("page_two.png", "image not found")]


def test_pdf_text_layer_is_the_reference(pdf_corpus):
    sample = load_pdf_sample(str(pdf_corpus), sample_pages=10, max_pages_per_doc=5, dpi=72)
    assert sorted(p.page_id for p in sample.pages) == [
        "doc0.pdf#p0",
        "doc0.pdf#p1",
        "doc1.pdf#p0",
        "doc1.pdf#p1",
    ]
    for page in sample.pages:
        doc, index = int(page.page_id[3]), int(page.page_id[-1])
        assert normalize_text(page.reference) == " ".join(PDF_LINES[(doc + index) % 3])
        assert page.image.size == (300, 400)  # 300x400 pt at 72 dpi


def test_pdf_sample_is_capped_reproducible_and_reports_bad_files(pdf_corpus):
    (pdf_corpus / "broken.pdf").write_bytes(b"not a pdf")
    first = load_pdf_sample(str(pdf_corpus), sample_pages=3, max_pages_per_doc=1, seed=3, dpi=36)
    again = load_pdf_sample(str(pdf_corpus), sample_pages=3, max_pages_per_doc=1, seed=3, dpi=36)
    assert [p.page_id for p in first.pages] == [p.page_id for p in again.pages]
    assert len(first.pages) == 2  # one page from each readable document
    assert len({p.page_id.split("#")[0] for p in first.pages}) == 2
    assert [path.endswith("broken.pdf") for path, _ in first.skipped] == [True]


def test_scanned_page_without_text_layer_has_no_reference(tmp_path):
    import pymupdf

    doc = pymupdf.open()
    doc.new_page(width=100, height=100)
    doc.save(tmp_path / "scan.pdf")
    sample = load_pdf_sample(str(tmp_path / "scan.pdf"), sample_pages=1, dpi=36)
    assert [(p.page_id, p.reference) for p in sample.pages] == [("scan.pdf#p0", None)]


@pytest.mark.parametrize("uri_prefix", ["", "file://"])
def test_pdf_corpus_accepts_fsspec_uris(pdf_corpus, uri_prefix):
    sample = load_pdf_sample(uri_prefix + str(pdf_corpus), sample_pages=1, dpi=36)
    assert len(sample.pages) == 1 and sample.pages[0].reference


def test_omnidocbench_limit_takes_the_head_or_a_seeded_sample(omnidocbench_folder):
    assert [p.page_id for p in load_omnidocbench(omnidocbench_folder, limit=1).pages] == ["page_one.png"]
    picks = {
        tuple(p.page_id for p in load_omnidocbench(omnidocbench_folder, limit=1, seed=s).pages)
        for s in range(20)
    }
    assert picks == {("page_one.png",), ("page_two.png",)}
