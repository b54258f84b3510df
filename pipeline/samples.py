"""Sample PDFs generated in code: the embedded default job's input and the tests' fixtures.
Healthy documents (headings, paragraphs, a table) plus the broken kinds the pipeline must survive."""

from __future__ import annotations

import random
from pathlib import Path

_WORDS = [
    "ledger",
    "invoice",
    "optical",
    "token",
    "pruning",
    "transport",
    "retention",
    "page",
    "model",
    "render",
    "actor",
    "batch",
    "storage",
    "prefix",
    "commit",
    "parquet",
    "schema",
    "cost",
    "budget",
    "cluster",
    "node",
    "hour",
    "second",
]


def _paragraph(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _table(page, rng: random.Random, top: float) -> None:
    x0, col_w, row_h = 72, 120, 20
    for r in range(4):
        for c in range(3):
            rect = (x0 + c * col_w, top + r * row_h, x0 + (c + 1) * col_w, top + (r + 1) * row_h)
            page.draw_rect(rect, color=(0, 0, 0), width=0.6)
            cell = "Item" if r == 0 else f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"
            page.insert_text((rect[0] + 4, rect[1] + 14), cell, fontsize=10)


def sample_pdf_bytes(pages: int, seed: int = 0) -> bytes:
    """A text document: each page has a heading, two paragraphs and a small table."""
    import pymupdf

    rng = random.Random(seed)
    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page(width=595, height=842)  # A4 in points
        page.insert_text((72, 80), f"Section {i + 1}: {rng.choice(_WORDS).title()} report", fontsize=18)
        box = pymupdf.Rect(72, 100, 523, 400)
        page.insert_textbox(box, _paragraph(rng, 60) + "\n\n" + _paragraph(rng, 50), fontsize=11)
        _table(page, rng, 420)
    return doc.tobytes(garbage=3, deflate=True)


def encrypted_pdf_bytes() -> bytes:
    import pymupdf

    doc = pymupdf.open(stream=sample_pdf_bytes(1), filetype="pdf")
    return doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="user-pw", owner_pw="owner-pw")


def corrupt_pdf_bytes() -> bytes:
    """A PDF header followed by garbage: PyMuPDF cannot repair it into a document with pages."""
    return b"%PDF-1.7\n" + bytes(random.Random(7).getrandbits(8) for _ in range(2048))


def empty_pdf_bytes() -> bytes:
    """A well-formed PDF with zero pages (PyMuPDF refuses to save one, so it is written by hand)."""
    objs = [b"<</Type/Catalog/Pages 2 0 R>>", b"<</Type/Pages/Kids[]/Count 0>>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 3\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<</Size 3/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def noisy_pdf_bytes(image_px: int = 600, seed: int = 1) -> bytes:
    """One page carrying an incompressible image: a large file for byte-cap tests."""
    import pymupdf

    rng = random.Random(seed)
    samples = bytes(rng.getrandbits(8) for _ in range(image_px * image_px * 3))
    pix = pymupdf.Pixmap(pymupdf.csRGB, image_px, image_px, samples, False)
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(page.rect, pixmap=pix)
    return doc.tobytes(deflate=True)


def pathological_pdf_bytes(strokes: int = 20000) -> bytes:
    """One page whose content stream draws `strokes` long lines: small file, slow rasterization
    (tens of seconds at 144 dpi on a shared CPU), the way some CAD exports stall renderers."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((10, 10), "x")
    ops = "".join(
        f"{i % 600} {(i * 7) % 800} m {(i * 13) % 600} {(i * 3) % 800} l S\n" for i in range(strokes)
    )
    doc.update_stream(page.get_contents()[0], ops.encode())
    return doc.tobytes(deflate=True)


def write_samples(
    folder: str | Path, documents: int = 4, pages_per_doc: tuple[int, ...] = (1, 2, 3)
) -> dict[str, int]:
    """Write `documents` healthy PDFs into folder; returns {file name: page count}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for i in range(documents):
        pages = pages_per_doc[i % len(pages_per_doc)]
        name = f"sample-{i:03d}.pdf"
        (folder / name).write_bytes(sample_pdf_bytes(pages, seed=i))
        counts[name] = pages
    return counts


def scanned_pdf_bytes(pages: int, seed: int = 0, dpi: int = 100) -> bytes:
    """A scanned document: each page of sample_pdf_bytes(pages, seed) as a grey JPEG image filling the page,
    with no text layer (what a scanner without OCR writes). The page router sends such pages to OCR."""
    import pymupdf

    source = pymupdf.open(stream=sample_pdf_bytes(pages, seed=seed), filetype="pdf")
    doc = pymupdf.open()
    for src in source:
        pix = src.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY)
        page = doc.new_page(width=src.rect.width, height=src.rect.height)
        page.insert_image(page.rect, stream=pix.tobytes("jpeg", jpg_quality=75))
    return doc.tobytes(garbage=3, deflate=True)
