"""Planning against the compacted index: same answers as the old full-ledger path, bounded reads, and
nothing lost or redone when a run dies between its commits and the compaction."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import PipelineConfig
from pipeline.cost.accounting import price_pages
from pipeline.cost.pricing import load_pricing
from pipeline.driver.commit import Committer
from pipeline.stages.rows import RunStamp, new_row, to_table
from pipeline.store.compaction import compact
from pipeline.store.index import bucket_ids, load_index, mark_open, open_runs, pending_records, read_bucket
from pipeline.store.listing import content_hash_of, doc_id_for, list_documents
from pipeline.store.output import Output, commit_part
from pipeline.store.plan import plan_run
from pipeline.store.read import read_committed
from rtprune.engines.contract import EngineIdentity

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.legacy_plan import legacy_plan  # noqa: E402

PRICING = load_pricing()
KEY = "eh"


def _corpus(tmp_path: Path, n: int) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / ("sub" if i % 3 else "") / f"d{i:04d}.pdf").write_bytes(b"%PDF-1.4 " + str(i).encode())
    return folder


def _commit_docs(out: Output, run_id: str, seq: int, docs: list, ok: bool = True) -> None:
    stamp = RunStamp(run_id, EngineIdentity("m", "tiny", "rtprune", "h"))
    rows = [
        new_row(stamp, {"doc_id": d.doc_id, "source_uri": d.source_uri, "content_hash": d.content_hash}, 0, 1)
        | ({} if ok else {"status": "error", "error_stage": "ocr", "error": "x"})
        for d in docs
    ]
    entries = [
        {"doc_id": d.doc_id, "content_hash": d.content_hash, "source_uri": d.source_uri, "ok": ok}
        for d in docs
    ]
    mark_open(out, run_id)  # as run_pipeline does before its first commit
    commit_part(out, run_id, seq, price_pages(to_table(rows), PRICING), entries, KEY)


def _cfg(tmp_path: Path, **extra) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {"input": str(tmp_path / "in"), "output": str(tmp_path / "out"), "plan": {"buckets": 8}, **extra}
    )


def _todo_ids(plan) -> set[str]:
    return {d for f in plan.todo_files for d in pq.read_table(f)["doc_id"].to_pylist()}


def _plan(cfg: PipelineConfig, out: Output, **kw):
    p = plan_run(cfg, out, KEY, **kw)
    ids = _todo_ids(p)
    p.cleanup()
    return p, ids


def test_bucket_ids_are_contiguous_doc_id_ranges():
    ids = sorted(doc_id_for(f"s3://b/{i}.pdf") for i in range(2000))
    buckets = bucket_ids(pa.array(ids), 16)
    assert list(buckets) == sorted(buckets) and set(buckets) == set(range(16))  # ranges, all used
    assert list(bucket_ids(pa.array(ids), 1)) == [0] * len(ids)
    assert bucket_ids(pa.array(["ffffffff00000000", "0000000000000000"]), 256).tolist() == [255, 0]


def test_plan_matches_the_old_full_ledger_path(tmp_path):
    """New, changed, committed, committed-with-errors (with and without retry_failed): same to-do set."""
    _corpus(tmp_path, 60)
    out = Output.open(str(tmp_path / "out"))
    docs = list_documents(str(tmp_path / "in"), _cfg(tmp_path).storage)
    for seq in range(5):  # 40 committed in 5 commits; 5 of them with errors
        _commit_docs(out, "old", seq, docs[seq * 8 : (seq + 1) * 8 - 1])
        _commit_docs(out, "old", 10 + seq, docs[(seq + 1) * 8 - 1 : (seq + 1) * 8], ok=False)
    compact(out, close=("old",))
    (tmp_path / "in" / "d0000.pdf").write_bytes(b"%PDF-1.4 changed")  # changed since its commit
    for retry_failed in (False, True):
        cfg = _cfg(tmp_path, retry_failed=retry_failed)
        plan, ids = _plan(cfg, out)
        old_todo, old_skipped, _ = legacy_plan(cfg, out, KEY)
        assert ids == {d.doc_id for d in old_todo}
        assert (plan.listed, plan.skipped, plan.todo) == (60, old_skipped, len(old_todo))
        assert plan.todo == 20 + 1 + (5 if retry_failed else 0)


def test_planning_reads_the_index_not_every_record(tmp_path):
    _corpus(tmp_path, 30)
    out = Output.open(str(tmp_path / "out"))
    docs = list_documents(str(tmp_path / "in"), _cfg(tmp_path).storage)
    for seq, doc in enumerate(docs[:20]):
        _commit_docs(out, "history", seq, [doc])
    assert len(pending_records(out, load_index(out))) == 20  # no index yet: the whole ledger
    compact(out, close=("history",))
    state = load_index(out)
    assert state.rows == 20 and state.watermark == {"history": 19} and open_runs(out) == []
    assert pending_records(out, state) == []  # planning reads the index files only
    plan, ids = _plan(_cfg(tmp_path), out)
    assert plan.todo == 10 and ids == {d.doc_id for d in docs[20:]} and plan.pending_records == 0


def test_run_killed_after_commits_before_compaction_neither_redoes_nor_loses(tmp_path):
    """The crash window of the index: commits are in the ledger, the index does not have them yet."""
    _corpus(tmp_path, 12)
    out = Output.open(str(tmp_path / "out"))
    docs = list_documents(str(tmp_path / "in"), _cfg(tmp_path).storage)
    _commit_docs(out, "first", 0, docs[:4])
    compact(out, close=("first",))
    mark_open(out, "crashed")  # what run_pipeline does before its first commit
    for seq in range(3):
        _commit_docs(out, "crashed", seq, docs[4 + seq * 2 : 6 + seq * 2])
    # ... and the process dies here: no compaction, the marker stays.
    plan, ids = _plan(_cfg(tmp_path), out)
    assert plan.pending_records == 3 and ids == {d.doc_id for d in docs[10:]}
    compact(out, close=("next",), stale_after_s=3600)  # the next run's compaction folds them
    state = load_index(out)
    assert state.rows == 10 and state.watermark["crashed"] == 2
    assert open_runs(out) == ["crashed"]  # not yet stale: a live run might still commit
    plan, ids = _plan(_cfg(tmp_path), out)
    assert plan.pending_records == 0 and ids == {d.doc_id for d in docs[10:]}
    compact(out, stale_after_s=0)
    assert open_runs(out) == []


def test_records_committed_after_a_compaction_are_still_seen(tmp_path):
    """A long run compacted by someone else midway: its later commits stay pending until it closes."""
    _corpus(tmp_path, 6)
    out = Output.open(str(tmp_path / "out"))
    docs = list_documents(str(tmp_path / "in"), _cfg(tmp_path).storage)
    mark_open(out, "live")
    _commit_docs(out, "live", 0, docs[:2])
    compact(out, close=("other",))
    _commit_docs(out, "live", 1, docs[2:4])
    state = load_index(out)
    assert [r["seq"] for r in pending_records(out, state)] == [1]
    plan, ids = _plan(_cfg(tmp_path), out)
    assert ids == {d.doc_id for d in docs[4:]}
    compact(out, close=("live",))
    assert open_runs(out) == [] and load_index(out).rows == 4


def test_index_splits_buckets_as_it_grows_and_keeps_the_newest_commit(tmp_path):
    out = Output.open(str(tmp_path / "out"))
    _corpus(tmp_path, 40)
    docs = list_documents(str(tmp_path / "in"), _cfg(tmp_path).storage)
    _commit_docs(out, "a", 0, docs[:10], ok=False)
    compact(out, bucket_rows=4, close=("a",))
    _commit_docs(out, "b", 0, docs, ok=True)  # redoes the failed ten, adds thirty
    state = compact(out, bucket_rows=4, close=("b",))
    assert state.buckets >= 8 and state.rows == 40 and load_index(out).nonce == state.nonce
    rows = pa.concat_tables([read_bucket(out, state, b) for b in range(state.buckets)])
    assert rows.num_rows == 40 and all(rows["ok"].to_pylist()) and set(rows["run_id"].to_pylist()) == {"b"}
    for b in range(state.buckets):  # every file holds only its own range
        assert set(bucket_ids(read_bucket(out, state, b)["doc_id"], state.buckets)) <= {b}
    for _ in range(4):  # old generations are collected
        _commit_docs(out, "c", _, docs[:1])
        compact(out, bucket_rows=4)
    assert len(out.glob("_index/manifest-*.json")) == 3


def test_orphans_of_a_crashed_run_are_cleaned_from_names(tmp_path):
    _corpus(tmp_path, 4)
    out = Output.open(str(tmp_path / "out"))
    docs = list_documents(str(tmp_path / "in"), _cfg(tmp_path).storage)
    mark_open(out, "crashed")
    _commit_docs(out, "crashed", 0, docs[:1])
    orphan = out.part_path("crashed", 1)
    out.fs.pipe_file(orphan, out.fs.cat_file(out.part_path("crashed", 0)))
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    _plan(_cfg(tmp_path), out)
    assert not out.fs.exists(orphan) and out.fs.exists(out.part_path("crashed", 0))
    assert read_committed(str(tmp_path / "out")).num_rows == 1


def test_plan_only_writes_nothing(tmp_path):
    _corpus(tmp_path, 3)
    out = Output.open(str(tmp_path / "out"))
    plan, ids = _plan(_cfg(tmp_path), out, read_only=True)
    assert plan.todo == 3 and len(ids) == 3 and not (tmp_path / "out").exists()


def test_uri_list_entries_are_checked_in_parallel(tmp_path):
    """A URI list's metadata requests run on the thread pool (a chunk at a time), not one by one."""
    from pipeline.store.listing import iter_documents

    _corpus(tmp_path, 50)
    listing = tmp_path / "list.txt"
    listing.write_text(
        "\n".join(str(p) for p in sorted((tmp_path / "in").rglob("*.pdf"))) + "\nmissing.pdf\n"
    )
    import threading

    seen: set[str] = set()
    import pipeline.store.listing as listing_mod

    original = listing_mod.manifest_ref

    def spy(entry, storage):
        seen.add(threading.current_thread().name)
        return original(entry, storage)

    listing_mod.manifest_ref = spy
    try:
        pages = list(iter_documents(str(listing), _cfg(tmp_path).storage, list_threads=4, page_size=20))
    finally:
        listing_mod.manifest_ref = original
    assert [len(p) for p in pages] == [20, 20, 11]
    assert len(seen) > 1 and all(name.startswith("list") for name in seen)
    assert sum(1 for p in pages for r in p if r.error) == 1


