"""Pricing table: node types -> $/hour, CPUs, GPUs; and the per-second rates page costs use."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_PRICING_PATH = Path(__file__).resolve().parents[2] / "infra" / "pricing.yaml"


class NodeType(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    usd_per_hour: float = Field(ge=0)
    cpus: int = Field(ge=1)
    gpus: int = Field(default=0, ge=0)
    gpu: str = ""


class Pricing(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    gpu_node_type: str
    cpu_node_type: str
    head_node_type: str
    node_types: dict[str, NodeType]

    @model_validator(mode="after")
    def _check_refs(self) -> Pricing:
        for role in ("gpu_node_type", "cpu_node_type", "head_node_type"):
            ref = getattr(self, role)
            if ref not in self.node_types:
                raise ValueError(
                    f"{role}={ref!r} is not in node_types ({', '.join(sorted(self.node_types))})"
                )
        if self.node_types[self.gpu_node_type].gpus < 1:
            raise ValueError(f"gpu_node_type={self.gpu_node_type!r} has no GPUs")
        return self

    @property
    def gpu_usd_per_s(self) -> float:
        node = self.node_types[self.gpu_node_type]
        return node.usd_per_hour / 3600.0 / node.gpus

    @property
    def cpu_usd_per_s(self) -> float:
        node = self.node_types[self.cpu_node_type]
        return node.usd_per_hour / 3600.0 / node.cpus

    def node_usd_per_s(self, node_type: str) -> float:
        return self.node_types[node_type].usd_per_hour / 3600.0


def load_pricing(path: str | Path | None = None) -> Pricing:
    """Read a pricing YAML (default: infra/pricing.yaml shipped with the project)."""
    path = Path(path) if path else DEFAULT_PRICING_PATH
    with open(path) as f:
        return Pricing.model_validate(yaml.safe_load(f))
