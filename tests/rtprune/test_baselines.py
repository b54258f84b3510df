"""What each baseline is meant to do, beyond the shared API properties."""

from __future__ import annotations

import torch
from rtprune_pages import grid_page

from rtprune import PruneConfig, prune
from rtprune.baselines import (
    divprune_select,
    even_pick,
    padding_select,
    random_select,
    spatial_select,
    tome_select,
)


def _kept(sel):
    return sel.keep.nonzero().squeeze(1).tolist()


def test_even_pick_spreads_over_the_order():
    assert even_pick(torch.arange(10), 5).tolist() == [1, 3, 5, 7, 9]
    assert even_pick(torch.arange(4), 9).tolist() == [0, 1, 2, 3]


def test_random_depends_on_the_seed_only():
    prunable = torch.ones(50, dtype=torch.bool)
    assert _kept(random_select(prunable, 20, seed=1)) == _kept(random_select(prunable, 20, seed=1))
    assert _kept(random_select(prunable, 20, seed=1)) != _kept(random_select(prunable, 20, seed=2))


def test_padding_only_drops_padding_first_then_thins_content():
    prunable = torch.ones(10, dtype=torch.bool)
    padding = torch.tensor([False] * 6 + [True] * 4)
    assert _kept(padding_select(prunable, 6, padding)) == list(range(6))
    assert _kept(padding_select(prunable, 8, padding)) == [0, 1, 2, 3, 4, 5, 7, 9]
    assert _kept(padding_select(prunable, 3, padding)) == [1, 3, 5]


def test_spatial_follows_box_centres_not_token_order():
    # token order is column-major; the raster order of the centres is row-major
    boxes = torch.tensor(
        [[c * 10, r * 10, c * 10 + 10, r * 10 + 10] for c in range(4) for r in range(4)], dtype=torch.float32
    )
    prunable = torch.ones(16, dtype=torch.bool)
    kept = _kept(spatial_select(prunable, 8, boxes))
    rows_of_kept = [int(boxes[i, 1] // 10) for i in kept]
    assert sorted(rows_of_kept) == [0, 0, 1, 1, 2, 2, 3, 3]  # two per image row


def test_spatial_without_boxes_falls_back_to_even_token_indices():
    prunable = torch.ones(12, dtype=torch.bool)
    nan_boxes = torch.full((12, 4), float("nan"))
    assert _kept(spatial_select(prunable, 4, None)) == [1, 4, 7, 10]
    assert _kept(spatial_select(prunable, 4, nan_boxes)) == [1, 4, 7, 10]


def test_divprune_picks_one_of_each_cluster_before_any_duplicate():
    centres = torch.eye(4) * 10
    tokens = torch.cat([centres.repeat(5, 1), torch.zeros(0, 4)])  # 20 tokens, 4 directions
    kept = _kept(divprune_select(tokens, torch.ones(20, dtype=torch.bool), 4))
    assert sorted(int(torch.argmax(tokens[i])) for i in kept) == [0, 1, 2, 3]


def test_tome_merges_the_most_similar_pairs_and_conserves_mass():
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randn(8, 16, generator=gen)
    # A = even indices, B = odd: make A 0 ~ B 7 and A 6 ~ B 3 near-duplicates
    tokens[7] = tokens[0] + 1e-3 * torch.randn(16, generator=gen)
    tokens[6] = tokens[3] + 1e-3 * torch.randn(16, generator=gen)
    sel = tome_select(tokens, torch.ones(8, dtype=torch.bool), 6)
    assert _kept(sel) == [1, 2, 3, 4, 5, 7]
    assert sel.merged_index.tolist() == [1, 2, 3, 4, 5, 7]
    assert sel.mass.tolist() == [1, 1, 2, 1, 1, 2]
    merged_sum = (sel.values * sel.mass[:, None]).sum(0)
    torch.testing.assert_close(merged_sum, tokens.sum(0), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(sel.values[2], (tokens[3] + tokens[6]) / 2)


def test_tome_can_remove_more_than_half_over_several_rounds():
    tokens = torch.randn(40, 8)
    sel = tome_select(tokens, torch.ones(40, dtype=torch.bool), 5)
    assert int(sel.keep.sum()) == 5 and float(sel.mass.sum()) == 40.0


def test_padding_baseline_at_the_content_budget_keeps_exactly_the_content():
    page = grid_page(5, 10, 8, pad_cols=3)
    n_content = int((~page.protected & ~page.padding).sum())
    result = prune(
        page.tokens, PruneConfig(method="padding"), page.protected, padding=page.padding, budget=n_content
    )
    assert not page.padding[result.kept_index].any()
    assert result.tokens.shape[0] == n_content + int(page.protected.sum())


def test_divprune_starts_from_the_token_farthest_from_its_nearest_neighbour():
    gen = torch.Generator().manual_seed(1)
    common = torch.randn(16, generator=gen)
    tokens = common + 0.05 * torch.randn(9, 16, generator=gen)
    tokens[6] = -common  # the outlier
    assert _kept(divprune_select(tokens, torch.ones(9, dtype=torch.bool), 1)) == [6]