def test_committer_fills_parts_to_the_row_target(tmp_path):
    out = Output.open(str(tmp_path))
    stamp = RunStamp("r", EngineIdentity("m", "tiny", "rtprune", "h"))
    c = Committer(
        out, "r", KEY, PRICING, commit_documents=0, commit_interval_s=3600, first_seq=0, part_target_rows=10
    )
    for i in range(7):  # 3 pages each: a part is committed once it holds >= 10 rows (4 documents)
        doc = {"doc_id": f"d{i}", "source_uri": f"s3://b/d{i}.pdf", "content_hash": "c"}
        c.add(to_table([new_row(stamp, doc, p, 3) for p in range(3)]))
    c.finish()
    records = [json.loads(Path(p).read_text()) for p in sorted(out.glob("_ledger/r/*.json"))]
    assert [len(r["documents"]) for r in records] == [4, 3] and [r["rows"] for r in records] == [12, 9]


@pytest.mark.parametrize(
    "info", [{"ETag": '"abc"', "size": 3}, {"size": 3, "LastModified": "2024-05-01T10:00:00.000Z"}]
)
def test_inventory_rows_name_and_hash_objects_as_a_listing_does(info):
    from datetime import datetime

    from pipeline.store.inventory import inventory_rows

    batch = pa.table(
        {
            "Bucket": ["bkt", "bkt", "bkt", "bkt"],
            "Key": ["dir/a+b%3Fc.pdf", "dir/notes.txt", "dir/old.pdf", "dir/gone.pdf"],
            "Size": ["3", "1", "3", "3"],
            "LastModifiedDate": [info.get("LastModified", "")] * 4,
            "ETag": [info.get("ETag", "").strip('"')] * 4,
            "IsLatest": ["true", "true", "false", "true"],
            "IsDeleteMarker": ["false", "false", "false", "true"],
        }
    )
    rows = inventory_rows(batch, url_encoded=True)
    assert rows["source_uri"].to_pylist() == ["s3://bkt/dir/a b?c.pdf"]  # decoded; others skipped
    assert rows["doc_id"].to_pylist() == [doc_id_for("s3://bkt/dir/a b?c.pdf")]
    listed = dict(info)
    if "LastModified" in listed:
        listed["LastModified"] = datetime.fromisoformat(listed["LastModified"].replace("Z", "+00:00"))
    assert rows["content_hash"].to_pylist() == [content_hash_of(listed)]


