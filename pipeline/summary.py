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
    # Input entries the listing left out and logged (0 in summaries written before it existed): folders
    # that could not be listed, entries that are not regular files (FIFOs, devices), links to folders or
    # out of the input folder (pipeline/store/entries.py).
    inputs_skipped: int = 0
    # Routing (0 in summaries written before it existed): pages that took their own text layer and pages
    # that went through the OCR engine; the GPU seconds the routed pages avoided, estimated as routed pages x
    # this run's mean GPU seconds per OCR'd page (None: pages were routed but none went to OCR, nothing to
    # estimate from); and $ per 1,000 pages direct as it would have been without routing, the same
    # estimate priced at the run's GPU rate (the routed pages' CPU as measured: their skipped rasterizing
    # is not added back, so it is low). None when unknown, or written before routing existed.
    pages_routed: int = 0
    pages_ocr: int = 0
    gpu_s_avoided_estimate: float | None = 0.0
    usd_per_1k_pages_direct_without_routing: float | None = None
    # The pages' layouts (0 in summaries written before layouts were read): pages whose output was read as
    # a layout with located blocks, and the table, formula and figure blocks of all pages.
    pages_layout_parsed: int = 0
    tables: int = 0
    formulas: int = 0
    figures: int = 0
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
