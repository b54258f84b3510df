"""Pruning sweep: the same pages through the unpruned model and every pruning setting, scored and priced.

Per setting: accuracy against ground truth (where pages have references), agreement with the unpruned
model (1 - NED against its text, on every page), the share of visual tokens kept, prefill seconds per
page, and $ per 1,000 pages = mean GPU seconds per page x the pricing table's GPU-second rate x 1000.
`recommend` then picks the cheapest setting that meets the user's target.

Running is separated from scoring: `run_sweep` takes any `SettingsRunner` (the engine-backed one lives in
rtprune.evaluation.engine_runner), so the scoring, aggregation and recommendation are plain functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Literal, cast

from rtprune.api import PruneConfig
from rtprune.config import Method
from rtprune.engines.contract import PageResult
from rtprune.evaluation.datasets import EvalPage
from rtprune.evaluation.metrics import page_ned

Metric = Literal["agreement", "accuracy"]
BASELINE_METHODS: tuple[str, ...] = ("norm", "random", "padding", "tome", "divprune", "spatial")
UNPRUNED = PruneConfig(method="none", retention=1.0)


def setting_label(config: PruneConfig) -> str:
    """Short, unique-per-grid name of a setting for tables and plots."""
    if config.method == "none":
        return "none"
    dynamic = "-dynamic" if getattr(config, "dynamic", False) else ""
    return f"{config.method}{dynamic}@{config.retention:g}"


def supports_dynamic() -> bool:
    """Whether PruneConfig has the dynamic-retention option (added to the library after this module)."""
    return any(f.name == "dynamic" for f in fields(PruneConfig))


def settings_grid(
    methods: Iterable[str], retentions: Iterable[float], *, dynamic_retentions: Iterable[float] = ()
) -> list[PruneConfig]:
    """The unpruned reference first (agreement is measured against it), then every method x retention,
    then RTPrune with dynamic retention centred on each of `dynamic_retentions`. Duplicates are dropped
    and "none" in `methods` adds nothing (the reference is always there)."""
    grid, retentions = [UNPRUNED], list(retentions)  # reused for every method, so not a one-shot iterator
    for method in methods:
        if method != "none":
            grid += [
                PruneConfig(method=cast(Method, method), retention=r) for r in retentions
            ]  # checked there
    dynamic_retentions = list(dynamic_retentions)
    if dynamic_retentions and not supports_dynamic():
        raise ValueError("this PruneConfig has no dynamic option; leave dynamic_retentions empty")
    grid += [PruneConfig(method="rtprune", retention=r, dynamic=True) for r in dynamic_retentions]
    unique = {setting_label(c): c for c in grid}
    return list(unique.values())


@dataclass(frozen=True)
class SettingResult:
    """One setting's scores on the sample. accuracy is None when no page has a reference."""

    label: str
    method: str
    retention: float
    dynamic: bool
    pages: int
    accuracy: float | None
    agreement: float
    kept_share: float  # visual tokens kept / visual tokens, over all pages
    prefill_s_per_page: float
    gpu_s_per_page: float
    usd_per_1k_pages: float

    def score(self, metric: Metric) -> float | None:
        return self.accuracy if metric == "accuracy" else self.agreement


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def summarize_setting(
    config: PruneConfig,
    results: Sequence[PageResult],
    unpruned_texts: Sequence[str],
    references: Sequence[str | None],
    gpu_usd_per_s: float,
) -> SettingResult:
    """Score one setting's page results (in sample order) against the unpruned texts and references."""
    if not (len(results) == len(unpruned_texts) == len(references)) or not results:
        raise ValueError(
            f"{len(results)} results, {len(unpruned_texts)} unpruned texts, {len(references)} "
            "references: every setting must cover the same non-empty sample"
        )
    texts = [r.text for r in results]
    scored = [(t, ref) for t, ref in zip(texts, references, strict=True) if ref is not None]
    usage = [r.usage for r in results]
    visual = sum(u.visual_tokens for u in usage)
    gpu_s = _mean([u.gpu_s for u in usage])
    return SettingResult(
        label=setting_label(config),
        method=config.method,
        retention=config.retention,
        dynamic=bool(getattr(config, "dynamic", False)),
        pages=len(results),
        accuracy=1.0 - _mean([page_ned(t, ref) for t, ref in scored]) if scored else None,
        agreement=1.0 - _mean([page_ned(t, u) for t, u in zip(texts, unpruned_texts, strict=True)]),
        kept_share=sum(u.visual_tokens_kept for u in usage) / visual if visual else 1.0,
        prefill_s_per_page=_mean([u.prefill_s for u in usage]),
        gpu_s_per_page=gpu_s,
        usd_per_1k_pages=1000.0 * gpu_s * gpu_usd_per_s,
    )


