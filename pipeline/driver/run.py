"""One digitize run, driver side: plan (input minus the committed index, pipeline/store/plan.py), build the Ray
Data pipeline, stream and commit its output, fold the commits into the index, price the run, write the
summary. Expects Ray to be initialised by the caller."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.config import PipelineConfig
from pipeline.cost.accounting import NodeState, RunInfo, node_seconds, node_state, summarize
from pipeline.cost.pricing import load_pricing
from pipeline.driver.commit import SUMMARY_COLUMNS, Committer
from pipeline.driver.console import ConsoleProgress, configure_ray_data
from pipeline.redact import describe_error
from pipeline.schema import PAGES_SCHEMA
from pipeline.stages.rows import RunStamp, identity_columns
from pipeline.store.compaction import compact
from pipeline.store.index import mark_open
from pipeline.store.lease import RunLease
from pipeline.store.listing import DocRef
from pipeline.store.output import Output, write_summary
from pipeline.store.plan import MAX_BLOCKS, Plan, plan_run, todo_blocks
from pipeline.summary import RunSummary
from rtprune.engines import check_engine, resolve_backend
from rtprune.engines.contract import EngineConfig, EngineIdentity

log = logging.getLogger("pipeline")


def engine_config_hash(engine: EngineConfig) -> str:
    """Everything that changes the text (the device does not): the ledger's notion of "same settings"."""
    blob = engine.model_dump_json(exclude={"device"})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_stamp(cfg: PipelineConfig) -> RunStamp:
    e = cfg.engine
    return RunStamp(cfg.run_id, EngineIdentity(e.model, e.mode, e.prune.method, e.prune.config_hash()))


def plan(cfg: PipelineConfig, out: Output) -> tuple[list[DocRef], int, int]:
    """(documents to process, documents skipped as already committed, first part seq for this run), as
    a list in memory: for small runs and benchmarks; run_pipeline streams plan_run's files instead."""
    p = plan_run(cfg, out, engine_config_hash(cfg.engine))
    try:
        rows = [r for f in p.todo_files for r in pq.read_table(f).to_pylist()]
    finally:
        p.cleanup()
    return [DocRef(**r) for r in rows], p.skipped, p.first_seq


def plan_only(cfg: PipelineConfig) -> str:
    """What a run would process, without writing anything to the output (jobs.digitize --plan-only)."""
    out = Output.open(cfg.output, cfg.storage)
    p = plan_run(cfg, out, engine_config_hash(cfg.engine), read_only=True)
    p.cleanup()
    return f"plan for run {cfg.run_id}: " + plan_summary(p, cfg.plan.bytes_per_page)


def plan_summary(p: Plan, bytes_per_page: int) -> str:
    skipped = f", {p.inputs_skipped} input entries skipped (see the warnings)" if p.inputs_skipped else ""
    return (
        f"{p.listed} documents listed{skipped}, {p.skipped} already committed, {p.todo} to process "
        f"({p.todo_bytes} bytes, about {p.estimated_pages(bytes_per_page)} pages); planning read the index "
        f"generation {p.index_gen or 'none'} and {p.pending_records} newer ledger records"
    )


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


def todo_dataset(todo: Plan | list[DocRef]):  # -> ray.data.Dataset
    """The documents to process as a dataset. A plan's blocks (todo_blocks: cut from its range files) are
    put into the object store one at a time (spilled to disk past its size): the driver holds only their
    references, and any node can read them (the files are on the driver's local disk). Ray Data's `local://` reads did the same, but took
    minutes to schedule on a loaded machine and are deprecated."""
    import ray

    if isinstance(todo, Plan):
        refs = [ray.put(block) for block in todo_blocks(todo)]
        return ray.data.from_arrow_refs(refs)
    return ray.data.from_items(
        [asdict(d) for d in todo], override_num_blocks=max(1, min(len(todo), MAX_BLOCKS))
    )


def build_dataset(cfg: PipelineConfig, docs: Plan | list[DocRef], stamp: RunStamp):  # -> ray.data.Dataset
    import ray

    from pipeline.stages.ocr import OcrStage
    from pipeline.stages.render import RenderStage

    p = cfg.pools
    ds = todo_dataset(docs)
    ds = ds.map_batches(
        RenderStage,
        fn_constructor_kwargs={"cfg": cfg, "stamp": stamp},
        batch_size=p.render_batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=p.render_actors),
        num_cpus=p.render_num_cpus,
        runtime_env=ACTOR_ENV,
    )
    initial = p.ocr_initial_actors or p.ocr_max_actors
    if resolve_backend(cfg.engine) == "vllm":
        return _vllm_ocr(ds, cfg)
    return ds.map_batches(
        OcrStage,
        fn_constructor_kwargs={
            "engine": cfg.engine,
            "sub_batch_size": p.ocr_sub_batch_size,
            "policy": cfg.page_policy,
            "figures": cfg.figures,
            "quality": cfg.quality,
        },
        batch_size=p.ocr_batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(
            min_size=p.ocr_min_actors, max_size=p.ocr_max_actors, initial_size=initial
        ),
        num_gpus=p.ocr_num_gpus,
        num_cpus=p.ocr_num_cpus,
        memory=p.ocr_memory_bytes or None,
        runtime_env=ACTOR_ENV,
    )


