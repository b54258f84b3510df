"""Run summary: what one run did and cost. Written as JSON beside the run's committed pages."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RunSummary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    started_at: str  # ISO 8601, UTC
    finished_at: str
    wall_s: float
    documents: int
    pages_ok: int
    pages_failed: int
    # The page policy's second chances (0 in summaries written before it existed): pages with more than
    # one OCR attempt, pages whose text came from a retry, pages that took their PDF text layer, and
    # documents whose share of failed or fallen-back pages exceeded the policy's threshold.
    pages_retried: int = 0
    pages_recovered: int = 0
    pages_text_layer: int = 0
    documents_flagged: int = 0
    # Quality (0 in summaries written before it existed): pages some quality check speaks against
    # (suspect), pages adaptive pruning re-read unpruned, how many of those kept the unpruned text, and what
    # the re-reads cost (their GPU seconds, and those at the rows' GPU rate; both inside gpu_s and
    # cost_direct_usd).
    pages_suspect: int = 0
    pages_adaptive_rerun: int = 0
    pages_adaptive_unpruned: int = 0
    adaptive_rerun_gpu_s: float = 0.0
    adaptive_rerun_cost_usd: float = 0.0
    visual_tokens: int
    visual_tokens_kept: int
    gpu_s: float
    cpu_s: float
    model_id: str
    model_mode: str
    prune_method: str
    prune_config_hash: str
    pricing_name: str
    cost_direct_usd: float  # sum of the rows' cost_direct_usd
    # Seconds each node type was up during the run (head included): prices the fully loaded cost.
    node_seconds: dict[str, float] = Field(default_factory=dict)
    cost_fully_loaded_usd: float
    usd_per_1k_pages_direct: float
    usd_per_1k_pages_fully_loaded: float
    utilisation: float  # direct / fully loaded
