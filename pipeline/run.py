"""One digitize run, driver side: plan (list minus ledger), build the Ray Data pipeline, stream and
commit its output, price the run, write the summary. Expects Ray to be initialised by the caller."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.accounting import NodeState, RunInfo, node_seconds, node_state, summarize
from pipeline.commit import SUMMARY_COLUMNS, Committer
from pipeline.config import PipelineConfig
from pipeline.output import Output, clean_orphans, committed_documents, read_ledger, write_summary
from pipeline.pricing import load_pricing
from pipeline.rows import RunStamp
from pipeline.schema import PAGES_SCHEMA
from pipeline.storage import DocRef, list_documents
from pipeline.summary import RunSummary
from rtprune.engines import resolve_backend
from rtprune.engines.types import EngineConfig

log = logging.getLogger("pipeline")


def engine_config_hash(engine: EngineConfig) -> str:
    """Everything that changes the text (the device does not): the ledger's notion of "same settings"."""
    blob = engine.model_dump_json(exclude={"device"})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_stamp(cfg: PipelineConfig) -> RunStamp:
    e = cfg.engine
    return RunStamp(cfg.run_id, e.model, e.mode, e.prune.method, e.prune.config_hash())


def plan(cfg: PipelineConfig, out: Output) -> tuple[list[DocRef], int, int]:
    """(documents to process, documents skipped as already committed, first part seq for this run)."""
    records = read_ledger(out)
    removed = clean_orphans(out, records, cfg.orphan_grace_s)
    if removed:
        log.info("removed %d orphan part files of crashed runs", len(removed))
    done = committed_documents(records)
    key = engine_config_hash(cfg.engine)
    docs = list_documents(cfg.input, cfg.storage)
    todo = [d for d in docs if not _is_done(done.get((d.doc_id, d.content_hash, key)), cfg.retry_failed)]
    seqs = [r["seq"] for r in records if r["run_id"] == cfg.run_id]
    return todo, len(docs) - len(todo), max(seqs, default=-1) + 1


def _is_done(committed_ok: bool | None, retry_failed: bool) -> bool:
    return committed_ok is not None and (committed_ok or not retry_failed)


class NodeSampler:
    """Samples ray.nodes() every interval_s on a daemon thread: the node-seconds of the run."""

    def __init__(self, interval_s: float) -> None:
        self.samples: list[tuple[float, list[NodeState]]] = []
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="node-sampler", daemon=True)

    def sample(self) -> None:
        import ray

        self.samples.append((time.time(), [node_state(n) for n in ray.nodes()]))

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()

    def __enter__(self) -> NodeSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# glibc gives every thread that allocates its own heap arena; an actor that decodes pages on a helper thread
# while torch works fragments them, and its RSS climbed ~30% over 1000 pages (the engine alone stays flat).
# Two arenas keep it flat (measured: +4%). Set per actor, so it holds on every node of a cluster too.
ACTOR_ENV = {"env_vars": {"MALLOC_ARENA_MAX": "2"}}


def build_dataset(cfg: PipelineConfig, docs: list[DocRef], stamp: RunStamp):  # -> ray.data.Dataset
    import ray

    from pipeline.stages import OcrStage, RenderStage

    p = cfg.pools
    ds = ray.data.from_items([asdict(d) for d in docs], override_num_blocks=max(1, min(len(docs), 10_000)))
    ds = ds.map_batches(RenderStage, fn_constructor_kwargs={"cfg": cfg, "stamp": stamp},
                        batch_size=p.render_batch_size, batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(size=p.render_actors), num_cpus=p.render_num_cpus,
                        runtime_env=ACTOR_ENV)
    initial = p.ocr_initial_actors or p.ocr_max_actors
    if resolve_backend(cfg.engine) == "vllm":
        return _vllm_ocr(ds, cfg)
    return ds.map_batches(OcrStage, fn_constructor_kwargs={"engine": cfg.engine, "sub_batch_size": p.ocr_sub_batch_size},
                          batch_size=p.ocr_batch_size, batch_format="pyarrow",
                          compute=ray.data.ActorPoolStrategy(min_size=p.ocr_min_actors, max_size=p.ocr_max_actors,
                                                             initial_size=initial),
                          num_gpus=p.ocr_num_gpus, num_cpus=p.ocr_num_cpus, memory=p.ocr_memory_bytes or None,
                          runtime_env=ACTOR_ENV)


