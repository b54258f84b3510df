import pyarrow as pa
import pytest

from pipeline.cost.accounting import NodeState, RunInfo, node_seconds, node_type_of, price_pages, summarize
from pipeline.cost.pricing import load_pricing
from pipeline.driver.commit import SUMMARY_COLUMNS
from pipeline.stages.rows import RunStamp, mark_error, new_row, to_table
from rtprune.engines.contract import EngineIdentity

PRICING = load_pricing()
STAMP = RunStamp("r", EngineIdentity("m", "tiny", "rtprune", "h"))


def _rows():
    doc = {"doc_id": "d", "source_uri": "s3://b/d.pdf", "content_hash": "e"}
    ok = new_row(STAMP, doc, 0, 2) | {
        "encode_s": 0.1,
        "prune_s": 0.01,
        "prefill_s": 0.2,
        "decode_s": 0.69,
        "render_s": 0.5,
        "visual_tokens": 100,
        "visual_tokens_kept": 84,
    }
    bad = mark_error(new_row(STAMP, doc, 1, 2) | {"render_s": 0.5}, "ocr", "boom")
    return to_table([ok, bad])


def test_direct_cost_is_gpu_and_cpu_seconds_at_table_rates():
    table = price_pages(_rows(), PRICING)
    assert table.schema == _rows().schema
    ok = table.to_pylist()[0]
    assert ok["gpu_s"] == pytest.approx(1.0) and ok["cpu_s"] == 0.5
    assert ok["cost_direct_usd"] == pytest.approx(PRICING.gpu_usd_per_s + 0.5 * PRICING.cpu_usd_per_s)
    assert ok["pricing_name"] == PRICING.name and ok["gpu_node_type"] == PRICING.gpu_node_type
    assert table.to_pylist()[1]["cost_direct_usd"] == pytest.approx(0.5 * PRICING.cpu_usd_per_s)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (NodeState("h", True, {"CPU": 4, "node:__internal_head__": 1}), PRICING.head_node_type),
        (NodeState("g", True, {"CPU": 4, "GPU": 1}), PRICING.gpu_node_type),
        (NodeState("c", True, {"CPU": 8}), PRICING.cpu_node_type),
        (NodeState("l", True, {"CPU": 8, "GPU": 8}, {"ray.io/node-type": "p4d.24xlarge"}), "p4d.24xlarge"),
        (NodeState("r", True, {"CPU": 16, "c7i.4xlarge": 1}), "c7i.4xlarge"),
    ],
)
def test_node_type_mapping(node, expected):
    assert node_type_of(node, PRICING) == expected


def test_node_seconds_count_alive_time_and_half_gaps_at_transitions():
    head = NodeState("h", True, {"CPU": 2, "node:__internal_head__": 1})
    gpu = NodeState("g", True, {"GPU": 1})
    samples = [(0.0, [head]), (10.0, [head, gpu]), (30.0, [head, gpu]), (40.0, [head, NodeState("g", False)])]
    seconds = node_seconds(samples, PRICING)
    assert seconds[PRICING.head_node_type] == pytest.approx(40)
    assert seconds[PRICING.gpu_node_type] == pytest.approx(5 + 20 + 5)


def test_summary_sums_rows_and_prices_the_cluster():
    table = price_pages(_rows(), PRICING).select(SUMMARY_COLUMNS)
    info = RunInfo("r", "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00", 60.0, STAMP.identity)
    seconds = {PRICING.gpu_node_type: 60.0}
    s = summarize(table, info, seconds, PRICING)
    direct = sum(table["cost_direct_usd"].to_pylist())
    loaded = 60 * PRICING.node_usd_per_s(PRICING.gpu_node_type)
    assert (s.pages_ok, s.pages_failed, s.documents) == (1, 1, 1)
    assert s.cost_direct_usd == pytest.approx(direct) and s.cost_fully_loaded_usd == pytest.approx(loaded)
    assert s.usd_per_1k_pages_direct == pytest.approx(1000 * direct)
    assert s.utilisation == pytest.approx(direct / loaded)
    assert (s.visual_tokens, s.visual_tokens_kept) == (100, 84)


def test_rows_with_a_missing_column_are_rejected():
    row = new_row(STAMP, {"doc_id": "d", "source_uri": "u", "content_hash": "e"}, 0, 1)
    del row["text"]
    with pytest.raises(KeyError):
        to_table([row])
    assert (
        to_table([new_row(STAMP, {"doc_id": "d", "source_uri": "u", "content_hash": "e"}, 0, 1)]).num_rows
        == 1
    )
    assert pa.types.is_int32(to_table([]).schema.field("page_index").type)
