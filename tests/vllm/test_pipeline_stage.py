"""VllmOcrStage on the real vLLM engine (CPU build, the tiny v1 fixture), without Ray: several batches at
once in one engine, a 1x1 px page read like any other (fitted to the v1 rules), error rows for the pages it
cannot decode, and per-page GPU seconds that add up to the engine's measured busy time."""

from __future__ import annotations

import asyncio
import io
import os

import pytest
from PIL import Image
from pipeline_vllm_fixtures import FIXTURE, VLLM_CPU_ENV, cmdline, engine_section, model_dir, pools_section  # noqa: E402

from pipeline.config import PoolConfig
from pipeline.schema import PAGES_SCHEMA
from pipeline.stages.gpu_share import PHASES
from pipeline.stages.rows import OCR_OUTPUT_SCHEMA, RENDERED_SCHEMA, RunStamp, mark_error, new_row, to_table
from rtprune.engines.contract import EngineConfig, EngineIdentity

pytestmark = pytest.mark.skipif(not (FIXTURE / "model.safetensors").is_file(), reason="v1 fixture not found")

STAMP = RunStamp("run-1", EngineIdentity("m", "tiny", "none", "h"))
SIZES = [(600, 800), (800, 600), (512, 512), (900, 1300), (700, 700), (640, 900), (1000, 700), (500, 900)]


def _png(width: int, height: int, seed: int) -> bytes:
    img = Image.new("RGB", (width, height), "white")
    for k in range(12 if min(width, height) > 16 else 0):  # a few dark bars so pages differ
        y = (seed * 37 + k * 53) % (height - 8)
        img.paste((20 * k % 255, 0, 0), (10, y, width - 10, y + 6))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _row(doc: str, index: int, width: int, height: int, image: bytes | None = None) -> dict:
    row = new_row(STAMP, {"doc_id": doc, "source_uri": f"file:///{doc}.pdf", "content_hash": "c"}, index, 1)
    return {
        **row,
        "image": _png(width, height, index) if image is None else image,
        "width_px": width,
        "height_px": height,
        "page_format": "png",
    }


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    for key, value in VLLM_CPU_ENV.items():
        os.environ.setdefault(key, value)
    from pipeline.stages.ocr_vllm import VllmOcrStage

    folder = model_dir(tmp_path_factory.mktemp("model"))
    stage = VllmOcrStage(EngineConfig(**engine_section(folder)), PoolConfig(**pools_section()))
    yield stage
    stage.close()


@pytest.fixture(scope="module")
def outputs(stage):
    """Four batches sent at once, as Ray Data does with ocr_batches_in_flight > 1."""
    batches = [[_row(f"d{b}", i, *SIZES[(2 * b + i) % len(SIZES)]) for i in range(2)] for b in range(4)]
    batches[1][1] = _row("d1", 1, 1, 1)  # a 1x1 px page: scaled up to the smallest side v1 reads
    batches[2][0] = _row("d2", 0, 600, 800, image=b"not a png")  # cannot be decoded
    batches[3][0] = mark_error(_row("d3", 0, 600, 800), "render", "timed out")  # passes through
    tables = [to_table(b, RENDERED_SCHEMA) for b in batches]

    async def run_all():
        return await asyncio.gather(*(stage(t) for t in tables))

    return batches, asyncio.run(run_all())


def test_every_row_comes_back_in_order_with_the_pages_schema_and_figures(outputs):
    """The pages' columns and the figures cropped from each page image (the driver commits and drops them)."""
    batches, tables = outputs
    for batch, table in zip(batches, tables, strict=True):
        assert table.schema == OCR_OUTPUT_SCHEMA and table.schema.names[:-1] == PAGES_SCHEMA.names
        assert [(r["doc_id"], r["page_index"]) for r in table.to_pylist()] == [
            (r["doc_id"], r["page_index"]) for r in batch
        ]