def _vllm_ocr(ds, cfg: PipelineConfig):  # -> ray.data.Dataset
    """The OCR stage on vLLM: async actors, each keeping pages of several batches in one engine. Ray Data
    sends an actor up to ocr_batches_in_flight batches at once and runs them concurrently in the actor
    (max_concurrency); a dead actor is restarted and its unfinished batches redone (max_task_retries)."""
    import ray

    from pipeline.ocr_vllm import VllmOcrStage

    p = cfg.pools
    compute = ray.data.ActorPoolStrategy(min_size=p.ocr_min_actors, max_size=p.ocr_max_actors,
                                         initial_size=p.ocr_initial_actors or p.ocr_max_actors,
                                         max_tasks_in_flight_per_actor=p.ocr_batches_in_flight)
    return ds.map_batches(VllmOcrStage, fn_constructor_kwargs={"engine": cfg.engine, "pool": p},
                          batch_size=p.ocr_batch_size, batch_format="pyarrow", compute=compute,
                          num_gpus=p.ocr_num_gpus, num_cpus=p.ocr_num_cpus, memory=p.ocr_memory_bytes or None,
                          runtime_env=ACTOR_ENV, max_concurrency=p.ocr_batches_in_flight,
                          max_restarts=-1, max_task_retries=p.ocr_max_task_retries)


def _stream(cfg: PipelineConfig, docs: list[DocRef], committer: Committer) -> None:
    from ray.data import DataContext

    if cfg.no_progress_timeout_s:
        DataContext.get_current().execution_no_progress_timeout_s = cfg.no_progress_timeout_s
    for batch in build_dataset(cfg, docs, run_stamp(cfg)).iter_batches(batch_size=None, batch_format="pyarrow"):
        committer.add(batch)
    committer.finish()


def _run_info(cfg: PipelineConfig, slim: pa.Table, started: datetime, wall_s: float) -> RunInfo:
    stamp = run_stamp(cfg)
    meta = [stamp.model_id, stamp.model_mode, stamp.prune_method, stamp.prune_config_hash]
    ok = slim.filter(pc.equal(slim["status"], "ok")) if slim.num_rows else slim
    if ok.num_rows:  # the engine's own names (a resolved checkpoint id) beat the configured ones
        meta = [ok[c][0].as_py() for c in ("model_id", "model_mode", "prune_method", "prune_config_hash")]
    return RunInfo(cfg.run_id, started.isoformat(), datetime.now(UTC).isoformat(), wall_s, *meta)


def run_pipeline(cfg: PipelineConfig) -> RunSummary:
    """Process every new or changed document of cfg.input into cfg.output; returns the run summary."""
    started, t0 = datetime.now(UTC), time.perf_counter()
    pricing = load_pricing(cfg.pricing or None)
    out = Output.open(cfg.output, cfg.storage)
    out.check_writable()
    todo, skipped, first_seq = plan(cfg, out)
    log.info("run %s: %d documents to process, %d already committed", cfg.run_id, len(todo), skipped)
    committer = Committer(out, cfg.run_id, engine_config_hash(cfg.engine), pricing, cfg.commit_documents,
                          cfg.commit_interval_s, first_seq)
    with NodeSampler(cfg.node_sample_interval_s) as sampler:
        if todo:
            _stream(cfg, todo, committer)
    empty = PAGES_SCHEMA.empty_table().select(SUMMARY_COLUMNS)
    slim = pa.concat_tables(committer.stats.slim) if committer.stats.slim else empty
    info = _run_info(cfg, slim, started, time.perf_counter() - t0)
    summary = summarize(slim, info, node_seconds(sampler.samples, pricing), pricing)
    write_summary(out, summary)
    return summary
