"""Stage 1: budget arithmetic, fp32 norms and the documented tie-break."""

from __future__ import annotations

import pytest
import torch

from rtprune.select import default_budget, norm_keys, rank_keep, select_by_norm


@pytest.mark.parametrize(
    ("n", "r", "expected"), [(400, 0.84, 336), (10, 0.01, 1), (10, 1.0, 10), (0, 0.5, 0), (3, 0.5, 2)]
)
def test_default_budget(n, r, expected):
    assert default_budget(n, r) == expected


def test_near_equal_norms_tie_and_the_lower_index_wins():
    base = torch.ones(1, 6, 4)
    base[0, :, 0] += torch.tensor([0.0, 1e-5, 3e-5, -2e-5, 5.0, 1e-5])  # index 4 is clearly largest
    prunable = torch.ones(1, 6, dtype=torch.bool)
    keep = select_by_norm(base, prunable, torch.tensor([3]), tie_tol=1e-3)
    assert keep[0].nonzero().squeeze(1).tolist() == [0, 1, 4]
    # without quantisation the noise decides
    keep_raw = select_by_norm(base, prunable, torch.tensor([3]), tie_tol=0.0)
    assert keep_raw[0].nonzero().squeeze(1).tolist() == [1, 2, 4]


def test_tie_break_is_the_same_in_bf16_and_fp32_for_padding_like_tokens():
    gen = torch.Generator().manual_seed(0)
    pad = torch.randn(1, 1, 64, generator=gen).expand(1, 30, 64) + 1e-4 * torch.randn(
        1, 30, 64, generator=gen
    )
    content = 3 * torch.randn(1, 10, 64, generator=gen)
    x = torch.cat([content, pad], dim=1)
    prunable = torch.ones(1, 40, dtype=torch.bool)
    budget = torch.tensor([25])
    fp32 = select_by_norm(x, prunable, budget, 1e-2)
    bf16 = select_by_norm(x.bfloat16(), prunable, budget, 1e-2)
    assert torch.equal(fp32, bf16)


def test_protected_positions_are_never_selected_and_rank_last():
    x = torch.randn(1, 8, 4) * torch.arange(1, 9).float()[None, :, None]
    prunable = torch.tensor([[True, True, True, True, True, True, False, False]])
    keys = norm_keys(x, prunable, 1e-3)
    assert (keys[0, 6:] == -1).all()
    keep = rank_keep(keys, prunable, torch.tensor([6]))
    assert keep[0].tolist() == [True] * 6 + [False, False]


def test_rows_of_a_batch_use_their_own_budget_and_scale():
    x = torch.stack([torch.randn(5, 3), 100 * torch.randn(5, 3)])
    prunable = torch.ones(2, 5, dtype=torch.bool)
    keep = select_by_norm(x, prunable, torch.tensor([1, 4]), 1e-3)
    assert keep.sum(1).tolist() == [1, 4]
    assert keep[0, x[0].norm(dim=1).argmax()]
