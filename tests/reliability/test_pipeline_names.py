"""Untrusted object names through the pipeline: keys with dot segments, absolute-looking paths, control
characters and odd Unicode never make it write outside the output prefix, and each comes out intact
(byte for byte) in its rows' source_uri."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .hostile_names import hostile_names, is_inside, moto_names
from .hostile_pdfs import healthy_pdf
from .pipeline_harness import exactly_once_problems, local_ray, pipeline_config, rows_by_doc
from .s3_server import MotoS3

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# Two different objects whose keys differ only after a '?': a name parsed as a URL would give them one doc_id.
TWINS = ["twin?v=1.pdf", "twin?v=2.pdf"]


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    with local_ray():
        yield


@pytest.fixture(scope="module")
def s3_run(ray_session: None) -> Iterator[dict[str, Any]]:
    from pipeline.driver.run import run_pipeline
    from pipeline.store.read import read_committed

    with MotoS3() as moto:
        assert moto.access is not None
        tag = uuid.uuid4().hex[:8]
        bucket = moto.make_bucket(f"names-{tag}")
        client = moto.access.client()
        for case in moto_names():
            client.put_object(Bucket=bucket, Key=f"in/{case.key}", Body=healthy_pdf(1, case.label))
        for key in TWINS:
            client.put_object(Bucket=bucket, Key=f"in/{key}", Body=healthy_pdf(2, key))
        client.put_object(Bucket=bucket, Key="outside-marker.txt", Body=b"must stay alone")
        before = _keys(client, bucket)
        store = {"endpoint_url": moto.url, "key": moto.access.key, "secret": moto.access.secret}
        # One document per commit: the twins land in different part files, as they would in a big run.
        cfg = pipeline_config(f"s3://{bucket}/in/", f"s3://{bucket}/out", storage=store, commit_documents=1)
        summary = run_pipeline(cfg)
        table = read_committed(f"s3://{bucket}/out", moto.access.storage_options())
        yield {
            "bucket": bucket,
            "before": before,
            "after": _keys(client, bucket),
            "table": table,
            "summary": summary,
        }


def _keys(client: Any, bucket: str) -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def test_writes_stay_under_the_output_prefix(s3_run: dict[str, Any]) -> None:
    written = s3_run["after"] - s3_run["before"]
    assert written, "the run wrote nothing"
    outside = sorted(k for k in written if not is_inside("out", k))
    assert outside == []
    assert s3_run["before"] <= s3_run["after"]  # no input object was overwritten away or deleted


def test_keys_differing_after_a_question_mark_both_keep_their_pages(s3_run: dict[str, Any]) -> None:
    assert s3_run["summary"].documents == len(moto_names()) + len(TWINS)
    uris = [f"s3://{s3_run['bucket']}/in/{key}" for key in TWINS]
    assert (
        exactly_once_problems(s3_run["table"].filter(_is_any(s3_run["table"], uris)), dict.fromkeys(uris, 2))
        == []
    )


@pytest.mark.parametrize("label", [c.label for c in moto_names()])
def test_key_comes_out_intact_in_source_uri(s3_run: dict[str, Any], label: str) -> None:
    key = next(c.key for c in hostile_names() if c.label == label)
    uri = f"s3://{s3_run['bucket']}/in/{key}"
    rows = rows_by_doc(s3_run["table"]).get(uri)
    assert rows is not None, f"no rows with source_uri {uri!r}"
    assert exactly_once_problems(s3_run["table"].filter(_is_any(s3_run["table"], [uri])), {uri: 1}) == []
    assert rows[0]["status"] == "ok", rows


def _is_any(table: Any, uris: list[str]) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.is_in(table["source_uri"], value_set=pa.array(uris))


LOCAL_NAMES = [
    "line\nbreak.pdf",
    "tab\tname.pdf",
    "invoice\u202efdp.exe.pdf",
    "\U0001f4c4 report.pdf",
    "..hidden.pdf",
    "q?x=1.pdf",
]


@pytest.fixture(scope="module")
def local_run(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from pipeline.driver.run import run_pipeline
    from pipeline.store.read import read_committed

    root = tmp_path_factory.mktemp("localnames")
    (root / "in").mkdir()
    for name in LOCAL_NAMES:
        (root / "in" / name).write_bytes(healthy_pdf(1, "local"))
    before = set(root.rglob("*"))
    run_pipeline(pipeline_config(str(root / "in"), str(root / "out")))
    return {
        "root": root,
        "created": set(root.rglob("*")) - before,
        "table": read_committed(str(root / "out")),
    }


def test_local_names_with_control_characters_stay_inside_a_local_output(local_run: dict[str, Any]) -> None:
    out = str(local_run["root"] / "out")
    assert local_run["created"] and all(is_inside(out, str(p)) for p in local_run["created"])
    assert len(set(local_run["table"].column("doc_id").to_pylist())) == len(LOCAL_NAMES)


def test_local_names_come_out_intact(local_run: dict[str, Any]) -> None:
    uris = set(local_run["table"].column("source_uri").to_pylist())
    assert uris == {"file://" + str(local_run["root"] / "in" / n) for n in LOCAL_NAMES}
