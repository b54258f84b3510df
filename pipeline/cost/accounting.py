"""Cost accounting: direct cost per page (priced rows) and fully loaded cost from node-seconds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.cost.pricing import Pricing
from pipeline.cost.routing_savings import routing_savings
from pipeline.schema import PAGES_SCHEMA
from pipeline.stages.adaptive import adaptive_counts
from pipeline.stages.page_policy import recovery_counts
from pipeline.stages.page_quality import suspect_count
from pipeline.stages.rows import identity_columns
from pipeline.summary import RunSummary

if TYPE_CHECKING:  # the summary needs no torch (rtprune)
    from rtprune.engines.contract import EngineIdentity

HEAD_RESOURCE = "node:__internal_head__"


def price_pages(table: pa.Table, pricing: Pricing) -> pa.Table:
    """Set gpu_s, cpu_s (= render seconds), cost_direct_usd and the rates used, for every row."""
    gpu_s = pc.add(pc.add(table["encode_s"], table["prune_s"]), pc.add(table["prefill_s"], table["decode_s"]))
    cpu_s = table["render_s"]
    cost = pc.add(pc.multiply(gpu_s, pricing.gpu_usd_per_s), pc.multiply(cpu_s, pricing.cpu_usd_per_s))
    n = table.num_rows
    columns = {
        "gpu_s": gpu_s,
        "cpu_s": cpu_s,
        "cost_direct_usd": cost,
        "pricing_name": pa.array([pricing.name] * n, pa.string()),
        "gpu_node_type": pa.array([pricing.gpu_node_type] * n, pa.string()),
        "gpu_usd_per_s": pa.array([pricing.gpu_usd_per_s] * n, pa.float64()),
        "cpu_usd_per_s": pa.array([pricing.cpu_usd_per_s] * n, pa.float64()),
    }
    for name, values in columns.items():
        table = table.set_column(table.schema.get_field_index(name), PAGES_SCHEMA.field(name), values)
    return table


@dataclass(frozen=True)
class NodeState:
    """One node as ray.nodes() reports it at one moment."""

    node_id: str
    alive: bool
    resources: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def node_state(raw: dict[str, Any]) -> NodeState:
    return NodeState(
        str(raw.get("NodeID", "")),
        bool(raw.get("Alive", False)),
        dict(raw.get("Resources") or {}),
        {str(k): str(v) for k, v in (raw.get("Labels") or {}).items()},
    )


def node_type_of(node: NodeState, pricing: Pricing) -> str:
    """Pricing node type of a node: a label value or custom resource naming a type in the table wins;
    else a node with GPUs is the GPU type (a single-node GPU box is a GPU machine even as head), the
    head is the head type, and any other node the CPU type."""
    for value in node.labels.values():
        if value in pricing.node_types:
            return value
    for name in node.resources:
        if name in pricing.node_types:
            return name
    if node.resources.get("GPU", 0) > 0:
        return pricing.gpu_node_type
    if HEAD_RESOURCE in node.resources:
        return pricing.head_node_type
    return pricing.cpu_node_type


def node_seconds(samples: Sequence[tuple[float, Sequence[NodeState]]], pricing: Pricing) -> dict[str, float]:
    """Seconds each node type was alive between the first and last sample. Between two samples a node
    alive at both counts the whole gap, alive at one counts half (it changed somewhere in between)."""
    seconds: dict[str, float] = {}
    for (t0, nodes0), (t1, nodes1) in zip(samples, samples[1:], strict=False):
        alive0 = {n.node_id: n for n in nodes0 if n.alive}
        alive1 = {n.node_id: n for n in nodes1 if n.alive}
        for node_id in alive0.keys() | alive1.keys():
            node = alive1.get(node_id) or alive0[node_id]
            share = 1.0 if node_id in alive0 and node_id in alive1 else 0.5
            kind = node_type_of(node, pricing)
            seconds[kind] = seconds.get(kind, 0.0) + share * (t1 - t0)
    return seconds


def fully_loaded_usd(seconds: dict[str, float], pricing: Pricing) -> float:
    return sum(s * pricing.node_usd_per_s(kind) for kind, s in seconds.items())


def _known(x: float) -> float | None:
    return None if math.isnan(x) else x


def _sum(table: pa.Table, column: str) -> float:
    return float(pc.sum(table[column]).as_py() or 0) if table.num_rows else 0.0


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    started_at: str
    finished_at: str
    wall_s: float
    identity: EngineIdentity  # the engine's, as its rows name it


def structure_counts(rows: pa.Table) -> dict[str, int]:
    """The run's layout counts: pages read as a layout, and table, formula and figure blocks."""
    if not rows.num_rows:
        return {"pages_layout_parsed": 0, "tables": 0, "formulas": 0, "figures": 0}
    return {
        "pages_layout_parsed": int(pc.sum(pc.cast(rows["layout_parsed"], pa.int64())).as_py() or 0),
        **{name: int(_sum(rows, f"n_{name}")) for name in ("tables", "formulas", "figures")},
    }


def summarize(rows: pa.Table, info: RunInfo, seconds: dict[str, float], pricing: Pricing) -> RunSummary:
    """Sums of this run's committed rows plus the fully loaded cost. $ per 1,000 pages counts ok pages:
    the price of a page that came out as text (routed pages included)."""
    ok = int(pc.sum(pc.equal(rows["status"], "ok")).as_py() or 0) if rows.num_rows else 0
    direct = _sum(rows, "cost_direct_usd")
    saved = routing_savings(rows, pricing.gpu_usd_per_s)
    loaded = fully_loaded_usd(seconds, pricing)
    flagged = rows.filter(rows["doc_flagged"])["doc_id"] if rows.num_rows else pa.array([], pa.string())
    counts: dict[str, Any] = {
        **recovery_counts(rows),
        **adaptive_counts(rows),
        "pages_suspect": suspect_count(rows),
        **identity_columns(info.identity),
        **structure_counts(rows),
    }
    return RunSummary(
        run_id=info.run_id,
        started_at=info.started_at,
        finished_at=info.finished_at,
        wall_s=info.wall_s,
        documents=len(set(rows["doc_id"].to_pylist())) if rows.num_rows else 0,
        pages_ok=ok,
        pages_failed=rows.num_rows - ok,
        **counts,
        documents_flagged=len(pc.unique(flagged)),
        pages_routed=saved.pages_routed,
        pages_ocr=saved.pages_ocr,
        gpu_s_avoided_estimate=_known(saved.gpu_s_avoided),
        usd_per_1k_pages_direct_without_routing=_known(
            1000 * (direct + saved.usd_avoided) / ok if ok else 0.0
        ),
        visual_tokens=int(_sum(rows, "visual_tokens")),
        visual_tokens_kept=int(_sum(rows, "visual_tokens_kept")),
        gpu_s=_sum(rows, "gpu_s"),
        cpu_s=_sum(rows, "cpu_s"),
        pricing_name=pricing.name,
        cost_direct_usd=direct,
        node_seconds=seconds,
        cost_fully_loaded_usd=loaded,
        usd_per_1k_pages_direct=1000 * direct / ok if ok else 0.0,
        usd_per_1k_pages_fully_loaded=1000 * loaded / ok if ok else 0.0,
        utilisation=direct / loaded if loaded else 0.0,
    )
