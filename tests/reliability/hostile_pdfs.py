"""A corpus of hostile and healthy PDFs, generated in code. Each case says what a correct pipeline does.

The expectations come from running each file through plain PyMuPDF in a capped child process
(see probe_pdf.py and docs/reliability.md): MuPDF silently repairs some damage (broken xref, a junk
header), so those files are expected to come through, not to fail.
"""

from __future__ import annotations

import io
import random
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Reason classes a pipeline's error text is matched against (lower-case substrings, any one suffices).
# They are deliberately broad: the tests pin the *class* of failure, not the exact wording.
REASONS: dict[str, tuple[str, ...]] = {
    "unreadable": ("open", "pdf", "damaged", "corrupt", "format", "syntax", "xref", "trailer", "broken"),
    "encrypted": ("encrypt", "password"),
    "no_pages": ("no pages", "zero pages", "0 pages", "empty"),
    "too_many_pages": ("pages", "too many", "page_count", "max_pages"),
    "too_large": ("pixel", "too large", "size", "memory", "dimension", "limit"),
    "render_limit": ("timeout", "timed out", "time", "memory", "killed", "limit", "pixel", "too large"),
}


@dataclass(frozen=True)
class Expect:
    """What a correct pipeline does with a document.

    page_count: pages the document really has (None: it cannot be opened at all, one document-level
    error row is expected). error_pages: page index -> reason class for pages that must become error
    rows; -1 means the whole document fails with that reason. Pages not listed must come out ok.
    """

    page_count: int | None
    error_pages: dict[int, str] = field(default_factory=dict)
    # Pages that may come out either ok or as errors of this reason: a policy choice of the pipeline
    # (a huge page may be refused, or rendered at a lower dpi to fit a pixel cap).
    may_fail: dict[int, str] = field(default_factory=dict)

    @property
    def doc_error(self) -> str | None:
        return self.error_pages.get(-1)


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expect: Expect
    note: str  # why this file is hostile, for docs and failure messages


# --- hand-written PDF assembly ------------------------------------------------------------------------------


def assemble_pdf(objects: Sequence[bytes], root: int = 1, header: bytes = b"%PDF-1.7") -> bytes:
    """Serialise object bodies (object i+1 = objects[i]) with a correct xref table and trailer."""
    out = io.BytesIO()
    out.write(header + b"\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref_at = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(
        b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref_at)
    )
    return out.getvalue()


def stream_obj(data: bytes, extra: bytes = b"", filters: int = 0) -> bytes:
    """A stream object body; `filters` times FlateDecode (nested compression is what makes bombs tiny)."""
    for _ in range(filters):
        data = zlib.compress(data, 9)
    names = b" ".join([b"/FlateDecode"] * filters)
    filt = b" /Filter [%s]" % names if filters else b""
    return b"<< /Length %d%s %s >>\nstream\n" % (len(data), filt, extra) + data + b"\nendstream"


def _font_obj() -> bytes:
    return b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


# --- healthy documents (PyMuPDF writes them, so they are as ordinary as it gets) ---------------------------


def healthy_pdf(pages: int = 3, tag: str = "healthy", size_pt: tuple[float, float] = (595, 842)) -> bytes:
    import pymupdf

    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page(width=size_pt[0], height=size_pt[1])
        page.insert_text((72, 72), f"{tag} document, page {i + 1} of {pages}", fontsize=14)
        page.insert_text((72, 100), "The quick brown fox jumps over the lazy dog. 0123456789", fontsize=11)
    data = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return data


# --- hostile documents ---------------------------------------------------------------------------------------


def truncated_pdf() -> bytes:
    """A healthy file cut just before its first content stream: no page content, no xref, no trailer."""
    data = healthy_pdf(3, "truncated")
    return data[: data.index(b"/Length")]


