import pytest
from pydantic import ValidationError

from pipeline.cost.pricing import load_pricing
from pipeline.schema import PAGES_SCHEMA
from rtprune.engines.contract import EngineConfig


def test_default_pricing_rates_follow_node_prices():
    pricing = load_pricing()
    gpu_node = pricing.node_types[pricing.gpu_node_type]
    assert pricing.gpu_usd_per_s == pytest.approx(gpu_node.usd_per_hour / 3600 / gpu_node.gpus)


def test_pages_schema_has_no_nullable_columns():
    assert all(not f.nullable for f in PAGES_SCHEMA)


def test_engine_config_rejects_unknown_keys():
    with pytest.raises(ValidationError):
        EngineConfig(modle="x")
