"""Object-store requests planning makes, counted at a proxy in front of a real S3-compatible server: the
old path reads every ledger record (one GET each); the new one lists the input a page at a time and
reads the index, whatever the length of the history."""

from __future__ import annotations

import json
import math
import sys
import uuid
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .fault_proxy import FaultProxy
from .s3_server import REGION, MotoS3

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.legacy_plan import legacy_plan  # noqa: E402

ENGINE_HASH = "e1"


def _storage(endpoint: str, access) -> dict:
    return {"endpoint_url": endpoint, "key": access.key, "secret": access.secret, "region": REGION}


def _config(bucket: str, storage: dict):
    from pipeline.config import PipelineConfig

    return PipelineConfig.model_validate(
        {
            "input": f"s3://{bucket}/in/",
            "output": f"s3://{bucket}/out",
            "storage": storage,
            "run_id": "planned",
        }
    )


def _fill(client, bucket: str, objects: int, commits: int) -> None:
    """`objects` PDFs under in/, and a ledger of `commits` records covering half of them."""
    from pipeline.store.listing import doc_id_for

    for i in range(objects):
        client.put_object(Bucket=bucket, Key=f"in/d{i:06d}.pdf", Body=b"%PDF-1.4 " + str(i).encode())
    etags = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="in/"):
        etags.update({o["Key"]: o["ETag"].strip('"') for o in page.get("Contents", [])})
    per = objects // 2 // commits
    keys = sorted(etags)
    for seq in range(commits):
        docs = [
            {
                "doc_id": doc_id_for(f"s3://{bucket}/{k}"),
                "content_hash": f"etag:{etags[k]}",
                "source_uri": f"s3://{bucket}/{k}",
                "ok": True,
            }
            for k in keys[seq * per : (seq + 1) * per]
        ]
        record = {
            "run_id": "history",
            "seq": seq,
            "file": f"pages/history/part-{seq:06d}.parquet",
            "rows": len(docs),
            "documents": docs,
            "engine_config_hash": ENGINE_HASH,
            "committed_at": f"2026-01-01T00:00:00.{seq:06d}+00:00",
        }
        client.put_object(Bucket=bucket, Key=f"out/_ledger/history/{seq:06d}.json", Body=json.dumps(record))


def _counted(proxy: FaultProxy, fn):
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # no listing cached from an earlier call
    proxy.clear(history=True)
    result = fn()
    return result, Counter(f"{s.method} {s.path.split('?')[0].split('/', 2)[-1] or '/'}" for s in proxy.seen)


def _requests(objects: int, commits: int) -> tuple[Counter, Counter]:
    from pipeline.store.compaction import compact
    from pipeline.store.output import Output
    from pipeline.store.plan import plan_run

    with MotoS3() as moto, FaultProxy(moto.url) as proxy:
        bucket = moto.make_bucket(f"plan-{uuid.uuid4().hex[:8]}")
        _fill(moto.access.client(), bucket, objects, commits)
        cfg = _config(bucket, _storage(proxy.url, moto.access))
        (old_todo, _, _), old = _counted(
            proxy, lambda: legacy_plan(cfg, Output.open(cfg.output, cfg.storage), ENGINE_HASH)
        )
        compact(Output.open(cfg.output, cfg.storage))  # once: the index from the existing ledger
        plan, new = _counted(proxy, lambda: plan_run(cfg, Output.open(cfg.output, cfg.storage), ENGINE_HASH))
        todo = {d for f in plan.todo_files for d in pq.read_table(f)["doc_id"].to_pylist()}
        plan.cleanup()
    assert todo == {d.doc_id for d in old_todo} and len(todo) == objects - objects // 2 // commits * commits
    print(
        f"\n{objects} objects, {commits} commits: old path {sum(old.values())} requests, "
        f"new path {sum(new.values())} requests: {dict(new)}"
    )
    return old, new


def _check(objects: int, commits: int) -> None:
    old, new = _requests(objects, commits)
    list_pages = math.ceil(objects / 1000)
    assert sum(old.values()) >= commits + list_pages  # one GET per ledger record, plus the listing
    # the listing's pages plus a constant: index manifest and file, open markers, this run's ledger folder
    assert sum(new.values()) <= list_pages + 12, new
    assert sum(new.values()) * 10 < sum(old.values())


@pytest.mark.slow
def test_planning_requests_do_not_grow_with_the_history():
    _check(objects=2_000, commits=200)


@pytest.mark.slow
def test_planning_requests_at_20000_objects_and_2000_commits():
    _check(objects=20_000, commits=2_000)