def test_todo_blocks_recut_the_range_files_into_equal_blocks(tmp_path):
    from pipeline.store.listing import DOC_SCHEMA
    from pipeline.store.plan import Plan, todo_blocks

    files = []
    for b, n in enumerate([5, 0, 12, 3]):  # range files of uneven sizes
        rows = [
            {
                "doc_id": f"{b:02d}{i:014x}",
                "uri": f"u{b}-{i}",
                "source_uri": f"u{b}-{i}",
                "size_bytes": i,
                "content_hash": "c",
                "error": "",
            }
            for i in range(n)
        ]
        files.append(str(tmp_path / f"todo-{b}.parquet"))
        pq.write_table(pa.Table.from_pylist(rows, schema=DOC_SCHEMA), files[-1])
    plan = Plan(todo=20, todo_files=files, rows_per_block=4)
    blocks = list(todo_blocks(plan))
    assert [b.num_rows for b in blocks] == [4, 4, 4, 4, 4]
    ids = [d for b in blocks for d in b["doc_id"].to_pylist()]
    assert ids == [d for f in files for d in pq.read_table(f)["doc_id"].to_pylist()]  # same rows, same order
    assert [b.num_rows for b in todo_blocks(Plan(todo=20, todo_files=files, rows_per_block=7))] == [7, 7, 6]
