"""Test data generated in code: born-digital PDFs and OmniDocBench-format annotations."""

from __future__ import annotations

from pathlib import Path

PDF_LINES = [
    ["Quarterly report", "Revenue grew 12 percent.", "Costs fell."],
    ["Appendix A", "Table of figures", "Page two text."],
    ["Minutes of the meeting", "Attendees: Ada, Grace"],
]


def write_born_digital_pdfs(folder: Path, docs: int = 2, pages_per_doc: int = 2) -> list[Path]:
    """Small PDFs with a real text layer: page p of document d shows PDF_LINES[(d + p) % 3]."""
    import pymupdf

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for d in range(docs):
        doc = pymupdf.open()
        for p in range(pages_per_doc):
            page = doc.new_page(width=300, height=400)
            for i, line in enumerate(PDF_LINES[(d + p) % len(PDF_LINES)]):
                page.insert_text((30, 50 + 20 * i), line, fontsize=11)
        path = folder / f"doc{d}.pdf"
        doc.save(path)
        doc.close()
        paths.append(path)
    return paths


def _block(anno_id, category, order, **fields):
    return {
        "anno_id": anno_id,
        "category_type": category,
        "order": order,
        "ignore": False,
        "poly": [0, 0, 10, 0, 10, 10, 0, 10],
        **fields,
    }


def omnidocbench_records() -> list[dict]:
    """Two annotated pages. Blocks are listed out of reading order on purpose; page 1 has a paragraph
    split in two truncated pieces, page furniture, an ignored block and a block without order."""
    page1 = {
        "page_info": {"image_path": "data/page_one.png", "page_no": 0, "width": 200, "height": 100},
        "layout_dets": [
            _block("a3", "text_block", 3, text="continues here."),
            _block("a1", "title", 1, text="Results"),
            _block("a2", "text_block", 2, text="The paragraph "),
            _block("a0", "header", 0, text="Journal of Tests"),
            _block(
                "a4",
                "table",
                4,
                html="<table><tr><td>x</td><td>1</td></tr></table>",
                latex="\\begin{tabular}",
            ),
            _block("a5", "page_number", 5, text="7"),
            {**_block("a6", "text_block", 6, text="watermark"), "ignore": True},
            _block("a7", "text_block", None, text="no order"),
        ],
        "extra": {
            "relation": [{"source_anno_id": "a2", "target_anno_id": "a3", "relation_type": "truncated"}]
        },
    }
    page2 = {
        "page_info": {"image_path": "page_two.png", "page_no": 1, "width": 200, "height": 100},
        "layout_dets": [
            _block("b1", "equation_isolated", 1, latex="E = mc^2"),
            _block("b0", "text_block", 0, text="Second page."),
            _block("b2", "figure", 2),
        ],
        "extra": {"relation": []},
    }
    return [page1, page2]
