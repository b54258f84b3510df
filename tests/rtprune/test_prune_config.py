"""PruneConfig validation, hashing and its use inside the pydantic EngineConfig."""

from __future__ import annotations

import dataclasses
import math

import pytest

from rtprune import PruneConfig


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("method", "magic"),
        ("retention", 0.0),
        ("retention", 1.5),
        ("retention", float("nan")),
        ("min_retention", 0.0),
        ("max_retention", 1.2),
        ("ot_formulation", "exact"),
        ("merge", "sum"),
        ("ot_epsilon", 0.0),
        ("ot_epsilon", float("inf")),
        ("ot_max_iter", 0),
        ("ot_tau", -1.0),
        ("ot_tau", float("nan")),
        ("ot_tau", float("inf")),
        ("merge_step", 1.5),
        ("ot_dustbin_cost", -0.1),
        ("density_grid", 0),
        ("norm_tie_tol", -1e-3),
        ("cell_text_threshold", 2.0),
        ("seed", 1.5),
        ("dynamic", "yes"),
        ("ot_check_every", 2.5),
    ],
)
def test_bad_values_raise_value_errors_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        PruneConfig(**{field: value})


def test_min_above_max_retention_is_rejected():
    with pytest.raises(ValueError, match="min_retention"):
        PruneConfig(min_retention=0.9, max_retention=0.8)


def test_infinite_tau_points_to_the_balanced_formulation():
    with pytest.raises(ValueError, match="balanced"):
        PruneConfig(ot_formulation="semi_relaxed", ot_tau=math.inf)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PruneConfig().retention = 0.5  # type: ignore[misc]


def test_hash_is_stable_short_hex_and_sees_every_field():
    base = PruneConfig()
    assert base.config_hash() == PruneConfig().config_hash()
    assert len(base.config_hash()) == 12 and int(base.config_hash(), 16) >= 0
    hashes = {base.config_hash()}
    for field in dataclasses.fields(PruneConfig):
        value = getattr(base, field.name)
        if isinstance(value, bool):
            changed = not value
        elif isinstance(value, str):
            changed = {"method": "norm", "ot_formulation": "dustbin", "merge": "mass"}[field.name]
        elif isinstance(value, int):
            changed = value + 1
        else:
            changed = value * 0.5 if value else 0.5
        changed = {"min_retention": 0.5, "max_retention": 0.9}.get(field.name, changed)
        hashes.add(dataclasses.replace(base, **{field.name: changed}).config_hash())
    assert len(hashes) == len(dataclasses.fields(PruneConfig)) + 1


def test_engine_config_builds_prune_config_from_a_dict():
    from pydantic import ValidationError

    from rtprune.engines.contract import EngineConfig

    cfg = EngineConfig(
        prune={"method": "rtprune", "retention": 0.84, "dynamic": True, "ot_formulation": "dustbin"}
    )
    assert isinstance(cfg.prune, PruneConfig)
    assert cfg.prune == PruneConfig(retention=0.84, dynamic=True, ot_formulation="dustbin")
    with pytest.raises(ValidationError):
        EngineConfig(prune={"retention": 2.0})
    with pytest.raises(ValidationError):
        EngineConfig(prune={"method": "magic"})
    assert EngineConfig(prune=cfg.prune.__dict__).prune.config_hash() == cfg.prune.config_hash()


def test_engine_config_json_round_trip_keeps_the_prune_config():
    from rtprune.engines.contract import EngineConfig

    cfg = EngineConfig(prune={"ot_formulation": "semi_relaxed", "ot_tau": 0.0, "dynamic": True, "seed": 7})
    again = EngineConfig.model_validate_json(cfg.model_dump_json())
    assert again.prune == cfg.prune and again.prune.config_hash() == cfg.prune.config_hash()
