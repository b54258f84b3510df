"""Properties every pruning method must have, through the public API."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rtprune_pages import grid_page

from rtprune import PruneConfig, prune, prune_batch

METHODS = ["rtprune", "norm", "random", "padding", "tome", "divprune", "spatial"]
ALL_METHODS = ["none", *METHODS]
FORMULATIONS = ["balanced", "semi_relaxed", "dustbin"]


def _prune_page(page, config, **kw):
    return prune(
        page.tokens,
        config,
        page.protected,
        padding=page.padding,
        image=page.image,
        token_boxes=page.token_boxes,
        **kw,
    )


def _check_shape(result, page, budget):
    n_protected = int(page.protected.sum())
    idx = result.kept_index
    assert idx.dtype == torch.long
    assert idx.numel() == n_protected + budget == result.tokens.shape[0]
    assert torch.all(idx[1:] > idx[:-1]), "kept_index must be strictly ascending (so unique)"
    assert torch.all(torch.isin(page.protected.nonzero().squeeze(1), idx)), "protected tokens dropped"
    assert torch.isfinite(result.tokens).all()
    assert torch.equal(result.tokens[page.protected[idx]], page.tokens[page.protected])


@settings(max_examples=15, deadline=None)
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 8),
    dim=st.integers(1, 12),
    seed=st.integers(0, 1000),
    retention=st.floats(0.05, 1.0),
    method=st.sampled_from(METHODS),
)
def test_kept_count_order_and_protection_hold_for_any_page(rows, cols, dim, seed, retention, method):
    page = grid_page(rows, cols, dim, seed=seed, pad_cols=cols // 3)
    result = _prune_page(page, PruneConfig(method=method, retention=retention))
    n_prunable = int((~page.protected).sum())
    expected = min(n_prunable, max(1, round(retention * n_prunable)))
    _check_shape(result, page, expected)
    assert result.budget == expected and result.n_prunable == n_prunable


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("budget", [1, 17, 39])
def test_explicit_budget_overrides_retention(method, budget):
    page = grid_page(5, 8, 16, seed=3, pad_cols=2)
    result = _prune_page(page, PruneConfig(method=method, retention=0.9), budget=budget)
    _check_shape(result, page, budget)
    assert result.retention == pytest.approx(budget / 40)


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_full_retention_is_the_identity_bit_for_bit(method, dtype):
    page = grid_page(4, 6, 16, seed=1, pad_cols=2)
    tokens = page.tokens.to(dtype)
    result = prune(
        tokens,
        PruneConfig(method=method, retention=1.0),
        page.protected,
        padding=page.padding,
        token_boxes=page.token_boxes,
    )
    assert result.tokens is tokens
    assert torch.equal(result.kept_index, torch.arange(tokens.shape[0]))


def test_method_none_ignores_retention_and_budget():
    page = grid_page(3, 5, 8, seed=2)
    result = _prune_page(page, PruneConfig(method="none", retention=0.3, dynamic=True))
    assert result.tokens is page.tokens and result.retention == 1.0
    result = _prune_page(page, PruneConfig(method="none"), budget=3)
    assert result.tokens is page.tokens and result.budget == result.n_prunable == 15


@pytest.mark.parametrize("method", METHODS)
def test_same_input_gives_the_same_output(method):
    page = grid_page(5, 7, 24, seed=4, pad_cols=2)
    first = _prune_page(page, PruneConfig(method=method, retention=0.6))
    second = _prune_page(page, PruneConfig(method=method, retention=0.6))
    assert torch.equal(first.kept_index, second.kept_index)
    assert torch.equal(first.tokens, second.tokens)


def _degenerate_pages():
    base = grid_page(4, 6, 16, seed=5, pad_cols=2)
    zero = base.tokens.clone()
    zero[::3] = 0.0
    dup = base.tokens.clone()
    dup[:] = dup[0]
    const = torch.full_like(base.tokens, 0.25)
    allzero = torch.zeros_like(base.tokens)
    return base, {"zero_rows": zero, "duplicated": dup, "constant": const, "all_zero": allzero}


METHOD_VARIANTS = [(m, "balanced") for m in METHODS] + [("rtprune", f) for f in FORMULATIONS[1:]]


@pytest.mark.parametrize(("method", "formulation"), METHOD_VARIANTS)
@pytest.mark.parametrize("case", ["zero_rows", "duplicated", "constant", "all_zero"])
def test_degenerate_tokens_give_finite_results(method, case, formulation):
    _, variants = _degenerate_pages()
    page = grid_page(4, 6, 16, seed=5, pad_cols=2)
    page.tokens = variants[case]
    config = PruneConfig(method=method, retention=0.5, ot_formulation=formulation, dynamic=True)
    result = _prune_page(page, config)
    _check_shape(result, page, result.budget)
    if case in ("duplicated", "constant"):
        # merging identical vectors must return the same vector
        assert torch.allclose(result.tokens, page.tokens[result.kept_index], atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_pages_one_by_one(method):
    pages = [
        grid_page(r, c, 32, seed=s, pad_cols=1) for r, c, s in [(5, 8, 0), (3, 4, 1), (6, 9, 2), (1, 2, 3)]
    ]
    config = PruneConfig(method=method, retention=0.7, dynamic=method == "rtprune")
    budgets = [None, 5, None, None]
    batched = prune_batch(
        [p.tokens for p in pages],
        config,
        protected=[p.protected for p in pages],
        padding=[p.padding for p in pages],
        image=[p.image for p in pages],
        token_boxes=[p.token_boxes for p in pages],
        budgets=budgets,
    )
    for page, budget, got in zip(pages, budgets, batched, strict=True):
        alone = _prune_page(page, config, budget=budget)
        assert torch.equal(got.kept_index, alone.kept_index)
        assert torch.allclose(got.tokens, alone.tokens, atol=1e-5, rtol=1e-5)
        assert got.retention == alone.retention


@pytest.mark.parametrize("method", ["rtprune", "norm"])
@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_padded_batch_path_equals_pages_one_by_one(method, formulation):
    from rtprune.method import rtprune_batch

    pages = [
        grid_page(r, c, 32, seed=s, pad_cols=1) for r, c, s in [(5, 8, 0), (3, 4, 1), (6, 9, 2), (1, 3, 3)]
    ]
    config = PruneConfig(method=method, ot_formulation=formulation, merge="mass")
    prunable = [~p.protected for p in pages]
    budgets = [20, 5, 33, 1]
    batched = rtprune_batch(
        [p.tokens for p in pages], prunable, budgets, config, method == "rtprune", padded=True
    )
    for i, got in enumerate(batched):
        alone = rtprune_batch(
            [pages[i].tokens], prunable[i : i + 1], budgets[i : i + 1], config, method == "rtprune"
        )[0]
        assert torch.equal(got.keep, alone.keep)
        if method == "rtprune":
            assert torch.equal(got.merged_index, alone.merged_index)
            torch.testing.assert_close(got.values, alone.values, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(got.mass, alone.mass, atol=1e-5, rtol=1e-5)


def test_batch_of_identity_and_pruned_pages_mixes_correctly():
    pages = [grid_page(3, 4, 8, seed=s) for s in range(3)]
    results = prune_batch(
        [p.tokens for p in pages],
        PruneConfig(retention=0.5),
        protected=[p.protected for p in pages],
        budgets=[12, None, 1],
    )
    assert results[0].tokens is pages[0].tokens
    assert [r.tokens.shape[0] for r in results] == [15, 9, 4]


@pytest.mark.parametrize("method", METHODS)
def test_output_keeps_dtype_and_kept_rows_of_selecting_methods_are_exact(method):
    page = grid_page(5, 8, 16, seed=6, pad_cols=2)
    tokens = page.tokens.to(torch.bfloat16)
    result = prune(
        tokens,
        PruneConfig(method=method, retention=0.7),
        page.protected,
        padding=page.padding,
        token_boxes=page.token_boxes,
    )
    assert result.tokens.dtype == torch.bfloat16
    if method not in ("rtprune", "tome"):
        assert torch.equal(result.tokens, tokens[result.kept_index])
        assert result.mass is None
    else:
        assert result.mass is not None and result.mass.shape == result.kept_index.shape


def test_rtprune_with_mass_merge_accounts_for_every_prunable_token():
    page = grid_page(5, 8, 16, seed=7)
    result = _prune_page(page, PruneConfig(retention=0.6, merge="mass", ot_formulation="semi_relaxed"))
    assert float(result.mass.sum()) == pytest.approx(page.tokens.shape[0], rel=1e-5)


def test_norm_baseline_keeps_the_highest_norm_tokens():
    page = grid_page(4, 5, 8, seed=8)
    result = _prune_page(page, PruneConfig(method="norm", retention=0.5))
    norms = page.tokens.norm(dim=1)
    kept_prunable = result.kept_index[~page.protected[result.kept_index]]
    dropped = (~page.protected).clone()
    dropped[kept_prunable] = False
    assert norms[kept_prunable].min() >= norms[dropped].max()


@pytest.mark.parametrize(
    "bad",
    [
        dict(protected=torch.zeros(3, dtype=torch.bool)),
        dict(protected=torch.zeros(44)),
        dict(budget=0),
        dict(budget=41),
        dict(budget=2.5),
        dict(budget=True),
        dict(token_boxes=torch.zeros(44, 3)),
    ],
)
def test_bad_inputs_raise_value_error(bad):
    page = grid_page(4, 10, 8, seed=0)  # 44 tokens, 40 prunable
    kwargs = {"protected": page.protected, **bad}
    with pytest.raises(ValueError):
        prune(page.tokens, PruneConfig(), **kwargs)


def test_budget_accepts_numpy_and_tensor_integers():
    import numpy as np

    page = grid_page(4, 10, 8, seed=0)
    for budget in (np.int64(7), torch.tensor(7)):
        assert prune(page.tokens, PruneConfig(), page.protected, budget=budget).budget == 7


def test_tokens_must_be_a_float_matrix():
    with pytest.raises(ValueError, match="float"):
        prune(torch.zeros(4, 3, dtype=torch.long), PruneConfig())
    with pytest.raises(ValueError, match="float"):
        prune(torch.zeros(4), PruneConfig())


def test_padding_method_without_mask_is_a_clear_error():
    page = grid_page(3, 4, 8)
    with pytest.raises(ValueError, match="padding mask"):
        prune(page.tokens, PruneConfig(method="padding", retention=0.5), page.protected)


def test_batch_arguments_must_align():
    page = grid_page(2, 3, 4)
    with pytest.raises(ValueError, match="entries"):
        prune_batch([page.tokens], PruneConfig(), protected=[page.protected, page.protected])


@settings(max_examples=10, deadline=None)
@given(
    shapes=st.lists(
        st.tuples(st.integers(1, 5), st.integers(1, 7), st.integers(0, 99)), min_size=1, max_size=4
    ),
    method=st.sampled_from(METHODS),
    retention=st.floats(0.05, 1.0),
    use_budget=st.booleans(),
)
def test_batch_equals_pages_for_any_mix_of_pages(shapes, method, retention, use_budget):
    pages = [grid_page(r, c, 12, seed=s, pad_cols=c // 2) for r, c, s in shapes]
    budgets = [max(1, int((~p.protected).sum()) // 2) if use_budget else None for p in pages]
    config = PruneConfig(method=method, retention=retention)
    batched = prune_batch(
        [p.tokens for p in pages],
        config,
        protected=[p.protected for p in pages],
        padding=[p.padding for p in pages],
        token_boxes=[p.token_boxes for p in pages],
        budgets=budgets,
    )
    for page, budget, got in zip(pages, budgets, batched, strict=True):
        alone = _prune_page(page, config, budget=budget)
        assert torch.equal(got.kept_index, alone.kept_index)
        torch.testing.assert_close(got.tokens, alone.tokens, atol=1e-5, rtol=1e-5)