@dataclass(frozen=True)
class Recommendation:
    metric: Metric
    target: float
    setting: SettingResult | None  # None: no setting meets the target
    reason: str


def recommend(results: Sequence[SettingResult], *, metric: Metric, target: float) -> Recommendation:
    """The cheapest setting whose `metric` is >= target (ties: the higher score, then fewer tokens kept).
    None, with the best score seen, when no setting meets it or the metric was not measured."""
    measured = [r for r in results if r.score(metric) is not None]
    if not measured:
        return Recommendation(metric, target, None, f"no {metric} measured (no page has a reference)")
    meeting = [r for r in measured if r.score(metric) >= target]  # type: ignore[operator]
    if not meeting:
        best = max(measured, key=lambda r: r.score(metric))  # type: ignore[arg-type,return-value]
        return Recommendation(
            metric,
            target,
            None,
            f"no setting reaches {metric} >= {target:g}; the best is "
            f"{best.label} at {best.score(metric):.4f}",
        )
    choice = min(meeting, key=lambda r: (r.usd_per_1k_pages, -r.score(metric), r.kept_share))  # type: ignore[operator]
    return Recommendation(
        metric,
        target,
        choice,
        f"{choice.label} is the cheapest setting with {metric} "
        f"{choice.score(metric):.4f} >= {target:g} at ${choice.usd_per_1k_pages:.4f} per 1k pages",
    )


# One batch of page images and the settings to run -> one list of PageResult per setting, in order.
SettingsRunner = Callable[[Sequence[object], Sequence[PruneConfig]], list[list[PageResult]]]


def run_sweep(
    pages: Sequence[EvalPage],
    settings: Sequence[PruneConfig],
    runner: SettingsRunner,
    *,
    gpu_usd_per_s: float,
    batch_size: int = 4,
) -> list[SettingResult]:
    """Run every setting on every page, batch by batch (a runner may reuse a batch's encoding across
    settings), then score each setting against the unpruned reference, which must come first."""
    if not settings or settings[0].method != "none":
        raise ValueError("the first setting must be the unpruned reference (method 'none')")
    if not pages:
        raise ValueError("no pages to evaluate")
    per_setting: list[list[PageResult]] = [[] for _ in settings]
    for batch_index, start in enumerate(range(0, len(pages), batch_size)):
        images = [p.image for p in pages[start : start + batch_size]]
        # Rotate the order settings run in from batch to batch: whichever runs first after an encode (cold
        # caches) or during a busy spell on a shared machine would otherwise always be the same one.
        order = [(batch_index + k) % len(settings) for k in range(len(settings))]
        outputs = runner(images, [settings[i] for i in order])
        if len(outputs) != len(settings) or any(len(o) != len(images) for o in outputs):
            raise ValueError("runner returned a result count that does not match the batch and settings")
        for i, out in zip(order, outputs, strict=True):
            per_setting[i].extend(out)
    unpruned_texts = [r.text for r in per_setting[0]]
    references = [p.reference for p in pages]
    return [
        summarize_setting(cfg, res, unpruned_texts, references, gpu_usd_per_s)
        for cfg, res in zip(settings, per_setting, strict=True)
    ]