def truncated_tail_pdf() -> bytes:
    """A healthy file cut at 55%: MuPDF rebuilds the page tree and opens it with all pages, the later
    ones silently blank (the damage shows only as a MuPDF warning)."""
    data = healthy_pdf(3, "truncatedtail")
    return data[: len(data) * 55 // 100]


def broken_xref_pdf() -> bytes:
    """Every xref offset points at the wrong place and startxref points past the end of the file."""
    data = healthy_pdf(2, "brokenxref")
    scrambled = re.sub(
        rb"\d{10} (\d{5} [nf])", lambda m: b"%010d " % (int(m.group(0)[:10]) * 7 + 3) + m.group(1), data
    )
    start = scrambled.rindex(b"startxref")
    return scrambled[:start] + b"startxref\n%d\n%%%%EOF\n" % (len(data) * 10)


def wrong_header_pdf() -> bytes:
    """Claims to be PostScript: the %PDF- marker is gone, everything else is intact."""
    data = healthy_pdf(2, "wrongheader")
    return b"%!PS-Adobe-3.0" + data[len(b"%PDF-1.7") :]


def encrypted_pdf(password: str = "s3cret-user-pw") -> bytes:
    import pymupdf

    doc = pymupdf.open("pdf", healthy_pdf(2, "encrypted"))
    data = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=password, owner_pw=password + "-owner")
    doc.close()
    return data


def zero_pages_pdf() -> bytes:
    """Hand-written: PyMuPDF refuses to save a document without pages."""
    return assemble_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"])


def many_pages_pdf(pages: int = 100_000) -> bytes:
    """`pages` pages sharing one content stream. Page objects and the page tree live in compressed
    object streams, so the file stays small; MuPDF must still build a page tree of `pages` entries."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % (4 + i) for i in range(pages)), pages),
        stream_obj(b"BT /F1 24 Tf 72 720 Td (one of many pages) Tj ET", filters=1),
    ]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R >>"] * pages
    return assemble_packed_pdf(objects)


def page_count_lie_pdf(claimed: int = 1500) -> bytes:
    """One real page under a page tree whose /Count claims `claimed`: MuPDF refuses to count its pages."""
    return assemble_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [4 0 R] /Count %d >>" % claimed,
            stream_obj(b"BT /F1 24 Tf 72 720 Td (the one real page) Tj ET"),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R >>",
        ]
    )


def assemble_packed_pdf(objects: Sequence[bytes], per_stream: int = 1000) -> bytes:
    """Like assemble_pdf, but every non-stream object goes into a compressed object stream, with a
    cross-reference stream (a classic xref table cannot point into object streams). Object 1 is the root."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    packed = [n for n, body in enumerate(objects, start=1) if b"stream" not in body]
    first_stream = len(objects) + 1
    entries: dict[int, tuple[int, int, int]] = {0: (0, 0, 0xFFFF)}  # number -> (type, field2, field3)
    for number, body in enumerate(objects, start=1):
        if b"stream" in body:
            entries[number] = (1, out.tell(), 0)
            out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    for s, at in enumerate(range(0, len(packed), per_stream)):
        numbers, index, data, pos = packed[at : at + per_stream], [], [], 0
        for k, n in enumerate(numbers):
            entries[n] = (2, first_stream + s, k)
            index.append(b"%d %d" % (n, pos))
            data.append(objects[n - 1] + b" ")
            pos += len(objects[n - 1]) + 1
        head = b" ".join(index) + b" "
        entries[first_stream + s] = (1, out.tell(), 0)
        extra = b"/Type /ObjStm /N %d /First %d" % (len(numbers), len(head))
        out.write(
            b"%d 0 obj\n" % (first_stream + s) + stream_obj(head + b"".join(data), extra, 1) + b"\nendobj\n"
        )
    xref_no, xref_at = len(entries), out.tell()
    entries[xref_no] = (1, xref_at, 0)
    rows = b"".join(
        t.to_bytes(1, "big") + a.to_bytes(4, "big") + b.to_bytes(2, "big")
        for _, (t, a, b) in sorted(entries.items())
    )
    extra = b"/Type /XRef /Size %d /W [1 4 2] /Root 1 0 R" % len(entries)
    out.write(b"%d 0 obj\n" % xref_no + stream_obj(rows, extra, 1) + b"\nendobj\n")
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref_at)
    return out.getvalue()


