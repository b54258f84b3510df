"""read_committed after compaction reads the index and the pending records, not every ledger record:
object-store requests counted at a proxy in front of a real S3-compatible server, and the same rows
returned as the full-ledger read of the same output before its compaction."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from pipeline.config import StorageConfig
from pipeline.cost.accounting import price_pages
from pipeline.cost.pricing import load_pricing
from pipeline.stages.rows import RunStamp, new_row, to_table
from pipeline.store.compaction import compact
from pipeline.store.index import mark_open
from pipeline.store.output import Output, commit_part
from pipeline.store.read import read_committed
from rtprune.engines.contract import EngineIdentity

from .fault_proxy import FaultProxy
from .s3_server import REGION, MotoS3

ENGINES = ("e1", "e2")


def _doc(seq: int, k: int) -> str:
    return f"{seq:08x}{k:08x}"  # a doc_id: 16 hex digits


def _commit(out: Output, run_id: str, seq: int, docs: list[tuple[str, str]], engine: str) -> None:
    """One part of docs (doc_id, content_hash), two pages each, committed under `engine`."""
    stamp = RunStamp(run_id, EngineIdentity("m", "tiny", "rtprune", engine))
    rows = [
        new_row(stamp, {"doc_id": d, "source_uri": f"s3://b/{d}.pdf", "content_hash": h}, p, 2)
        for d, h in docs
        for p in range(2)
    ]
    mark_open(out, run_id)
    commit_part(
        out,
        run_id,
        seq,
        price_pages(to_table(rows), load_pricing()),
        [{"doc_id": d, "content_hash": h, "source_uri": f"s3://b/{d}.pdf", "ok": True} for d, h in docs],
        engine,
    )


def _history(out: Output, commits: int) -> None:
    """`commits` parts of 4 documents; every 10th part re-commits changed versions of earlier documents,
    and some documents are also committed under a second engine config."""
    for seq in range(commits):
        if seq % 10 == 9:
            docs = [(_doc(seq - 9, k), f"v{seq}") for k in range(4)]  # changed since: replaces older rows
        else:
            docs = [(_doc(seq, k), "v0") for k in range(4)]
        _commit(out, "history", seq, docs, ENGINES[seq % 7 == 3])


def _reads(proxy: FaultProxy, fn) -> tuple[object, Counter]:
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    proxy.clear(history=True)
    result = fn()
    area = Counter()
    for s in proxy.seen:
        if s.method == "GET" and "list-type" not in s.path and "prefix=" not in s.path:
            key = s.path.split("?")[0].split("/", 3)[-1]
            area[key.split("/", 1)[0]] += 1  # _ledger, _index, pages
    return result, area


def _sorted(table):
    return table.sort_by([("run_id", "ascending"), ("doc_id", "ascending"), ("page_index", "ascending")])


@pytest.mark.slow
def test_read_committed_after_compaction_reads_the_index_not_the_ledger():
    commits, pending = 60, 3
    with MotoS3() as moto, FaultProxy(moto.url) as proxy:
        bucket = moto.make_bucket(f"read-{uuid.uuid4().hex[:8]}")
        settings = {
            "endpoint_url": moto.url,
            "key": moto.access.key,
            "secret": moto.access.secret,
            "region": REGION,
        }
        direct = StorageConfig.model_validate(settings)
        counted = StorageConfig.model_validate({**settings, "endpoint_url": proxy.url})
        uri = f"s3://{bucket}/out"
        _history(Output.open(uri, direct), commits)
        before = {
            latest: _reads(proxy, lambda latest=latest: read_committed(uri, counted, latest))
            for latest in (True, False)
        }
        compact(Output.open(uri, direct), close=("history",))
        for seq in range(pending):  # a later run, killed before its compaction: pending records
            _commit(Output.open(uri, direct), "later", seq, [(_doc(seq, 0), "v-later")], "e1")
        before_pending = read_committed(uri, direct)
        after = {
            latest: _reads(proxy, lambda latest=latest: read_committed(uri, counted, latest))
            for latest in (True, False)
        }
    (old_latest, old_gets), (new_latest, new_gets) = before[True], after[True]
    print(
        f"\nGETs by area, latest_only: before compaction {dict(old_gets)}, after {dict(new_gets)}; "
        f"every row: before {dict(before[False][1])}, after {dict(after[False][1])}"
    )
    assert old_gets["_ledger"] == commits  # the full-ledger read: one GET per record
    for latest in (True, False):
        gets = after[latest][1]
        assert gets["_ledger"] == pending, gets  # only the records the index does not hold yet
        assert gets["_index"] <= 3, gets  # the manifest and the index file(s)
    assert new_gets["pages"] <= commits + pending  # only parts that hold a latest version
    # same rows as the full-ledger read: the later run's versions replace its documents' (engine e1)
    replaced = {_doc(seq, 0) for seq in range(pending)}
    expected = _sorted(before_pending)
    assert _sorted(new_latest).equals(expected)
    assert {r["doc_id"] for r in new_latest.to_pylist() if r["run_id"] == "later"} == replaced
    assert not _sorted(old_latest).equals(expected)
    assert after[False][0].num_rows == before[False][0].num_rows + 2 * pending
    assert old_latest.num_rows < before[False][0].num_rows  # superseded versions are dropped
