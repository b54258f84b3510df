import os
import time

import pyarrow.compute as pc
import pytest

from pipeline.cost.accounting import price_pages
from pipeline.cost.pricing import load_pricing
from pipeline.driver.commit import Committer
from pipeline.stages.rows import RunStamp, mark_error, new_row, to_table
from pipeline.store.output import (
    Output,
    clean_orphans,
    commit_part,
    committed_documents,
    read_ledger,
)
from pipeline.store.read import read_committed
from rtprune.engines.contract import EngineIdentity

PRICING = load_pricing()


def _doc_rows(run_id, doc_id, pages, text="t", error=False):
    stamp = RunStamp(run_id, EngineIdentity("m", "tiny", "rtprune", "h"))
    doc = {"doc_id": doc_id, "source_uri": f"s3://b/{doc_id}.pdf", "content_hash": "c1"}
    if error:
        return [mark_error(new_row(stamp, doc, -1, -1), "render", "corrupt")]
    return [new_row(stamp, doc, i, pages) | {"text": f"{text}{i}"} for i in range(pages)]


def test_committer_commits_only_complete_documents_in_parts(tmp_path):
    out = Output.open(str(tmp_path))
    c = Committer(out, "run1", "eh", PRICING, commit_documents=2, commit_interval_s=3600, first_seq=0)
    a, b, e = _doc_rows("run1", "a", 3), _doc_rows("run1", "b", 2), _doc_rows("run1", "e", 0, error=True)
    c.add(to_table(a[:2]))  # a incomplete
    c.add(to_table(b + e))  # b, e complete -> first part
    assert [r["seq"] for r in read_ledger(out)] == [0]
    c.add(to_table(a[2:]))
    c.finish()
    records = read_ledger(out)
    assert [sorted(d["doc_id"] for d in r["documents"]) for r in records] == [["b", "e"], ["a"]]
    assert committed_documents(records)[("e", "c1", "eh")] is False  # has an error row
    table = read_committed(str(tmp_path))
    assert sorted(zip(table["doc_id"].to_pylist(), table["page_index"].to_pylist(), strict=True)) == [
        ("a", 0),
        ("a", 1),
        ("a", 2),
        ("b", 0),
        ("b", 1),
        ("e", -1),
    ]
    assert c.stats.pages_ok == 5 and c.stats.pages_failed == 1


def test_incomplete_document_at_end_is_never_committed(tmp_path):
    c = Committer(Output.open(str(tmp_path)), "r", "eh", PRICING, 1, 3600, 0)
    c.add(to_table(_doc_rows("r", "a", 3)[:1]))
    with pytest.raises(RuntimeError, match="incomplete"):
        c.finish()
    assert read_committed(str(tmp_path)).num_rows == 0


def test_orphan_parts_are_invisible_and_cleaned_after_grace(tmp_path):
    out = Output.open(str(tmp_path))
    table = price_pages(to_table(_doc_rows("r1", "a", 2)), PRICING)
    commit_part(out, "r1", 0, table, [{"doc_id": "a", "content_hash": "c1", "source_uri": "u"}], "eh")
    orphan = out.part_path("r2", 0)  # a crashed run wrote its part but never its ledger record
    out.fs.makedirs(orphan.rsplit("/", 1)[0], exist_ok=True)
    out.fs.pipe_file(orphan, out.fs.cat_file(out.part_path("r1", 0)))
    assert read_committed(str(tmp_path)).num_rows == 2
    assert clean_orphans(out, read_ledger(out), grace_s=3600) == []  # too young: may be a live run
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    assert clean_orphans(out, read_ledger(out), grace_s=3600) == [orphan]
    assert out.fs.exists(out.part_path("r1", 0)) and not out.fs.exists(orphan)


def test_newer_commit_of_a_document_replaces_older_rows_unless_asked_for_all(tmp_path):
    out = Output.open(str(tmp_path))
    docs = [{"doc_id": "a", "content_hash": "c1", "source_uri": "u"}]
    commit_part(out, "r1", 0, price_pages(to_table(_doc_rows("r1", "a", 2, "old")), PRICING), docs, "eh")
    time.sleep(0.01)
    commit_part(out, "r2", 0, price_pages(to_table(_doc_rows("r2", "a", 3, "new")), PRICING), docs, "eh")
    latest = read_committed(str(tmp_path))
    assert latest["text"].to_pylist() == ["new0", "new1", "new2"]
    assert read_committed(str(tmp_path), latest_only=False).num_rows == 5
    assert pc.all(pc.equal(latest["run_id"], "r2")).as_py()
