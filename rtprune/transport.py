"""Stage 2 of RTPrune: merge dropped tokens into kept ones by entropic optimal transport.

Problem (per page): U dropped tokens (sources), K kept prunable tokens (targets), cost
C_ij = 1 - cos(x_i, x_j) in [0, 2]. Protected tokens are neither sources nor targets. The plan P (U, K)
minimises <P, C> - eps * H(P) under one of three formulations:

- balanced:     P 1 = a (a_i = 1/U), P^T 1 = b (b_j = 1/K). Every kept token absorbs the same share, even
                one that resembles no dropped token: a diffuse plan (the paper's reference code).
- semi_relaxed: P 1 = a exactly; the kept side pays tau * KL(P^T 1 | b) instead of an equality. tau = 0
                gives each dropped token a softmax over kept tokens (argmax as eps -> 0); tau = inf is
                balanced. Kept tokens that resemble many dropped ones absorb more.
- dustbin:      balanced OT on an augmented problem (as in SuperGlue): one extra source and one extra
                target, each with cost `dustbin_cost` to everything. Masses a = [1]*U + [K], b = [1]*K + [U]
                (normalised by U + K), so every dropped token either moves into kept tokens (each absorbs
                at most one token's worth) or goes to the dustbin and is discarded.

The solver is log-domain Sinkhorn in fp32 on the tokens' device, batched over pages by padding. Padded
entries carry log-mass `_NEG` so they receive exactly zero plan mass; a page stops (its potentials freeze)
at the first check where its column potential moved less than `tol`, so a page gives the same plan alone
or in a batch.

Merge: w_ij = P_ij / P_i. (row-normalised: all of a dropped token's mass; for dustbin P_ij / a_i, the
dustbin share is lost). Mass-weighted: x_j' = (x_j + sum_i w_ij x_i) / (1 + sum_i w_ij), mass
m_j = 1 + sum_i w_ij, so sum_j m_j x_j' = sum of all merged token vectors (total mass is conserved).
Residual: x_j' = x_j + step * (mass-weighted x_j' - x_j).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_NEG = -1.0e4  # log-mass of padded entries: exp() underflows to exactly 0 in fp32, unlike -inf no NaN


@dataclass(frozen=True)
class SinkhornSpec:
    """Solver settings. col_exponent = 1 (balanced) or tau / (tau + eps) (semi-relaxed)."""

    epsilon: float
    col_exponent: float = 1.0
    max_iter: int = 50
    tol: float = 1e-4
    check_every: int = 5


def col_exponent(formulation: str, epsilon: float, tau: float) -> float:
    """Exponent of the kept-side scaling update for a formulation (see module docstring)."""
    if formulation != "semi_relaxed" or math.isinf(tau):
        return 1.0
    return tau / (tau + epsilon)


def cosine_cost(sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """C = 1 - cos. sources (B, U, D), targets (B, K, D) -> (B, U, K) fp32; zero vectors have cos 0."""
    s = torch.nn.functional.normalize(sources.float(), dim=-1, eps=1e-12)
    t = torch.nn.functional.normalize(targets.float(), dim=-1, eps=1e-12)
    return 1.0 - torch.bmm(s, t.transpose(1, 2))


def sinkhorn_log(
    cost: torch.Tensor, log_a: torch.Tensor, log_b: torch.Tensor, spec: SinkhornSpec
) -> torch.Tensor:
    """Log-domain Sinkhorn with an exact row marginal. cost (B, R, S), log_a (B, R), log_b (B, S)
    (padded entries at _NEG) -> log P (B, R, S), P = exp((f_i + g_j - C_ij) / eps).

    f_i = eps (log a_i - LSE_j((g_j - C_ij)/eps));  g_j = kappa eps (log b_j - LSE_i((f_i - C_ij)/eps)).
    The potentials always live in the log domain. When exp(-C/eps) cannot underflow (cost range / eps
    below _KERNEL_MAX_EXPONENT), each LSE is a max-shifted matrix-vector product with the precomputed
    kernel (2 passes over the plan per iteration instead of ~6); otherwise a full logsumexp.
    """
    eps = spec.epsilon
    neg_c = -cost.float() / eps
    kernel = None
    if neg_c.numel() and float(neg_c.amax() - neg_c.amin()) < _KERNEL_MAX_EXPONENT:
        shift = neg_c.amax()
        neg_c = neg_c - shift  # a constant shift of the cost leaves the plan unchanged
        kernel = torch.exp(neg_c)
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    done = torch.zeros(cost.shape[0], dtype=torch.bool, device=cost.device)
    g_check = g
    for it in range(spec.max_iter):
        f_new = eps * (log_a - _lse_rows(neg_c, kernel, g / eps))
        g_new = spec.col_exponent * eps * (log_b - _lse_cols(neg_c, kernel, f_new / eps))
        f = torch.where(done[:, None], f, f_new)
        g = torch.where(done[:, None], g, g_new)
        if (it + 1) % spec.check_every == 0 and it + 1 < spec.max_iter:
            moved = (g - g_check).abs().amax(dim=1)
            done = done | (moved < spec.tol)
            g_check = g
            if bool(done.all()):
                break
    # the last row update makes the source marginal exact for every formulation
    f = eps * (log_a - _lse_rows(neg_c, kernel, g / eps))
    return neg_c + (f[:, :, None] + g[:, None, :]) / eps


_KERNEL_MAX_EXPONENT = 80.0  # exp(-80) ~ 1.8e-35 stays a normal fp32 number


def _lse_rows(neg_c: torch.Tensor, kernel: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
    """LSE_j(neg_c_ij + h_j): neg_c (B, R, S), h (B, S) -> (B, R)."""
    if kernel is None:
        return torch.logsumexp(neg_c + h[:, None, :], dim=2)
    m = h.amax(dim=1, keepdim=True)
    s = torch.bmm(kernel, torch.exp(h - m)[:, :, None]).squeeze(2)
    return m + torch.log(s.clamp_min(torch.finfo(torch.float32).tiny))


def _lse_cols(neg_c: torch.Tensor, kernel: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
    """LSE_i(neg_c_ij + h_i): neg_c (B, R, S), h (B, R) -> (B, S)."""
    if kernel is None:
        return torch.logsumexp(neg_c + h[:, :, None], dim=1)
    m = h.amax(dim=1, keepdim=True)
    s = torch.bmm(torch.exp(h - m)[:, None, :], kernel).squeeze(1)
    return m + torch.log(s.clamp_min(torch.finfo(torch.float32).tiny))


def log_uniform(valid: torch.Tensor) -> torch.Tensor:
    """log(1/count) on valid entries, _NEG elsewhere. valid (B, L) bool -> (B, L) fp32."""
    count = valid.sum(dim=1, keepdim=True).clamp_min(1).float()
    return torch.where(valid, -torch.log(count), torch.full_like(count, _NEG))


def solve_plan(
    cost: torch.Tensor,
    src_valid: torch.Tensor,
    tgt_valid: torch.Tensor,
    formulation: str,
    spec: SinkhornSpec,
    dustbin_cost: float = 0.7,
) -> torch.Tensor:
    """Merge weights w (B, U, K): the share of dropped token i that goes to kept token j.

    cost (B, U, K), src_valid (B, U) bool, tgt_valid (B, K) bool. Rows of w sum to 1 for balanced and
    semi-relaxed (to 1 minus the dustbin share for dustbin); padded rows and columns are 0.
    """
    if formulation == "dustbin":
        return _dustbin_weights(cost, src_valid, tgt_valid, spec, dustbin_cost)
    log_p = sinkhorn_log(cost, log_uniform(src_valid), log_uniform(tgt_valid), spec)
    p = torch.where(src_valid[:, :, None] & tgt_valid[:, None, :], torch.exp(log_p), 0.0)
    return p / p.sum(dim=2, keepdim=True).clamp_min(1e-30)


def dustbin_problem(
    cost: torch.Tensor, src_valid: torch.Tensor, tgt_valid: torch.Tensor, dustbin_cost: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augmented cost (B, U+1, K+1) and log-masses (B, U+1), (B, K+1); the dustbin is the last row/column."""
    b, u, k = cost.shape
    aug = torch.full((b, u + 1, k + 1), float(dustbin_cost), dtype=torch.float32, device=cost.device)
    aug[:, :u, :k] = cost
    n_src = src_valid.sum(dim=1, keepdim=True).float()
    n_tgt = tgt_valid.sum(dim=1, keepdim=True).float()
    total = (n_src + n_tgt).clamp_min(1.0)
    neg = torch.full_like(total, _NEG)
    log_a = torch.cat([torch.where(src_valid, -torch.log(total), neg), torch.log(n_tgt / total)], 1)
    log_b = torch.cat([torch.where(tgt_valid, -torch.log(total), neg), torch.log(n_src / total)], 1)
    return aug, log_a.clamp_min(_NEG), log_b.clamp_min(_NEG)


def _dustbin_weights(
    cost: torch.Tensor, src_valid: torch.Tensor, tgt_valid: torch.Tensor, spec: SinkhornSpec, z: float
) -> torch.Tensor:
    aug, log_a, log_b = dustbin_problem(cost, src_valid, tgt_valid, z)
    log_p = sinkhorn_log(aug, log_a, log_b, spec)
    u, k = cost.shape[1], cost.shape[2]
    valid = src_valid[:, :, None] & tgt_valid[:, None, :]
    return torch.where(valid, torch.exp(log_p[:, :u, :k] - log_a[:, :u, None]), 0.0)


def merge(
    kept: torch.Tensor, dropped: torch.Tensor, weights: torch.Tensor, mode: str, step: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply merge weights. kept (B, K, D), dropped (B, U, D), weights (B, U, K) ->
    (new kept (B, K, D) fp32, mass (B, K) fp32: 1 + the dropped mass each kept token absorbed)."""
    mass = 1.0 + weights.sum(dim=1)
    kept32 = kept.float()
    mean = (kept32 + torch.bmm(weights.transpose(1, 2), dropped.float())) / mass[:, :, None]
    if mode == "mass":
        return mean, mass
    return kept32 + step * (mean - kept32), mass
