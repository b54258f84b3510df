"""Planning at corpus scale, old path beside new, in one run:

    PYTHONPATH=. python benchmarks/bench_planning.py --sizes 1000000 10000000 --history 5000000 --old-at 1000000

Generates (locally, no server) S3-Inventory-style inputs (manifest.json + header-less CSV.gz files) of each
size, and a ledger of `history` committed documents (one JSON record per 8 documents, as the default commit
size used to make) that the first compaction folds into the index (timed: a one-time migration). Objects
0..history-1 of every inventory are committed, 1% of them changed since; the rest are new.

Each measurement runs in a fresh process (its ru_maxrss is the driver's peak RSS, Ray workers not
included): the new path is plan_run (a Ray Data read of the inventory, spill into doc_id ranges, merge
with the index) plus the hand-off to Ray Data (todo_dataset); the old path is the pre-index planner
(benchmarks/legacy_plan.py) given the inventory's objects as its listing (it could not read inventories),
which then reads every ledger record one at a time."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

BUCKET = "corpus"
PER_FILE = 500_000
DOCS_PER_RECORD = 8


def _key(i: int) -> str:
    return f"docs/{i:09d}.pdf"


def _etag(i: int, history: int) -> str:
    changed = i < history and i % 100 == 0
    return f"{i + (10**12 if changed else 0):032x}"


def write_inventory(folder: Path, n: int, history: int) -> Path:
    """manifest.json + CSV.gz data files (Bucket, Key, Size, LastModifiedDate, ETag), PER_FILE rows each."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    files = []
    for start in range(0, n, PER_FILE):
        idx = range(start, min(n, start + PER_FILE))
        table = pa.table(
            {
                "Bucket": pa.array([BUCKET] * len(idx)),
                "Key": [_key(i) for i in idx],
                "Size": pa.array([200_000 + i % 1000 for i in idx], pa.int64()),
                "LastModifiedDate": pa.array(["2026-01-01T00:00:00.000Z"] * len(idx)),
                "ETag": [_etag(i, history) for i in idx],
            }
        )
        name = f"data/part-{start // PER_FILE:05d}.csv.gz"
        with gzip.open(folder / name, "wb", compresslevel=1) as f:
            pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False, quoting_style="none"))
        files.append({"key": name, "size": (folder / name).stat().st_size})
    manifest = {
        "sourceBucket": BUCKET,
        "destinationBucket": "arn:aws:s3:::inventory",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag",
        "files": files,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / "manifest.json"


def write_ledger(out: Path, history: int, engine_hash: str) -> int:
    """One commit record per DOCS_PER_RECORD documents of run "history" (no part files: planning never
    reads them)."""
    folder = out / "_ledger" / "history"
    folder.mkdir(parents=True, exist_ok=True)
    seq = 0
    for start in range(0, history, DOCS_PER_RECORD):
        docs = [
            {
                "doc_id": hashlib.sha256(f"s3://{BUCKET}/{_key(i)}".encode()).hexdigest()[:16],
                "content_hash": f"etag:{i:032x}",
                "source_uri": f"s3://{BUCKET}/{_key(i)}",
                "ok": True,
            }
            for i in range(start, min(history, start + DOCS_PER_RECORD))
        ]
        record = {
            "run_id": "history",
            "seq": seq,
            "file": f"pages/history/part-{seq:06d}.parquet",
            "rows": len(docs),
            "documents": docs,
            "engine_config_hash": engine_hash,
            "committed_at": _committed_at(seq),
        }
        (folder / f"{seq:06d}.json").write_text(json.dumps(record, sort_keys=True))
        seq += 1
    return seq


def _committed_at(seq: int) -> str:
    return f"2026-01-01T00:00:{seq // 10**6:02d}.{seq % 10**6:06d}+00:00"


def write_index(out: Path, history: int, engine_hash: str):
    """The index the first compaction of write_ledger's ledger would produce, written directly."""
    from pipeline.store.compaction import fold_table
    from pipeline.store.index import INDEX_SCHEMA
    from pipeline.store.output import Output

    ids = [hashlib.sha256(f"s3://{BUCKET}/{_key(i)}".encode()).hexdigest()[:16] for i in range(history)]
    table = pa.table(
        {
            "doc_id": ids,
            "content_hash": [f"etag:{i:032x}" for i in range(history)],
            "engine_config_hash": [engine_hash] * history,
            "ok": [True] * history,
            "run_id": ["history"] * history,
            "seq": pa.array([i // DOCS_PER_RECORD for i in range(history)], pa.int64()),
            "committed_at": [_committed_at(i // DOCS_PER_RECORD) for i in range(history)],
        },
        schema=INDEX_SCHEMA,
    )
    return fold_table(Output.open(str(out)), None, table, 1_000_000)


def _config(manifest: Path, out: Path):
    from pipeline.config import PipelineConfig

    return PipelineConfig.model_validate(
        {
            "input": str(manifest),
            "output": str(out),
            "run_id": "bench",
            "plan": {"scratch_dir": str(out.parent / "scratch")},
        }
    )


def _ray():
    import ray

    for attempt in range(3):  # a loaded machine can miss Ray's fixed 30 s start-up wait
        try:
            ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
            break
        except Exception:
            if attempt == 2:
                raise
            ray.shutdown()
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False


def _hwm_mb() -> float:
    """This process's own peak RSS (VmHWM): ru_maxrss would carry the parent's peak across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _report_memory(every_s: float = 10.0) -> None:
    """Peak so far on stderr, so a measurement cut short still says how much it used."""
    import threading

    def loop() -> None:
        t0 = time.perf_counter()
        while True:
            time.sleep(every_s)
            print(
                f"[{time.perf_counter() - t0:.0f} s] driver peak so far {_hwm_mb():.0f} MB",
                file=sys.stderr,
                flush=True,
            )

    threading.Thread(target=loop, daemon=True).start()


def measure(mode: str, manifest: Path, out: Path) -> dict:
    """One measurement in this (fresh) process: wall seconds, driver peak RSS, result counts."""
    from pipeline.driver.run import engine_config_hash
    from pipeline.store.output import Output

    if mode == "new":
        _ray()
    cfg = _config(manifest, out)
    key = engine_config_hash(cfg.engine)
    base_mb = _hwm_mb()
    _report_memory()
    t0 = time.perf_counter()
    if mode == "new":
        from pipeline.driver.run import todo_dataset
        from pipeline.store.plan import plan_run

        plan = plan_run(cfg, Output.open(str(out)), key, read_only=True)
        ds = todo_dataset(plan)
        counts = {"listed": plan.listed, "todo": plan.todo, "blocks": ds.num_blocks()}
        plan.cleanup()
    else:
        from benchmarks.legacy_plan import legacy_plan
        from pipeline.store.inventory import inventory_rows
        from pipeline.store.listing import DocRef

        opts = {
            "read_options": pacsv.ReadOptions(
                column_names=["Bucket", "Key", "Size", "LastModifiedDate", "ETag"]
            ),
            "convert_options": pacsv.ConvertOptions(column_types={"Size": pa.string()}),
        }
        # the old path listed everything into one list: here, every inventory row at once
        table = pa.concat_tables(
            [pacsv.read_csv(str(p), **opts) for p in sorted((manifest.parent / "data").glob("part-*.csv.gz"))]
        )
        docs = [DocRef(**r) for r in inventory_rows(table, url_encoded=True).to_pylist()]
        del table
        todo, skipped, _ = legacy_plan(cfg, Output.open(str(out)), key, docs=docs)
        counts = {"listed": len(docs), "todo": len(todo)}
    wall_s = time.perf_counter() - t0
    peak_mb = _hwm_mb()
    return {"mode": mode, "wall_s": wall_s, "peak_mb": peak_mb, "base_mb": base_mb, **counts}


def _run_measure(mode: str, manifest: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--measure", mode, "--manifest", str(manifest), "--out", str(out)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--history", type=int, default=5_000_000)
    parser.add_argument("--old-at", type=int, default=1_000_000, help="size at which to run the old path too")
    parser.add_argument("--workdir", default="/tmp/bench_planning")
    parser.add_argument(
        "--index-direct",
        action="store_true",
        help="write the history straight into the index (no ledger, no old path): faster",
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, Path(args.manifest), Path(args.out))))
        return
    from pipeline.driver.run import engine_config_hash
    from pipeline.store.compaction import compact
    from pipeline.store.output import Output

    work = Path(args.workdir)
    out = work / "out"
    t0 = time.perf_counter()
    manifests = {
        n: (work / f"inv-{n}" / "manifest.json")
        if (work / f"inv-{n}" / "manifest.json").exists()
        else write_inventory(work / f"inv-{n}", n, args.history)
        for n in args.sizes
    }
    print(f"generated inventories {args.sizes} in {time.perf_counter() - t0:.1f} s", flush=True)
    if args.index_direct:
        t0 = time.perf_counter()
        state = write_index(
            out, args.history, engine_config_hash(_config(manifests[args.sizes[0]], out).engine)
        )
        print(
            f"wrote the index directly: {state.rows} rows in {state.buckets} buckets in "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        args.old_at = 0
    t0 = time.perf_counter()
    records = (
        0
        if args.index_direct
        else write_ledger(
            out, args.history, engine_config_hash(_config(manifests[args.sizes[0]], out).engine)
        )
    )
    print(
        f"generated a ledger of {records} records ({args.history} documents) in "
        f"{time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    results = []
    if args.old_at in manifests:
        results.append((args.old_at, _run_measure("old", manifests[args.old_at], out)))
        print("old", args.old_at, results[-1][1], flush=True)
    t0 = time.perf_counter()
    state = compact(Output.open(str(out)))
    if not args.index_direct:
        print(
            f"first compaction (one-time migration of the ledger): {time.perf_counter() - t0:.1f} s, "
            f"{state.rows} rows in {state.buckets} buckets",
            flush=True,
        )
    for n in args.sizes:
        results.append((n, _run_measure("new", manifests[n], out)))
        print("new", n, results[-1][1], flush=True)
    print(
        f"\n{'objects':>12} {'path':>5} {'wall_s':>8} {'peak_MB':>8} {'base_MB':>8} {'listed':>10} {'to do':>10}"
    )
    for n, r in results:
        print(
            f"{n:>12} {r['mode']:>5} {r['wall_s']:>8.1f} {r['peak_mb']:>8.0f} {r['base_mb']:>8.0f} "
            f"{r['listed']:>10} {r['todo']:>10}"
        )
    new = {n: r for n, r in results if r["mode"] == "new"}
    old = [r for _, r in results if r["mode"] == "old"]
    if old and args.old_at in new:
        print(
            f"at {args.old_at}: new/old wall {new[args.old_at]['wall_s'] / old[0]['wall_s']:.3f}, "
            f"peak {new[args.old_at]['peak_mb'] / old[0]['peak_mb']:.2f}"
        )
    if len(new) > 1:
        a, b = sorted(new)[0], sorted(new)[-1]
        print(
            f"{a} -> {b} objects (x{b / a:.0f}): wall x{new[b]['wall_s'] / new[a]['wall_s']:.1f}, "
            f"peak x{new[b]['peak_mb'] / new[a]['peak_mb']:.2f}"
        )


if __name__ == "__main__":
    main()
