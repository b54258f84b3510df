"""PruneConfig: every knob of the pruning library, validated once at construction.

A frozen stdlib dataclass (not pydantic) so the core stays torch-only; pydantic models that hold it as a
field (EngineConfig) still build it from a plain dict.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Literal

Method = Literal["none", "rtprune", "norm", "random", "padding", "tome", "divprune", "spatial"]
Formulation = Literal["balanced", "semi_relaxed", "dustbin"]
MergeMode = Literal["residual", "mass"]

METHODS: tuple[str, ...] = ("none", "rtprune", "norm", "random", "padding", "tome", "divprune", "spatial")
FORMULATIONS: tuple[str, ...] = ("balanced", "semi_relaxed", "dustbin")
MERGE_MODES: tuple[str, ...] = ("residual", "mass")


@dataclass(frozen=True)
class PruneConfig:
    """How one page's visual tokens are pruned.

    Selection
      method:      "rtprune" (norm selection + OT merge), "none", or a baseline at the same budget:
                   "norm" (stage 1 only), "random", "padding", "tome", "divprune", "spatial".
      retention:   fraction of prunable (non-protected) tokens kept; with `dynamic`, the centre of the
                   adaptive ratio. Lower is faster prefill and a higher risk of losing small print.
      norm_tie_tol: stage-1 norms are quantised to multiples of tie_tol * (max norm of the page) before
                   ranking, so near-equal norms (padding cells) tie and the lower index wins. Larger values
                   make the choice among near-ties positional rather than noise-driven.
      seed:        RNG seed of the "random" baseline (the same seed on every page).

    Dynamic retention (ours; the paper does not publish its formula, see rtprune/ratio.py)
      dynamic:     derive the ratio per page from redundancy R and textual density T:
                   r = clip(retention + density_weight*(T - density_ref)
                            - redundancy_weight*(R - redundancy_ref), min_retention, max_retention).
      edge_threshold: gradient magnitude (image in [0, 1]) above which a pixel is a strong edge.
      cell_text_threshold: a cell whose strong-edge fraction reaches this holds text.
      density_grid: cells per side of the fallback grid when no token boxes are given.
      redundancy_anchors: tokens (strided) compared with all others to estimate R; more is slower.

    Count rule
      count_from_pixels: the kept count depends on the page's pixels and size only, so it is known before
                   the encoder runs: the dynamic ratio takes R at redundancy_ref (its neutral value; T still
                   counts) and the newlines of fully pruned rows stay (no collapse). Engines that fix a
                   page's placeholder count before encoding (vLLM) need it; the transformers engine honours
                   it too, so both keep the same tokens. Costs the R signal and the collapsed positions.

    Stage 2: optimal-transport merge of dropped tokens into kept ones (see rtprune/transport.py)
      ot_formulation: "balanced" (both marginals uniform: every kept token absorbs the same share),
                   "semi_relaxed" (every dropped token moves all its mass; kept tokens absorb as much as
                   similarity dictates, a KL penalty ot_tau pulls them back towards equal shares),
                   "dustbin" (balanced with an extra sink: dropped tokens that resemble no kept token go
                   to the dustbin and are discarded instead of blurring a kept one).
      ot_epsilon:  entropic regularisation in cost units (cost = 1 - cosine in [0, 2]); smaller is a
                   sharper, closer-to-argmax plan and needs more iterations.
      ot_max_iter, ot_tol, ot_check_every: Sinkhorn stops when the column potential moves less than
                   ot_tol between checks made every ot_check_every iterations (a check syncs a GPU).
      ot_tau:      semi-relaxed only: KL weight on the kept-side marginal (0: free; the limit tau -> inf
                   is "balanced", so only finite values are accepted).
      ot_dustbin_cost: dustbin only: the cost of sending a token to the dustbin (1 - cosine threshold).
      merge:       "mass": kept token := mass-weighted mean of itself (mass 1) and what it receives;
                   "residual": kept token moves a step `merge_step` from itself towards that mean.
      merge_step:  residual step in [0, 1]; 1 equals "mass", 0 leaves kept tokens untouched.
    """

    method: Method = "rtprune"
    retention: float = 0.84
    norm_tie_tol: float = 1e-3
    seed: int = 0
    dynamic: bool = False
    min_retention: float = 0.6
    max_retention: float = 1.0
    density_weight: float = 0.5
    redundancy_weight: float = 0.5
    density_ref: float = 0.326
    redundancy_ref: float = 0.615
    edge_threshold: float = 0.25
    cell_text_threshold: float = 0.02
    density_grid: int = 20
    redundancy_anchors: int = 64
    count_from_pixels: bool = False
    ot_formulation: Formulation = "balanced"
    ot_epsilon: float = 0.1
    ot_max_iter: int = 50
    ot_tol: float = 1e-4
    ot_check_every: int = 5
    ot_tau: float = 1.0
    ot_dustbin_cost: float = 0.7
    merge: MergeMode = "residual"
    merge_step: float = 0.1

    def __post_init__(self) -> None:
        _check_choice("method", self.method, METHODS)
        _check_choice("ot_formulation", self.ot_formulation, FORMULATIONS)
        _check_choice("merge", self.merge, MERGE_MODES)
        _check_range("retention", self.retention, 0.0, 1.0, low_open=True)
        _check_range("min_retention", self.min_retention, 0.0, 1.0, low_open=True)
        _check_range("max_retention", self.max_retention, 0.0, 1.0, low_open=True)
        if self.min_retention > self.max_retention:
            raise ValueError(f"min_retention {self.min_retention} exceeds max_retention {self.max_retention}")
        for name in ("norm_tie_tol", "density_weight", "redundancy_weight", "edge_threshold"):
            _check_finite_nonneg(name, getattr(self, name))
        _check_range("density_ref", self.density_ref, 0.0, 1.0)
        _check_range("redundancy_ref", self.redundancy_ref, 0.0, 1.0)
        _check_range("cell_text_threshold", self.cell_text_threshold, 0.0, 1.0)
        _check_range("merge_step", self.merge_step, 0.0, 1.0)
        for name in ("density_grid", "redundancy_anchors", "ot_max_iter", "ot_check_every"):
            _check_positive_int(name, getattr(self, name))
        if not (math.isfinite(self.ot_epsilon) and self.ot_epsilon > 0):
            raise ValueError(f"ot_epsilon must be a finite positive number, got {self.ot_epsilon}")
        _check_finite_nonneg("ot_tol", self.ot_tol)
        _check_finite_nonneg("ot_dustbin_cost", self.ot_dustbin_cost)
        if not (isinstance(self.ot_tau, int | float) and math.isfinite(self.ot_tau) and self.ot_tau >= 0):
            # finite so configs survive JSON (pydantic writes inf as null); the inf limit is "balanced"
            raise ValueError(
                f"ot_tau must be a finite number >= 0 (its inf limit is ot_formulation="
                f"'balanced'), got {self.ot_tau!r}"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        for name in ("dynamic", "count_from_pixels"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")

    @property
    def is_identity(self) -> bool:
        """True when every page comes back unchanged whatever its content."""
        return self.method == "none" or (self.retention == 1.0 and not self.dynamic)

    def config_hash(self) -> str:
        """Stable 12-hex digest over all fields (sorted JSON), for the output rows. count_from_pixels enters
        only when set, so configs written before it existed keep their digests."""
        fields = asdict(self)
        if not self.count_from_pixels:
            del fields["count_from_pixels"]
        blob = json.dumps(fields, sort_keys=True, allow_nan=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_range(name: str, value: float, low: float, high: float, low_open: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low < value if low_open else low <= value) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value!r}")


def _check_finite_nonneg(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
