"""Evaluation pages: (page image, reference text or None) from an OmniDocBench folder or a PDF corpus.

OmniDocBench format: one JSON file holding a list of pages, each with `page_info.image_path` and
`layout_dets` (blocks with `category_type`, `order`, `ignore`, `anno_id`, and `text`, `html` or `latex`),
plus `extra.relation` entries of type "truncated" that link the pieces of a block split by the layout
(e.g. a paragraph continued in the next column). The page reference is assembled in reading order, the
way OmniDocBench's own markdown export does it:
- blocks with no `order`, with `ignore: true`, or in `EXCLUDED_CATEGORIES` (page furniture and figures,
  which carry no page text a reader wants) are left out;
- a table contributes its `html` (the metric reduces it to cell text), a display formula its `latex`,
  every other block its `text`;
- truncated pieces are joined without a separator at the position of their first piece; blocks are
  separated by a blank line (whitespace, which the metric folds).

PDF corpora: born-digital PDFs carry a text layer; PyMuPDF's `get_text(sort=True)` is the reference of
the rendered page image. A page whose text layer is empty (a scan) gets reference None: it still counts
for agreement with the unpruned model, not for accuracy.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

EXCLUDED_CATEGORIES = frozenset({"abandon", "figure", "header", "footer", "page_number", "page_footnote"})


@dataclass(frozen=True)
class EvalPage:
    page_id: str  # "<document>#p<index>" for PDFs, the image file name for OmniDocBench
    image: Image
    reference: str | None  # None: no ground truth for this page


@dataclass
class PageSample:
    pages: list[EvalPage]
    # Documents that could not be read, with why: reported, never silently dropped.
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _block_text(block: dict[str, Any]) -> str:
    if block.get("category_type") == "table":
        return block.get("html") or block.get("latex") or block.get("text") or ""
    if block.get("category_type") == "equation_isolated":
        return block.get("latex") or block.get("text") or ""
    return block.get("text") or ""


def _truncated_groups(page: dict[str, Any]) -> list[set[str]]:
    """Union the "truncated" relations into groups of anno_ids (a paragraph may span three blocks)."""
    groups: list[set[str]] = []
    for rel in (page.get("extra") or {}).get("relation", []):
        if rel.get("relation_type") != "truncated":
            continue
        pair = {rel["source_anno_id"], rel["target_anno_id"]}
        touching = [g for g in groups if g & pair]
        merged = pair.union(*touching)
        groups = [g for g in groups if not g & pair] + [merged]
    return groups


def omnidocbench_reference(page: dict[str, Any], excluded: Iterable[str] = EXCLUDED_CATEGORIES) -> str:
    """One OmniDocBench page annotation -> its page-level reference text (rules in the module doc)."""
    excluded = frozenset(excluded)
    blocks = [
        b
        for b in page.get("layout_dets", [])
        if b.get("order") is not None and not b.get("ignore") and b.get("category_type") not in excluded
    ]
    blocks.sort(key=lambda b: b["order"])
    group_of = {aid: i for i, g in enumerate(_truncated_groups(page)) for aid in g}
    pieces: list[str] = []
    seen_groups: dict[int, int] = {}  # group -> index in pieces of its first block
    for block in blocks:
        group = group_of.get(block.get("anno_id"))
        if group is None:
            pieces.append(_block_text(block))
        elif group in seen_groups:
            pieces[seen_groups[group]] += _block_text(block)
        else:
            seen_groups[group] = len(pieces)
            pieces.append(_block_text(block))
    return "\n\n".join(p for p in pieces if p)


def _find_annotation_file(folder: Path) -> Path:
    candidates = sorted(folder.glob("*.json"))
    if len(candidates) != 1:
        raise ValueError(
            f"expected one annotation JSON in {folder}, found {[c.name for c in candidates]}; "
            "pass annotation_file"
        )
    return candidates[0]


def load_omnidocbench(
    folder: str | Path,
    *,
    annotation_file: str | Path | None = None,
    limit: int | None = None,
    seed: int | None = None,
    excluded: Iterable[str] = EXCLUDED_CATEGORIES,
) -> PageSample:
    """An OmniDocBench-format folder (the annotation JSON, page images in `images/` or beside it) ->
    pages with references, in annotation order. With `limit`, the first `limit` pages, or with a `seed`
    a seeded random `limit` of them (the annotation file is grouped by document type, so its head is
    not a fair pilot sample). Pages whose image is missing are reported as skipped."""
    from PIL import Image

    folder = Path(folder)
    annotation = Path(annotation_file) if annotation_file else _find_annotation_file(folder)
    records = json.loads(annotation.read_text(encoding="utf-8"))
    if limit is not None and seed is not None and limit < len(records):
        records = [records[i] for i in sorted(random.Random(seed).sample(range(len(records)), limit))]
    sample = PageSample(pages=[])
    for record in records[:limit] if limit is not None else records:
        name = Path(record["page_info"]["image_path"]).name
        path = next((p for p in (folder / "images" / name, folder / name) if p.exists()), None)
        if path is None:
            sample.skipped.append((name, "image not found"))
            continue
        with Image.open(path) as img:
            image = img.convert("RGB")
        sample.pages.append(EvalPage(name, image, omnidocbench_reference(record, excluded)))
    return sample


def render_pdf_pages(
    pdf_bytes: bytes, doc_name: str, page_indices: Iterable[int], dpi: int
) -> list[EvalPage]:
    """Render the chosen pages of one PDF and take each page's text layer as its reference."""
    import pymupdf
    from PIL import Image

    pages: list[EvalPage] = []
    with pymupdf.open(stream=pdf_bytes, filetype="pdf") as doc:
        for index in page_indices:
            page = doc[index]
            pix = page.get_pixmap(dpi=dpi, alpha=False)
            image = Image.frombytes("RGB", (pix.width, pix.height), pix.samples)
            text = page.get_text("text", sort=True)
            pages.append(EvalPage(f"{doc_name}#p{index}", image, text if text.strip() else None))
    return pages


