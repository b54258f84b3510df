"""The hostile corpus does to a plain PyMuPDF renderer what its expectations say (so pipeline tests built
on it test the pipeline, not a corpus that drifted with a MuPDF upgrade)."""

from __future__ import annotations

import functools

import pytest

from .hostile_pdfs import Case, adler32_repeat, healthy_cases, hostile_cases, matches_reason
from .probe_pdf import ProbeResult, probe

# Render budget for the time bombs, counted from the probe child's "ready" (after its PyMuPDF import, as the
# pipeline's render timeout counts from its child's start): well under what they take (measured 16 s and
# "never").
BOMB_TIMEOUT_S = 6.0


@functools.cache
def corpus() -> dict[str, Case]:
    return {c.name: c for c in hostile_cases() + healthy_cases(1)}


@functools.cache
def all_probed() -> dict[str, ProbeResult]:
    """Every case probed once, four children at a time (each child mostly waits on its import or a bomb)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(case: Case) -> ProbeResult:
        timeout = BOMB_TIMEOUT_S if case.expect.error_pages.get(0) == "render_limit" else 30.0
        return probe(case.data, timeout_s=timeout, mem_limit_mb=2048)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(corpus(), pool.map(one, corpus().values()), strict=True))


def probed(name: str) -> ProbeResult:
    return all_probed()[name]


def test_corpus_is_small_and_cheap_to_build() -> None:
    sizes = {name: len(case.data) for name, case in corpus().items()}
    assert max(sizes.values()) < 1_100_000, sizes  # the 100,000-page file included
    assert sizes["inflate_bomb"] < 20_000 and sizes["endless_content"] < 20_000


def test_adler32_repeat_matches_zlib() -> None:
    import zlib

    for chunk in (b"x", b" " * 999, bytes(range(256)) * 3):
        for repeats in (1, 2, 5, 64, 333):
            assert adler32_repeat(chunk, repeats) == zlib.adler32(chunk * repeats)


@pytest.mark.parametrize("name", ["truncated", "random_bytes"])
def test_unopenable_files_fail_to_open(name: str) -> None:
    result = probed(name)
    assert not result.opened and result.open_error, result


def test_png_under_a_pdf_name_opens_as_an_image_not_a_pdf() -> None:
    # PyMuPDF sniffs content even with filetype="pdf": a pipeline must check is_pdf itself.
    result = probed("png_named_pdf")
    assert result.opened and not result.is_pdf and result.page_count == 1


@pytest.mark.parametrize("name", ["truncated_tail", "broken_xref", "wrong_header", "image_bomb", "healthy_0"])
def test_repairable_files_open_with_all_pages_and_render(name: str) -> None:
    result, expect = probed(name), corpus()[name].expect
    assert result.opened and result.is_pdf and result.page_count == expect.page_count, result
    assert result.renders and all(r["ok"] and r["seconds"] < 5 for r in result.renders), result.renders


def test_encrypted_file_needs_a_password() -> None:
    assert probed("encrypted").needs_pass


def test_zero_page_file_opens_with_no_pages() -> None:
    result = probed("zero_pages")
    assert result.opened and result.page_count == 0 and not result.renders


def test_many_pages_file_opens_quickly_with_all_pages() -> None:
    # The renderer itself does not refuse it: capping pages per document is the pipeline's job.
    result = probed("many_pages")
    assert result.page_count == 100_000 and result.open_s < 2.0 and result.renders[0]["ok"]


def test_huge_page_fails_alone_and_fast() -> None:
    result = probed("huge_page")
    ok, huge = result.renders
    assert ok["ok"] and not huge["ok"] and huge["seconds"] < 2.0
    assert matches_reason("too_large", huge["error"]), huge


@pytest.mark.parametrize("name", ["inflate_bomb", "endless_content"])
def test_time_bombs_outlast_a_render_budget_without_eating_memory(name: str) -> None:
    result = probed(name)
    assert not result.start_timed_out, result
    assert result.opened and result.page_count == 1, result
    assert result.timed_out and not result.renders, result
    assert result.peak_rss_mb < 1024, result
