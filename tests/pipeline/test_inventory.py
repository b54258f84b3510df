"""Inventory inputs through a real local Ray Data read: an S3 Inventory manifest with gzipped header-less
CSV files, and Parquet inventory files, planned against committed documents."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from pipeline.config import PipelineConfig
from pipeline.store.listing import doc_id_for
from pipeline.store.output import Output, commit_part
from pipeline.store.plan import plan_run

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,  # a minute or more per run
]

ROWS = [("bkt", f"in/doc%20{i}.pdf", str(1000 + i), "2026-01-01T00:00:00.000Z", f"e{i}") for i in range(30)]
ROWS += [("bkt", "in/readme.txt", "5", "2026-01-01T00:00:00.000Z", "t")]


def _csv_manifest(folder):
    (folder / "data").mkdir(parents=True)
    files = []
    for n, chunk in enumerate((ROWS[:15], ROWS[15:])):
        table = pa.table({c: [r[i] for r in chunk] for i, c in enumerate(["b", "k", "s", "m", "e"])})
        name = f"data/{n}.csv.gz"
        with gzip.open(folder / name, "wb") as f:
            pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False))
        files.append({"key": name})
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "sourceBucket": "bkt",
                "destinationBucket": "arn:aws:s3:::inv",
                "fileFormat": "CSV",
                "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag",
                "files": files,
            }
        )
    )
    return folder / "manifest.json"


def _parquet_files(folder):
    folder.mkdir(parents=True)
    for n, chunk in enumerate((ROWS[:10], ROWS[10:])):
        pq.write_table(
            pa.table(
                {
                    "bucket": [r[0] for r in chunk],
                    "key": [r[1].replace("%20", " ") for r in chunk],
                    "size": [int(r[2]) for r in chunk],
                    "e_tag": [r[4] for r in chunk],
                }
            ),
            folder / f"{n}.parquet",
        )
    return folder


def _commit_first_ten(out: Output) -> None:
    from pipeline.store.index import mark_open

    docs = [
        {
            "doc_id": doc_id_for(f"s3://bkt/in/doc {i}.pdf"),
            "content_hash": f"etag:e{i}",
            "source_uri": f"s3://bkt/in/doc {i}.pdf",
            "ok": True,
        }
        for i in range(10)
    ]
    docs[0]["content_hash"] = "etag:old"  # changed since
    mark_open(out, "before")
    from pipeline.schema import PAGES_SCHEMA

    commit_part(out, "before", 0, PAGES_SCHEMA.empty_table(), docs, "eh")


# CI runs the Parquet inventory (marker ci); the CSV manifest shares all but its reader.
@pytest.mark.parametrize("kind", ["csv-manifest", pytest.param("parquet-folder", marks=pytest.mark.ci)])
def test_inventory_is_read_by_ray_data_and_planned(local_ray, tmp_path, kind):
    source = _csv_manifest(tmp_path / "inv") if kind == "csv-manifest" else _parquet_files(tmp_path / "inv")
    cfg = PipelineConfig.model_validate(
        {
            "input": str(source),
            "output": str(tmp_path / "out"),
            "input_kind": "inventory",
            "plan": {"buckets": 4},
        }
    )
    out = Output.open(cfg.output)
    _commit_first_ten(out)
    plan = plan_run(cfg, out, "eh")
    todo = pa.concat_tables([pq.read_table(f) for f in plan.todo_files])
    plan.cleanup()
    assert (plan.listed, plan.skipped, plan.todo) == (30, 9, 21)  # the .txt is not a document
    expected = {f"s3://bkt/in/doc {i}.pdf" for i in [0, *range(10, 30)]}
    assert set(todo["source_uri"].to_pylist()) == expected
    assert set(todo["doc_id"].to_pylist()) == {doc_id_for(u) for u in expected}
    assert plan.todo_bytes == sum(1000 + i for i in [0, *range(10, 30)])
