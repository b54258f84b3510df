"""Shared pieces of the pipeline-on-vLLM tests: the fixture model as a vLLM-loadable folder, a local Ray whose
workers run vLLM's CPU build, pipeline configs with engine.backend=vllm, and test documents."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# <repo>/../shared in the main checkout; a git worktree one level deeper sees it at <repo>/../../shared.
_CANDIDATES = [
    base / "shared" / "fixtures" / "deepseek-ocr-v1-tiny" for base in (REPO.parent, REPO.parent.parent)
]
FIXTURE = next((c for c in _CANDIDATES if (c / "model.safetensors").is_file()), _CANDIDATES[0])

# vLLM's CPU build on a shared machine: no thread pinning, two threads. Given to every Ray worker.
VLLM_CPU_ENV = {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "2"}


def model_dir(root: Path) -> Path:
    """The v1 fixture made vLLM-loadable by the plugin's helper (config, weights, tokenizer)."""
    from rtprune.engines.vllm.plugin.fixture import prepare_model_dir

    return prepare_model_dir(FIXTURE, root / "deepseek-ocr-v1-tiny")


def engine_section(folder: Path, **fields: Any) -> dict[str, Any]:
    """engine.backend=vllm on the fixture folder: mode tiny (64 visual tokens), fp32, short outputs."""
    return {
        "model": str(folder),
        "backend": "vllm",
        "mode": "tiny",
        "dtype": "float32",
        "device": "cpu",
        "max_new_tokens": 8,
        **fields,
    }


def pools_section(**fields: Any) -> dict[str, Any]:
    """One OCR actor on a logical GPU, small batches so that several are in its engine at once."""
    return {
        "render_actors": 1,
        "render_num_cpus": 0.5,
        "ocr_num_gpus": 1,
        "ocr_num_cpus": 0.5,
        "ocr_batch_size": 2,
        "ocr_batches_in_flight": 6,
        "ocr_vllm": {"kv_cache_gib": 1.0, "max_num_seqs": 8, "enforce_eager": True},
        **fields,
    }


# Set in every Ray worker of one local_ray (and so in the vLLM processes they start): finds them all after
# the fact, re-parented or not.
RUN_MARKER = "RTPRUNE_TEST_RAY_RUN"


@dataclass
class RayRun:
    marker: str
    session_dir: str = ""
    leftovers: list[str] = field(default_factory=list)  # processes of this Ray still alive after shutdown

    def actor_logs(self, name: str) -> str:
        """The stdout and stderr of this Ray's workers whose logs mention `name` (an actor class)."""
        texts = (
            p.read_text(errors="replace") for p in sorted(Path(self.session_dir, "logs").glob("worker-*"))
        )
        return "\n".join(t for t in texts if name in t)


@contextlib.contextmanager
def local_ray(num_cpus: int = 8, num_gpus: int = 2, grace_s: float = 120.0) -> Iterator[RayRun]:
    """Local Ray with logical CPUs/GPUs; workers import this checkout and get vLLM's CPU settings. After
    ray.shutdown(), waits up to grace_s for every process that carries this run's marker (Ray's workers,
    vLLM's engine processes) to end; `leftovers` lists the ones that did not (they are then killed)."""
    import ray
    from ray.data import DataContext

    from pipeline.driver.local_ray import init_local_ray

    run = RayRun(marker=uuid.uuid4().hex)
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO)), **VLLM_CPU_ENV, RUN_MARKER: run.marker}
    init_local_ray(
        address="local",
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=False,
        runtime_env={"env_vars": env},
    )
    try:
        run.session_dir = ray._private.worker._global_node.get_session_dir_path()
        DataContext.get_current().enable_progress_bars = False
        yield run
    finally:
        ray.shutdown()
        run.leftovers = outliving_processes(run.marker, grace_s)


def marked_processes(marker: str) -> list[Any]:
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(RUN_MARKER) == marker:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def cmdline(proc) -> str:
    """A process's command line, "" once it cannot be read (it ended, or is a zombie not yet reaped: a
    child of the test process that exited earlier is one until the test process waits for it)."""
    import psutil

    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def outliving_processes(marker: str, grace_s: float) -> list[str]:
    """Processes with the marker still alive after grace_s, as "pid cmdline"; killed once listed."""
    import psutil

    _, alive = psutil.wait_procs(marked_processes(marker), timeout=grace_s)
    out = []
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            out.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
            proc.kill()
    return out


def strip_pdf_bytes() -> bytes:
    """A one-page PDF whose page is a 1:60 strip: rendered fine, refused by the engine (no readable view)."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=10, height=600)
    page.insert_text((1, 300), "x", fontsize=6)
    return doc.tobytes()


def rows_by_page(table: Any) -> dict[tuple[str, int], list[dict[str, Any]]]:
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        out.setdefault((row["source_uri"], row["page_index"]), []).append(row)
    return out
