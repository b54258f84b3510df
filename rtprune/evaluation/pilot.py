"""The evaluation job's typed config and its one entry point: sample -> sweep -> table, plot, advice.

Built by jobs/evaluate.py from YAML plus command-line overrides; nothing here reads the environment.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rtprune.engines.contract import EngineConfig
from rtprune.evaluation.datasets import PageSample, load_omnidocbench, load_pdf_sample
from rtprune.evaluation.report import markdown_table, plot_tradeoff, write_csv
from rtprune.evaluation.sweep import (
    BASELINE_METHODS,
    Metric,
    Recommendation,
    SettingResult,
    SettingsRunner,
    recommend,
    run_sweep,
    settings_grid,
    supports_dynamic,
)


class EvaluateConfig(BaseModel):
    """What to evaluate, on how many pages, and what the user needs. Each field says what it trades."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Local folder or fsspec URI of PDFs, a single PDF, or an OmniDocBench-format folder.
    corpus: str
    # "auto": an OmniDocBench folder is a local folder holding one *.json; anything else is PDFs.
    corpus_format: Literal["auto", "pdf", "omnidocbench"] = "auto"
    # More pages narrow the error bars of the scores and cost proportionally more (sample x settings).
    sample_pages: int = Field(default=50, ge=1)
    # Caps pages per PDF so one long document cannot dominate the sample.
    max_pages_per_doc: int = Field(default=2, ge=1)
    seed: int = 0
    # Render resolution of PDF pages; the engine resizes to its mode, so above ~150 only costs time.
    dpi: int = Field(default=144, ge=36, le=600)
    # The model, mode, prompt and decoding to evaluate; its `prune` field is ignored (the sweep sets it).
    engine: EngineConfig = Field(default_factory=EngineConfig)
    # Methods x retentions: every extra one is another pass over the sample.
    methods: list[str] = Field(default_factory=lambda: ["rtprune", *BASELINE_METHODS])
    retentions: list[float] = Field(default_factory=lambda: [0.6, 0.7, 0.84, 0.95])
    # RTPrune with dynamic retention, centred on each of these (empty: none). The default sweeps it at the
    # paper's mean retention whenever the installed pruning library has the dynamic option.
    dynamic_retentions: list[float] = Field(default_factory=lambda: [0.84] if supports_dynamic() else [])
    # Pages per engine batch: larger batches are faster on a GPU and need more memory.
    batch_size: int = Field(default=4, ge=1)
    pricing: str | None = None  # pricing YAML read by the job; None = pipeline/cost/pricing.yaml
    target_metric: Metric = "agreement"
    target: float = Field(default=0.99, ge=0.0)
    output_dir: str = "evaluation"

    @model_validator(mode="after")
    def _check_grid(self) -> EvaluateConfig:
        settings_grid(self.methods, self.retentions, dynamic_retentions=self.dynamic_retentions)
        return self


@dataclass(frozen=True)
class EvaluationOutcome:
    results: list[SettingResult]
    recommendation: Recommendation
    skipped: list[tuple[str, str]]
    files: dict[str, str]


def load_sample(config: EvaluateConfig) -> PageSample:
    fmt = config.corpus_format
    if fmt == "auto":
        folder = Path(config.corpus)
        fmt = "omnidocbench" if folder.is_dir() and len(list(folder.glob("*.json"))) == 1 else "pdf"
    if fmt == "omnidocbench":
        return load_omnidocbench(config.corpus, limit=config.sample_pages, seed=config.seed)
    return load_pdf_sample(
        config.corpus,
        sample_pages=config.sample_pages,
        max_pages_per_doc=config.max_pages_per_doc,
        seed=config.seed,
        dpi=config.dpi,
    )


def write_outputs(
    results: list[SettingResult], rec: Recommendation, skipped: list[tuple[str, str]], output_dir: Path
) -> dict[str, str]:
    output_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "csv": write_csv(results, output_dir / "sweep.csv"),
        "plot": plot_tradeoff(results, output_dir / "sweep.png", rec),
    }
    text = markdown_table(results, rec)
    if skipped:
        text += "\nSkipped (unreadable): " + "; ".join(f"{name} ({why})" for name, why in skipped) + "\n"
    (output_dir / "sweep.md").write_text(text, encoding="utf-8")
    files["markdown"] = output_dir / "sweep.md"
    advice = {
        "metric": rec.metric,
        "target": rec.target,
        "reason": rec.reason,
        "setting": asdict(rec.setting) if rec.setting else None,
    }
    (output_dir / "recommendation.json").write_text(json.dumps(advice, indent=2), encoding="utf-8")
    files["recommendation"] = output_dir / "recommendation.json"
    return {k: str(v) for k, v in files.items()}


def run_evaluation(
    config: EvaluateConfig, *, gpu_usd_per_s: float, runner: SettingsRunner | None = None
) -> EvaluationOutcome:
    """Sample the corpus, run every setting (default: the engine, loaded once), write sweep.csv /
    sweep.md / sweep.png / recommendation.json under output_dir, and return what was written.
    The GPU-second rate comes from the caller's pricing table (jobs/evaluate.py loads it)."""
    sample = load_sample(config)
    if not sample.pages:
        raise ValueError(f"no readable pages in {config.corpus}; skipped: {sample.skipped}")
    settings = settings_grid(config.methods, config.retentions, dynamic_retentions=config.dynamic_retentions)
    if runner is None:
        from rtprune.evaluation.engine_runner import EngineSettingsRunner

        engine_runner = EngineSettingsRunner(config.engine)
        engine_runner.warm_up(sample.pages[0].image)
        runner = engine_runner
    results = run_sweep(
        sample.pages, settings, runner, gpu_usd_per_s=gpu_usd_per_s, batch_size=config.batch_size
    )
    rec = recommend(results, metric=config.target_metric, target=config.target)
    files = write_outputs(results, rec, sample.skipped, Path(config.output_dir))
    return EvaluationOutcome(results, rec, sample.skipped, files)