def test_ok_pages_have_text_tokens_and_gpu_seconds(outputs):
    ok = [r for t in outputs[1] for r in t.to_pylist() if r["status"] == "ok"]
    assert len(ok) == 6
    for r in ok:
        assert r["finish_reason"] in ("eos", "length", "repetition") and r["output_tokens"] > 0
        # pruned inside the model (the default RTPrune setting): fewer visual tokens reach the decoder
        assert (
            r["visual_tokens"] > r["visual_tokens_kept"] > 0 and r["prompt_tokens"] > r["visual_tokens_kept"]
        )
        assert r["gpu_s"] > 0 and r["gpu_s"] == pytest.approx(sum(r[p] for p in PHASES))
        assert r["prefill_s"] > 0 and r["decode_s"] > 0  # split by the engine's own phase timings
        assert r["model_id"].endswith("deepseek-ocr-v1-tiny") and r["model_mode"] == "tiny"


def test_ok_pages_get_the_layout_of_the_text_they_kept(outputs):
    """The stage reads each kept text as the parser does (the tiny model's text has no layout to find)."""
    from rtprune.deepseek.grounding import parse_grounding

    ok = [r for t in outputs[1] for r in t.to_pylist() if r["status"] == "ok"]
    assert ok and all(r["text_source"] in ("ocr", "ocr_retry") for r in ok)
    for r in ok:
        page = parse_grounding(r["text"], hit_token_cap=r["finish_reason"] == "length")
        assert r["markdown"] == page.markdown and len(r["blocks"]) == len(page.blocks)
        assert r["layout_truncated"] == page.truncated and r["figures_png"] == []
    assert any(r["blocks"] for r in ok)  # some page has text, so the layout was really read


def test_pages_the_engine_cannot_take_become_error_rows_with_the_reason(outputs):
    rows = {(r["doc_id"], r["page_index"]): r for t in outputs[1] for r in t.to_pylist()}
    tiny = rows[("d1", 1)]
    assert (tiny["status"], tiny["error"]) == ("ok", "") and tiny["visual_tokens"] > 0 and tiny["gpu_s"] > 0
    bad = rows[("d2", 0)]
    assert bad["status"] == "error" and "cannot decode page image" in bad["error"]
    passed = rows[("d3", 0)]
    assert (passed["error_stage"], passed["error"]) == ("render", "timed out")
    assert rows[("d2", 0)]["gpu_s"] == rows[("d3", 0)]["gpu_s"] == 0  # never reached the engine


def test_pages_of_several_batches_were_in_the_engine_at_once(stage, outputs):
    assert stage._meter.clock.peak_in_flight > 2  # more than one batch of 2 pages


def test_gpu_seconds_add_up_to_the_engines_busy_time(stage, outputs):
    gpu_s = sum(r["gpu_s"] for t in outputs[1] for r in t.to_pylist())
    busy_s = stage.busy_s
    assert busy_s > 0 and gpu_s == pytest.approx(busy_s, rel=1e-9)


def test_more_work_costs_more_on_the_same_engine(stage):
    """A page forced to 8 output tokens beside one stopped at 1 pays more of the time they shared."""
    from pipeline.stages.ocr_vllm import EngineMeter, ocr_row

    engine, meter = stage._engine, EngineMeter(8)

    class Capped:  # the same engine, a different token cap per page
        def __init__(self, cap: int) -> None:
            self.cap = cap
            self.identity = engine.identity

        async def ocr_page(self, image, **kw):
            return await engine.ocr_page(image, max_new_tokens=self.cap, ignore_eos=True, **kw)

    async def run():
        return await asyncio.gather(
            ocr_row(Capped(1), _row("s", 0, 600, 800), meter),
            ocr_row(Capped(8), _row("l", 0, 600, 800), meter),
        )

    short, long_ = asyncio.run(run())
    assert (short["output_tokens"], long_["output_tokens"]) == (1, 8)
    assert long_["gpu_s"] > short["gpu_s"] > 0