def huge_page_pdf(side_pt: int = 20_000) -> bytes:
    """Page 0 is ordinary; page 1 is side_pt x side_pt points (at 144 dpi: 40,000 px square, 4.8 GB RGB)."""
    import pymupdf

    doc = pymupdf.open("pdf", healthy_pdf(1, "hugepage"))
    page = doc.new_page(width=side_pt, height=side_pt)
    page.insert_text((72, 72), "a very large page", fontsize=400)
    data = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return data


def inflate_bomb_pdf(inflated_bytes: int = 2 << 30) -> bytes:
    """A page whose content stream is FlateDecode applied twice to `inflated_bytes` of spaces:
    a few KB on disk, gigabytes once decoded (spaces are valid content: a renderer must read them all)."""
    return assemble_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            _double_deflate_stream(b" " * (1 << 20), inflated_bytes >> 20),
        ]
    )


def _double_deflate_stream(chunk: bytes, repeats: int, extra: bytes = b"") -> bytes:
    """Stream of chunk * repeats, FlateDecode twice, built without compressing the inflated bytes:
    a full flush makes the compressed chunk a self-contained run of deflate blocks, so it can be
    repeated; only the Adler-32 checksum has to walk the (virtual) inflated data."""
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = raw.compress(chunk) + raw.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    adler = adler32_repeat(chunk, repeats)
    once = b"\x78\xda" + block * repeats + final + adler.to_bytes(4, "big")
    twice = zlib.compress(once, 9)
    head = b"<< /Length %d /Filter [/FlateDecode /FlateDecode] %s >>\nstream\n" % (len(twice), extra)
    return head + twice + b"\nendstream"


def adler32_combine(first: int, second: int, second_len: int) -> int:
    """Adler-32 of A+B from adler(A), adler(B) and len(B) (zlib's adler32_combine, which Python lacks)."""
    base, rem = 65521, second_len % 65521
    sum1 = first & 0xFFFF
    sum2 = (rem * sum1) % base
    sum1 = (sum1 + (second & 0xFFFF) + base - 1) % base
    sum2 = (sum2 + (first >> 16) + (second >> 16) + base - rem) % base
    return sum1 | (sum2 << 16)


def adler32_repeat(chunk: bytes, repeats: int) -> int:
    """Adler-32 of chunk * repeats in O(log repeats) combines instead of reading gigabytes."""
    result, result_len = 1, 0
    power, power_len = zlib.adler32(chunk), len(chunk)
    while repeats:
        if repeats & 1:
            result, result_len = adler32_combine(result, power, power_len), result_len + power_len
        power, power_len = adler32_combine(power, power, power_len), power_len * 2
        repeats >>= 1
    return result


def image_bomb_pdf(side_px: int = 100_000) -> bytes:
    """An image XObject declaring side_px x side_px RGB pixels (30 GB decoded) from a few KB of data,
    drawn over the whole page: a renderer that decodes it at full size runs out of memory."""
    row = b"\x00" * (side_px * 3)
    image = _double_deflate_stream(
        row,
        16,  # only the first rows exist: the decoder must still size the full image
        b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8"
        % (side_px, side_px),
    )
    return assemble_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /XObject << /Im0 5 0 R >> >> >>",
            stream_obj(b"q 612 0 0 792 0 0 cm /Im0 Do Q"),
            image,
        ]
    )


def endless_content_pdf(fanout: int = 16, depth: int = 7) -> bytes:
    """Nested form XObjects, each drawing the next one `fanout` times: a file of a few KB whose page
    costs fanout**depth fills (16**7 = 268 million) to render."""
    forms_start = 5
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /XObject << /F0 %d 0 R >> >> >>" % forms_start,
        stream_obj(b"/F0 Do"),
    ]
    draw_next = b" ".join([b"/Fn Do"] * fanout)
    for level in range(depth):
        nxt = forms_start + level + 1
        res = b"/Resources << /XObject << /Fn %d 0 R >> >>" % nxt
        objects.append(stream_obj(draw_next, b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] " + res))
    leaf = b"0.5 g 10 10 500 700 re f 0 0 1 rg 20 20 300 300 re f"
    objects.append(stream_obj(leaf, b"/Type /XObject /Subtype /Form /BBox [0 0 612 792]"))
    return assemble_pdf(objects)


def png_as_pdf() -> bytes:
    """A real PNG image (PyMuPDF would happily open it as a one-page image document if asked to guess)."""
    import pymupdf

    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 64, 64), False)
    pix.clear_with(200)
    return pix.tobytes("png")


