"""The OT merge: our log-domain Sinkhorn against POT, marginals, limits and the merge rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtprune.transport import (
    SinkhornSpec,
    col_exponent,
    cosine_cost,
    dustbin_problem,
    merge,
    sinkhorn_log,
    solve_plan,
)

ot = pytest.importorskip("ot")

TIGHT = dict(max_iter=20000, tol=1e-7, check_every=10)  # below 1e-7 fp32 noise never settles


def _problem(u: int, k: int, seed: int, uniform: bool = True, cosine: bool = False):
    rng = np.random.default_rng(seed)
    if cosine:  # token-like: a shared direction plus noise, as post-projector embeddings have
        x = torch.tensor(rng.normal(size=(u + k, 32)) + 1.5, dtype=torch.float32)[None]
        cost = cosine_cost(x[:, :u], x[:, u:])[0].double().numpy()
    else:
        cost = rng.uniform(0.0, 2.0, (u, k))
    a = np.full(u, 1 / u) if uniform else rng.dirichlet(np.ones(u))
    b = np.full(k, 1 / k) if uniform else rng.dirichlet(np.ones(k))
    return cost, a, b


def _ours(cost, a, b, spec):
    t = lambda v: torch.tensor(v, dtype=torch.float32)[None]  # noqa: E731
    return torch.exp(sinkhorn_log(t(cost), torch.log(t(a)), torch.log(t(b)), spec))[0].double().numpy()


@pytest.mark.parametrize(
    ("u", "k", "eps", "uniform", "cosine"),
    [
        (7, 11, 0.1, True, False),
        (30, 20, 0.05, False, False),
        (64, 336, 0.1, True, True),
        (5, 5, 0.5, False, False),
    ],
)
def test_balanced_plan_matches_pot_sinkhorn_log(u, k, eps, uniform, cosine):
    cost, a, b = _problem(u, k, seed=u + k, uniform=uniform, cosine=cosine)
    ref = ot.sinkhorn(a, b, cost, reg=eps, method="sinkhorn_log", numItermax=20000, stopThr=1e-10)
    ours = _ours(cost, a, b, SinkhornSpec(eps, 1.0, **TIGHT))
    assert np.abs(ours - ref).max() <= 1e-5 * max(1.0, ref.max() * u)
    assert (ours >= 0).all()
    np.testing.assert_allclose(ours.sum(1), a, rtol=1e-4)
    np.testing.assert_allclose(ours.sum(0), b, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize(("tau", "eps"), [(0.5, 0.2), (2.0, 0.1), (0.1, 0.05)])
def test_semi_relaxed_plan_matches_pot_unbalanced_with_a_hard_source_marginal(tau, eps):
    cost, a, b = _problem(9, 13, seed=3, uniform=False)
    ref = ot.unbalanced.sinkhorn_unbalanced(
        a, b, cost, reg=eps, reg_m=(float("inf"), tau), reg_type="entropy", numItermax=100000, stopThr=1e-12
    )
    ours = _ours(cost, a, b, SinkhornSpec(eps, col_exponent("semi_relaxed", eps, tau), **TIGHT))
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=1e-4)
    np.testing.assert_allclose(ours.sum(1), a, rtol=1e-5)


def test_dustbin_plan_matches_pot_on_the_augmented_problem():
    cost, _, _ = _problem(12, 8, seed=4)
    c = torch.tensor(cost, dtype=torch.float32)[None]
    valid_u, valid_k = torch.ones(1, 12, dtype=torch.bool), torch.ones(1, 8, dtype=torch.bool)
    aug, log_a, log_b = dustbin_problem(c, valid_u, valid_k, 0.6)
    assert torch.equal(aug[:, :12, :8], c)
    assert (aug[0, 12] == 0.6).all() and (aug[0, :, 8] == 0.6).all()
    a, b = log_a.exp()[0].double().numpy(), log_b.exp()[0].double().numpy()
    np.testing.assert_allclose(a[-1], 8 / 20, rtol=1e-6)  # dustbin source: the kept count
    ref = ot.sinkhorn(
        a, b, aug[0].double().numpy(), reg=0.1, method="sinkhorn_log", numItermax=20000, stopThr=1e-10
    )
    ours = torch.exp(sinkhorn_log(aug, log_a, log_b, SinkhornSpec(0.1, 1.0, **TIGHT)))[0].double().numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    weights = solve_plan(c, valid_u, valid_k, "dustbin", SinkhornSpec(0.1, 1.0, **TIGHT), 0.6)
    np.testing.assert_allclose(weights[0].double().numpy(), ref[:12, :8] / a[:12, None], atol=1e-4)
    assert (weights.sum(2) <= 1 + 1e-5).all()


def test_dustbin_absorbs_tokens_that_resemble_nothing_kept():
    kept = torch.eye(4)[None]  # four orthogonal kept tokens
    dropped = torch.stack([torch.eye(4)[0], torch.eye(4)[1], -torch.eye(4)[2]])[None]  # last one: cos -1
    valid = lambda n: torch.ones(1, n, dtype=torch.bool)  # noqa: E731
    w = solve_plan(cosine_cost(dropped, kept), valid(3), valid(4), "dustbin", SinkhornSpec(0.02, 1.0), 0.5)
    assert w[0, 2].sum() < 0.05
    assert w[0, 0, 0] > 0.9 and w[0, 1, 1] > 0.9


@pytest.mark.parametrize("formulation", ["balanced", "semi_relaxed"])
def test_padded_batch_gives_each_page_its_own_plan(formulation):
    torch.manual_seed(0)
    spec = SinkhornSpec(0.1, col_exponent(formulation, 0.1, 1.0), max_iter=200, tol=1e-6, check_every=5)
    shapes = [(5, 9), (12, 4), (1, 7)]
    pages = [(torch.randn(1, u, 6), torch.randn(1, k, 6)) for u, k in shapes]
    u_max, k_max = max(u for u, _ in shapes), max(k for _, k in shapes)
    src = torch.zeros(3, u_max, 6)
    tgt = torch.zeros(3, k_max, 6)
    vs = torch.zeros(3, u_max, dtype=torch.bool)
    vt = torch.zeros(3, k_max, dtype=torch.bool)
    for i, ((d, kk), (u, k)) in enumerate(zip(pages, shapes, strict=True)):
        src[i, :u], tgt[i, :k], vs[i, :u], vt[i, :k] = d[0], kk[0], True, True
    batched = solve_plan(cosine_cost(src, tgt), vs, vt, formulation, spec)
    for i, ((d, kk), (u, k)) in enumerate(zip(pages, shapes, strict=True)):
        alone = solve_plan(cosine_cost(d, kk), vs[i : i + 1, :u], vt[i : i + 1, :k], formulation, spec)
        torch.testing.assert_close(batched[i, :u, :k], alone[0], atol=1e-5, rtol=1e-4)
        assert batched[i, u:].abs().sum() == 0 and batched[i, :, k:].abs().sum() == 0


def test_balanced_plan_tends_to_the_exact_assignment_as_epsilon_shrinks():
    cost, a, b = _problem(6, 6, seed=7)
    exact = ot.emd(a, b, cost)  # a permutation matrix / 6
    errors = []
    for eps in (0.5, 0.05, 0.01):  # 0.01 takes the logsumexp path (2 / eps > 80)
        plan = _ours(cost, a, b, SinkhornSpec(eps, 1.0, max_iter=3000, tol=1e-7, check_every=10))
        errors.append(np.abs(plan - exact).sum())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02


def test_free_kept_marginal_tends_to_the_argmax_as_epsilon_shrinks():
    torch.manual_seed(1)
    dropped, kept = torch.randn(1, 20, 8), torch.randn(1, 6, 8)
    cost = cosine_cost(dropped, kept)
    valid = lambda n: torch.ones(1, n, dtype=torch.bool)  # noqa: E731
    argmax = torch.nn.functional.one_hot((-cost).argmax(dim=2), 6).float()
    gaps = []
    for eps in (1.0, 0.1, 1e-4):
        w = solve_plan(
            cost,
            valid(20),
            valid(6),
            "semi_relaxed",
            SinkhornSpec(eps, col_exponent("semi_relaxed", eps, 0.0)),
        )
        gaps.append(float((w - argmax).abs().max()))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3


@pytest.mark.parametrize("formulation", ["balanced", "semi_relaxed"])
def test_mass_weighted_merge_conserves_mass_and_the_mass_weighted_sum(formulation):
    torch.manual_seed(2)
    dropped, kept = torch.randn(1, 15, 10), torch.randn(1, 25, 10)
    valid = lambda n: torch.ones(1, n, dtype=torch.bool)  # noqa: E731
    spec = SinkhornSpec(0.1, col_exponent(formulation, 0.1, 1.0))
    w = solve_plan(cosine_cost(dropped, kept), valid(15), valid(25), formulation, spec)
    new, mass = merge(kept, dropped, w, "mass", 0.0)
    assert float(mass.sum()) == pytest.approx(40.0, rel=1e-5)
    torch.testing.assert_close(
        (mass[..., None] * new).sum(1), kept.sum(1) + dropped.sum(1), atol=1e-4, rtol=1e-5
    )


def test_residual_merge_interpolates_between_keeping_and_mass_merging():
    torch.manual_seed(3)
    dropped, kept = torch.randn(1, 4, 5), torch.randn(1, 6, 5)
    w = torch.softmax(torch.randn(1, 4, 6), dim=2)
    full, _ = merge(kept, dropped, w, "mass", 0.0)
    torch.testing.assert_close(merge(kept, dropped, w, "residual", 0.0)[0], kept)
    torch.testing.assert_close(merge(kept, dropped, w, "residual", 1.0)[0], full)
    half, _ = merge(kept, dropped, w, "residual", 0.5)
    torch.testing.assert_close(half, (kept + full) / 2)


def test_cosine_cost_range_and_zero_vectors():
    x = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [-2.0, 0.0]]])
    c = cosine_cost(x, x)
    torch.testing.assert_close(c[0, 0], torch.tensor([0.0, 1.0, 2.0]))
    assert torch.isfinite(c).all()


def test_bf16_inputs_are_solved_in_fp32():
    torch.manual_seed(4)
    d, k = torch.randn(1, 6, 16), torch.randn(1, 9, 16)
    c16 = cosine_cost(d.bfloat16(), k.bfloat16())
    assert c16.dtype == torch.float32


@pytest.mark.parametrize("col_exp", [1.0, 0.6])
def test_kernel_and_logsumexp_paths_give_the_same_plan(monkeypatch, col_exp):
    import rtprune.transport as transport

    torch.manual_seed(5)
    cost = cosine_cost(torch.randn(2, 9, 8), torch.randn(2, 14, 8))
    log_a = log_uniform_valid(2, 9)
    log_b = log_uniform_valid(2, 14)
    spec = SinkhornSpec(0.05, col_exp, max_iter=300, tol=1e-7)
    fast = sinkhorn_log(cost, log_a, log_b, spec)
    monkeypatch.setattr(transport, "_KERNEL_MAX_EXPONENT", 0.0)
    slow = sinkhorn_log(cost, log_a, log_b, spec)
    torch.testing.assert_close(torch.exp(fast), torch.exp(slow), atol=1e-6, rtol=1e-4)


def log_uniform_valid(batch: int, n: int) -> torch.Tensor:
    from rtprune.transport import log_uniform

    return log_uniform(torch.ones(batch, n, dtype=torch.bool))
