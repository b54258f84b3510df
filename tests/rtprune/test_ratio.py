"""Dynamic retention: redundancy, textual density and our combination of the two."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rtprune_pages import grid_page

from rtprune import PruneConfig, prune
from rtprune.ratio import box_fractions, dynamic_retention, grid_boxes, redundancy, strong_edges, text_density


def test_redundancy_equals_the_brute_force_mean_when_all_tokens_are_anchors():
    torch.manual_seed(0)
    x = torch.randn(30, 12) + 0.5
    xn = torch.nn.functional.normalize(x, dim=1)
    sim = (xn @ xn.T).square()
    brute = (sim.sum() - sim.diag().sum()) / (30 * 29)
    assert redundancy(x, anchors=64) == pytest.approx(float(brute), rel=1e-5)


def test_redundancy_extremes():
    assert redundancy(torch.ones(10, 4)) == pytest.approx(1.0, abs=1e-6)
    assert redundancy(torch.eye(8)) == pytest.approx(0.0, abs=1e-7)
    assert redundancy(torch.zeros(5, 3)) == 0.0  # zero vectors resemble nothing
    assert redundancy(torch.ones(1, 3)) == 0.0


def test_redundancy_grows_as_tokens_share_more_of_a_common_direction():
    torch.manual_seed(1)
    noise, common = torch.randn(200, 64), torch.randn(64)
    values = [redundancy(noise + s * common) for s in (0.0, 0.5, 1.0, 3.0)]
    assert values == sorted(values) and values[-1] > 0.8 and values[0] < 0.05


def test_strong_edges_finds_the_outline_of_ink():
    img = torch.ones(10, 10)
    img[3:6, 3:6] = 0.0
    edges = strong_edges(img, 0.25)
    assert edges.sum() > 0 and not edges[0].any() and not edges[:, 0].any()
    assert not strong_edges(torch.full((10, 10), 0.3), 0.25).any()


def test_box_fractions_match_direct_counting_and_skip_nan_boxes():
    gen = torch.Generator().manual_seed(2)
    edges = torch.rand(40, 50, generator=gen) > 0.7
    boxes = torch.tensor([[0, 0, 10, 10], [5.5, 3.2, 20.1, 17.9], [float("nan")] * 4, [45, 35, 60, 60]])
    frac = box_fractions(edges, boxes, block=1)
    assert frac[0] == pytest.approx(edges[:10, :10].double().mean().item())
    assert frac[1] == pytest.approx(
        edges[3:18, 6:20].double().mean().item()
    )  # sides round to the nearest pixel
    assert torch.isnan(frac[2])
    assert frac[3] == pytest.approx(edges[35:40, 45:50].double().mean().item())


def test_block_snapped_fractions_are_exact_on_aligned_boxes_and_close_otherwise():
    gen = torch.Generator().manual_seed(3)
    edges = torch.rand(100, 90, generator=gen) > 0.6
    aligned = torch.tensor([[0, 0, 64, 64], [16, 8, 88, 100], [80, 96, 90, 100]], dtype=torch.float32)
    torch.testing.assert_close(box_fractions(edges, aligned, block=8), box_fractions(edges, aligned, block=1))
    odd = torch.tensor([[3.0, 5.0, 61.0, 70.0]])
    assert abs(float(box_fractions(edges, odd, 8) - box_fractions(edges, odd, 1))) < 0.03


def test_grid_boxes_tile_the_image():
    boxes = grid_boxes(30, 40, 3)
    assert boxes.shape == (9, 4)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum()
    assert float(area) == pytest.approx(1200.0)


def test_text_density_per_token_cell_and_grid_fallback():
    cfg = PruneConfig()
    page = grid_page(6, 10, 8, pad_cols=4)  # 6 of 10 columns have ink
    assert text_density(page.image, cfg, page.token_boxes) == pytest.approx(0.6)
    nan_boxes = torch.full_like(page.token_boxes, float("nan"))
    fallback = text_density(page.image, PruneConfig(density_grid=10), nan_boxes)
    assert fallback == pytest.approx(text_density(page.image, PruneConfig(density_grid=10)))
    assert 0.4 <= fallback <= 0.8
    assert text_density(torch.ones(64, 64), cfg) == 0.0


def test_text_density_rejects_colour_images():
    with pytest.raises(ValueError, match="grayscale"):
        text_density(torch.ones(3, 8, 8), PruneConfig())


@settings(max_examples=40, deadline=None)
@given(
    red=st.floats(0, 1),
    dens=st.floats(0, 1) | st.none(),
    base=st.floats(0.05, 1.0),
    lo=st.floats(0.05, 1.0),
    hi=st.floats(0.05, 1.0),
    wd=st.floats(0, 5),
    wr=st.floats(0, 5),
)
def test_dynamic_ratio_stays_in_bounds(red, dens, base, lo, hi, wd, wr):
    lo, hi = min(lo, hi), max(lo, hi)
    cfg = PruneConfig(
        retention=base, min_retention=lo, max_retention=hi, density_weight=wd, redundancy_weight=wr
    )
    assert lo <= dynamic_retention(cfg, red, dens) <= hi


def test_dynamic_ratio_rises_with_density_and_falls_with_redundancy():
    cfg = PruneConfig(dynamic=True)
    by_density = [dynamic_retention(cfg, 0.45, d) for d in (0.0, 0.2, 0.4, 0.6)]
    by_redundancy = [dynamic_retention(cfg, r, 0.35) for r in (0.2, 0.4, 0.6, 0.8)]
    assert all(a < b for a, b in zip(by_density, by_density[1:], strict=False))
    assert all(a > b for a, b in zip(by_redundancy, by_redundancy[1:], strict=False))
    assert dynamic_retention(cfg, cfg.redundancy_ref, None) == pytest.approx(cfg.retention)


def test_prune_with_dynamic_ratio_keeps_more_of_a_denser_less_redundant_page():
    cfg = PruneConfig(dynamic=True, min_retention=0.3, max_retention=1.0)
    sparse = grid_page(8, 10, 32, seed=0, pad_cols=7)
    dense = grid_page(8, 10, 32, seed=0, pad_cols=0)
    kw = lambda p: dict(padding=p.padding, image=p.image, token_boxes=p.token_boxes)  # noqa: E731
    r_sparse = prune(sparse.tokens, cfg, sparse.protected, **kw(sparse))
    r_dense = prune(dense.tokens, cfg, dense.protected, **kw(dense))
    assert r_dense.density > r_sparse.density and r_dense.redundancy < r_sparse.redundancy
    assert r_dense.retention > r_sparse.retention
    assert r_dense.tokens.shape[0] > r_sparse.tokens.shape[0]
    assert r_sparse.budget == min(80, max(1, round(r_sparse.retention * 80)))


def test_dynamic_ratio_without_image_uses_redundancy_only():
    page = grid_page(4, 6, 16, seed=3)
    result = prune(page.tokens, PruneConfig(dynamic=True), page.protected)
    assert result.density is None and result.redundancy is not None
    assert result.retention == pytest.approx(
        dynamic_retention(PruneConfig(dynamic=True), result.redundancy, None)
    )


def test_default_references_give_synthetic_text_pages_about_the_target_retention():
    from benchmarks.calibrate_ratio import measure

    cfg = PruneConfig(dynamic=True)
    ratios = [dynamic_retention(cfg, r, t) for t, r in (measure(20_000 + s, cfg) for s in range(6))]
    assert abs(sum(ratios) / len(ratios) - cfg.retention) < 0.05
    assert max(ratios) - min(ratios) > 0.02  # the ratio does adapt per page