def random_bytes_pdf(n: int = 50_000, seed: int = 6) -> bytes:
    return random.Random(seed).randbytes(n)


# --- the corpus ----------------------------------------------------------------------------------------------

_HOSTILE: list[tuple[str, Callable[[], bytes], Expect, str]] = [
    ("truncated", truncated_pdf, Expect(None, {-1: "unreadable"}), "cut before the first content stream"),
    ("truncated_tail", truncated_tail_pdf, Expect(3), "cut at 55%; MuPDF repairs it, last page blank"),
    ("broken_xref", broken_xref_pdf, Expect(2), "xref offsets scrambled; MuPDF repairs it"),
    ("wrong_header", wrong_header_pdf, Expect(2), "%PDF- header replaced by %!PS; MuPDF repairs it"),
    ("encrypted", encrypted_pdf, Expect(None, {-1: "encrypted"}), "AES-256 with a user password"),
    ("zero_pages", zero_pages_pdf, Expect(0, {-1: "no_pages"}), "valid structure, empty page tree"),
    ("many_pages", many_pages_pdf, Expect(100_000, {-1: "too_many_pages"}), "100,000 pages in ~1 MB"),
    ("huge_page", huge_page_pdf, Expect(2, may_fail={1: "too_large"}), "page 1 is 20,000 x 20,000 pt"),
    ("inflate_bomb", inflate_bomb_pdf, Expect(1, {0: "render_limit"}), "5 KB content stream -> 2 GiB"),
    ("image_bomb", image_bomb_pdf, Expect(1), "image declares 100,000 x 100,000 px; MuPDF subsamples"),
    ("endless_content", endless_content_pdf, Expect(1, {0: "render_limit"}), "16**7 nested form fills"),
    ("png_named_pdf", png_as_pdf, Expect(None, {-1: "unreadable"}), "PNG bytes under a .pdf name"),
    ("random_bytes", random_bytes_pdf, Expect(None, {-1: "unreadable"}), "50 KB of random bytes"),
    ("page_count_lie", page_count_lie_pdf, Expect(None, {-1: "unreadable"}), "/Count 1500, one real page"),
]


def hostile_cases(names: Sequence[str] | None = None) -> list[Case]:
    """Build the hostile corpus (or the named part of it). Takes a few seconds: the bombs compress GBs."""
    chosen = [c for c in _HOSTILE if names is None or c[0] in names]
    return [Case(name, make(), expect, note) for name, make, expect, note in chosen]


def healthy_cases(count: int = 2, pages: int = 2) -> list[Case]:
    return [
        Case(f"healthy_{i}", healthy_pdf(pages, f"healthy-{i}"), Expect(pages), "ordinary text pages")
        for i in range(count)
    ]


def matches_reason(reason: str, error_text: str) -> bool:
    """True when an error message belongs to a reason class (see REASONS)."""
    text = error_text.lower()
    return any(word in text for word in REASONS[reason])


def sliver_page_pdf(length_pt: float = 20_000, thickness_pt: float = 1.0) -> bytes:
    """Page 0 ordinary, page 1 a length_pt x thickness_pt sliver: it renders (40,000 x 2 px at 144 dpi), but
    an image processor that keeps the aspect ratio scales its short side to zero pixels. (Thinner than
    1 pt does not work: MuPDF renders such a page as 2 x 2 px.)"""
    import pymupdf

    doc = pymupdf.open("pdf", healthy_pdf(1, "sliver", size_pt=(300, 300)))
    doc.new_page(width=length_pt, height=thickness_pt)
    data = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return data