def list_pdfs(uri: str) -> list[str]:
    """All PDFs under a local folder or fsspec URI (or the one PDF it names), as fsspec paths, sorted."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(uri)
    if root.lower().endswith(".pdf"):
        return [root]
    return sorted(p for p in fs.find(root) if p.lower().endswith(".pdf"))


def _pdf_page_count(pdf_bytes: bytes) -> int:
    import pymupdf

    with pymupdf.open(stream=pdf_bytes, filetype="pdf") as doc:
        return doc.page_count


def load_pdf_sample(
    uri: str, *, sample_pages: int, max_pages_per_doc: int = 2, seed: int = 0, dpi: int = 144
) -> PageSample:
    """A reproducible page sample of a PDF corpus: documents in a seeded random order, at most
    `max_pages_per_doc` random pages from each (so one long report cannot dominate), until
    `sample_pages` pages are collected. Documents that cannot be opened are reported as skipped."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(uri)
    rng = random.Random(seed)
    paths = list_pdfs(uri)
    rng.shuffle(paths)
    sample = PageSample(pages=[])
    for path in paths:
        if len(sample.pages) >= sample_pages:
            break
        try:
            data = fs.cat_file(path)
            count = _pdf_page_count(data)
            take = min(count, max_pages_per_doc, sample_pages - len(sample.pages))
            indices = sorted(rng.sample(range(count), take))
            name = path[len(root) :].lstrip("/") or Path(path).name  # relative: same names in two folders
            sample.pages.extend(render_pdf_pages(data, name, indices, dpi))
        except Exception as exc:  # any unreadable document is reported and the sample goes on
            sample.skipped.append((path, f"{type(exc).__name__}: {exc}"))
    return sample
