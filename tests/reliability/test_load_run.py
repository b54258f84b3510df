"""The load run (benchmarks/load_run.py) on a few hundred pages: every page comes out, every process type is
seen, and no type's memory grows from the first to the last quarter of the run."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PAGES = 300
MEMORY_BUDGET_MB = 8192  # all processes of one type together


def test_load_run_completes_with_flat_memory() -> None:
    from benchmarks.load_run import main

    result = main(["--pages", str(PAGES), "--interval-s", "0.5"])
    assert result["rows"] == PAGES and result["pages_ok"] == PAGES
    memory = result["memory"]
    assert {"driver", "render_actor", "render_child", "ocr_actor", "raylet"} <= set(result["seen"]), result[
        "seen"
    ]
    assert all(m["peak_total_mb"] < MEMORY_BUDGET_MB for m in memory.values()), memory
    assert [k for k, m in memory.items() if not m["flat"]] == [], memory