def test_a_page_at_the_cap_is_retried_unpruned_then_takes_its_text_layer(stage):
    """The page policy on the vLLM stage: a page that ends at the token cap is retried with pruning off
    (the retry keeps every visual token), both attempts are charged to the page, and a born-digital page
    then takes its text layer while a scan keeps what the model read."""
    from pipeline.config import PagePolicy
    from pipeline.stages.ocr_vllm import EngineMeter, ocr_row, ocr_row_with_policy

    engine, meter, policy = stage._engine, EngineMeter(4), PagePolicy()

    class Capped:  # the same engine, every page forced to the cap
        def __init__(self) -> None:
            self.identity = engine.identity

        async def ocr_page(self, image, **kw):
            return await engine.ocr_page(image, max_new_tokens=3, ignore_eos=True, **kw)

    layer = "Born-digital text of this page, long enough to count as a text layer."
    born, scan = {**_row("b", 0, 600, 800), "text_layer": layer}, _row("s", 0, 600, 800)

    async def run():
        return await asyncio.gather(
            ocr_row(Capped(), scan, meter),
            ocr_row_with_policy(Capped(), born, meter, (), policy),
            ocr_row_with_policy(Capped(), scan, meter, (), policy),
        )

    first, born_out, scan_out = asyncio.run(run())
    assert first["finish_reason"] == "length" and first["visual_tokens"] > first["visual_tokens_kept"]
    for out in (born_out, scan_out):
        assert out["ocr_attempts"] == 2 and out["output_tokens"] == 6
        assert out["visual_tokens"] == 2 * first["visual_tokens"]
        # the retry kept all its visual tokens: pruning was off
        assert out["visual_tokens_kept"] == first["visual_tokens_kept"] + first["visual_tokens"]
        assert out["gpu_s"] == pytest.approx(sum(out[p] for p in PHASES)) and out["gpu_s"] > 0
    assert (born_out["text"], born_out["text_source"], born_out["finish_reason"]) == (
        layer,
        "text_layer",
        "length",
    )
    assert (scan_out["text_source"], scan_out["finish_reason"], scan_out["status"]) == ("ocr", "length", "ok")
    assert scan_out["text"] == first["text"]


def test_when_the_engine_dies_its_pages_fail_as_a_whole_not_as_error_rows(stage):
    """Last (it kills the module's engine): vLLM's engine core killed while pages are in it. Every page
    in flight, and any page sent after, raises EngineDied (the stage then exits its actor for Ray to redo
    the batches); none becomes an error row. Closing the dead engine leaves none of its processes."""
    import psutil

    from pipeline.stages.ocr_vllm import EngineMeter, engine_dead_errors, ocr_row
    from rtprune.engines.vllm.pages import EngineDied

    engine, meter, fatal = stage._engine, EngineMeter(8), engine_dead_errors()
    procs = psutil.Process().children(recursive=True)
    (core,) = [p for p in procs if "EngineCore" in cmdline(p)]
    vllm_procs = [p for p in procs if "VLLM" in cmdline(p)]

    class Long:  # the same engine, pages forced to 200 tokens: still running when the core is killed
        def __init__(self) -> None:
            self.identity = engine.identity

        async def ocr_page(self, image, **kw):
            return await engine.ocr_page(image, max_new_tokens=200, ignore_eos=True, **kw)

    async def run():
        pages = [
            asyncio.ensure_future(ocr_row(Long(), _row("k", i, 600, 800), meter, fatal)) for i in range(4)
        ]
        while len(engine._running) < 4:  # every page is in the engine
            await asyncio.sleep(0.05)
        core.kill()
        done = await asyncio.wait_for(asyncio.gather(*pages, return_exceptions=True), timeout=120)
        late = await asyncio.gather(
            ocr_row(engine, _row("k", 9, 600, 800), meter, fatal), return_exceptions=True
        )
        return done + late

    outcomes = asyncio.run(run())
    assert all(isinstance(o, EngineDied) for o in outcomes), outcomes
    assert engine.dead
    stage.close()
    _, alive = psutil.wait_procs(vllm_procs, timeout=60)
    assert alive == []