def _vllm_ocr(ds, cfg: PipelineConfig):  # -> ray.data.Dataset
    """The OCR stage on vLLM: async actors, each keeping pages of several batches in one engine. Ray Data
    sends an actor up to ocr_batches_in_flight batches at once and runs them concurrently in the actor
    (max_concurrency); a dead actor is restarted and its unfinished batches redone (max_task_retries)."""
    import ray

    from pipeline.stages.ocr_vllm import VllmOcrStage

    p = cfg.pools
    compute = ray.data.ActorPoolStrategy(
        min_size=p.ocr_min_actors,
        max_size=p.ocr_max_actors,
        initial_size=p.ocr_initial_actors or p.ocr_max_actors,
        max_tasks_in_flight_per_actor=p.ocr_batches_in_flight,
    )
    return ds.map_batches(
        VllmOcrStage,
        fn_constructor_kwargs={
            "engine": cfg.engine,
            "pool": p,
            "policy": cfg.page_policy,
            "figures": cfg.figures,
            "quality": cfg.quality,
        },
        batch_size=p.ocr_batch_size,
        batch_format="pyarrow",
        compute=compute,
        num_gpus=p.ocr_num_gpus,
        num_cpus=p.ocr_num_cpus,
        memory=p.ocr_memory_bytes or None,
        runtime_env=ACTOR_ENV,
        max_concurrency=p.ocr_batches_in_flight,
        max_restarts=-1,
        max_task_retries=p.ocr_max_task_retries,
    )


def _stream(
    cfg: PipelineConfig,
    docs: Plan | list[DocRef],
    committer: Committer,
    progress: ConsoleProgress | None,
    lease: RunLease | None,
) -> None:
    from ray.data import DataContext

    if cfg.no_progress_timeout_s:
        DataContext.get_current().execution_no_progress_timeout_s = cfg.no_progress_timeout_s
    configure_ray_data(cfg.ray_data_progress)
    if progress:
        progress.start(docs.todo if isinstance(docs, Plan) else len(docs))
    try:
        for batch in build_dataset(cfg, docs, run_stamp(cfg)).iter_batches(
            batch_size=None, batch_format="pyarrow"
        ):
            if lease is not None:
                lease.check()  # another run took the output over: stop instead of paying twice
            committer.add(batch)
            if progress:
                progress.observe(batch, committer.documents_complete)
        committer.finish()
    finally:
        if progress:  # the final line also when the run stops: it says how far it got
            progress.close()


def _run_info(cfg: PipelineConfig, slim: pa.Table, started: datetime, wall_s: float) -> RunInfo:
    identity = run_stamp(cfg).identity
    # Rows the engine produced: routed pages and render errors carry the configured names.
    read = pc.and_(pc.equal(slim["status"], "ok"), pc.greater(slim["ocr_attempts"], 0))
    ok = slim.filter(read) if slim.num_rows else slim
    if ok.num_rows:  # the engine's own names (a resolved checkpoint id) beat the configured ones
        identity = EngineIdentity(**{c: ok[c][0].as_py() for c in identity_columns(identity)})
    return RunInfo(cfg.run_id, started.isoformat(), datetime.now(UTC).isoformat(), wall_s, identity)


def run_pipeline(
    cfg: PipelineConfig, progress: ConsoleProgress | None = None, lease: RunLease | None = None
) -> RunSummary:
    """Process every new or changed document of cfg.input into cfg.output; returns the run summary.
    `progress`, if given, is fed as output arrives (the console's progress display). `lease`: the run's
    lease on the output, already held (jobs.digitize takes it before Ray starts); without one the run takes
    its own (unless cfg.lease.enabled is off), and raises LeaseHeld when another run holds the output."""
    check_engine(cfg.engine)  # jobs.digitize checked before Ray started; direct callers get it here
    out = Output.open(cfg.output, cfg.storage)
    out.check_writable()
    with contextlib.ExitStack() as stack:
        if lease is None and cfg.lease.enabled:
            lease = stack.enter_context(RunLease(out, cfg.run_id, cfg.lease, cfg.output))
        return _run(cfg, out, progress, lease)


def _run(
    cfg: PipelineConfig, out: Output, progress: ConsoleProgress | None, lease: RunLease | None
) -> RunSummary:
    started, t0 = datetime.now(UTC), time.perf_counter()
    pricing = load_pricing(cfg.pricing or None)
    key = engine_config_hash(cfg.engine)
    todo = plan_run(cfg, out, key)
    try:
        log.info("run %s: %s", cfg.run_id, plan_summary(todo, cfg.plan.bytes_per_page))
        committer = Committer(
            out,
            cfg.run_id,
            key,
            pricing,
            cfg.commit_documents,
            cfg.commit_interval_s,
            todo.first_seq,
            cfg.page_policy.flag_document_share,
            cfg.part_target_rows,
            cfg.part_target_bytes,
        )
        with NodeSampler(cfg.node_sample_interval_s) as sampler:
            if todo.todo:
                mark_open(out, cfg.run_id)  # before the first commit: planners read this run's records
                _stream(cfg, todo, committer, progress, lease)
    finally:
        todo.cleanup()
    _compact(cfg, out)
    empty = PAGES_SCHEMA.empty_table().select(SUMMARY_COLUMNS)
    slim = pa.concat_tables(committer.stats.slim) if committer.stats.slim else empty
    info = _run_info(cfg, slim, started, time.perf_counter() - t0)
    summary = summarize(slim, info, node_seconds(sampler.samples, pricing), pricing)
    summary = summary.model_copy(update={"inputs_skipped": todo.inputs_skipped})
    write_summary(out, summary)
    return summary


def _compact(cfg: PipelineConfig, out: Output) -> None:
    """Fold this run's commits into the index. Not fatal: the commits are safe in the ledger, and the
    open marker makes the next planner read them."""
    try:
        compact(out, cfg.plan.index_bucket_rows, close=(cfg.run_id,), stale_after_s=cfg.orphan_grace_s)
    except Exception as exc:  # noqa: BLE001 - any storage error; the run's output is committed already
        log.warning(
            "compaction failed (the next run or python -m jobs.compact folds the ledger): %s",
            describe_error(exc, cfg.storage.secrets()),
        )
