"""Storage faults through the pipeline: the S3 server (moto, IAM auth on) sits behind the fault proxy.
Transient errors and stalls are retried and the run completes with every page once; a permanent
failure stops the run before any document is processed, with a clear message, committing nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .fault_proxy import Fault, FaultProxy
from .hostile_pdfs import healthy_pdf
from .pipeline_harness import exactly_once_problems, local_ray, pipeline_config
from .s3_server import MotoS3, S3Access

pytestmark = [pytest.mark.ray, pytest.mark.slow]

DOCS, PAGES = 4, 2
EARLY_S = 30.0  # a permanent failure must surface at planning time, not after the documents ran


@pytest.fixture(scope="module")
def env() -> Iterator[dict[str, Any]]:
    with MotoS3() as moto, FaultProxy(moto.url) as proxy, local_ray():
        assert moto.access is not None
        tag = uuid.uuid4().hex[:8]
        inputs, outputs = moto.make_bucket(f"in-{tag}"), moto.make_bucket(f"out-{tag}")
        client = moto.access.client()
        for i in range(DOCS):
            client.put_object(Bucket=inputs, Key=f"docs/doc-{i}.pdf", Body=healthy_pdf(PAGES, f"s3-{i}"))
        yield {"moto": moto, "proxy": proxy, "in": inputs, "out": outputs, "access": moto.access}


def storage(access: S3Access, proxy: FaultProxy) -> dict[str, Any]:
    return {"endpoint_url": proxy.url, "region": "us-east-1", "key": access.key, "secret": access.secret}


def _expected(env: dict[str, Any]) -> dict[str, int]:
    return {f"s3://{env['in']}/docs/doc-{i}.pdf": PAGES for i in range(DOCS)}


def _objects_under(env: dict[str, Any], bucket: str, prefix: str) -> list[str]:
    listing = env["access"].client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


def _document_reads(proxy: FaultProxy, bucket: str) -> list[str]:
    return [s.path for s in proxy.seen if s.method == "GET" and s.path.startswith(f"/{bucket}/docs/")]


def test_transient_errors_resets_and_stalls_are_retried_and_the_run_completes(env: dict[str, Any]) -> None:
    from pipeline.driver.run import run_pipeline
    from pipeline.store.read import read_committed

    proxy: FaultProxy = env["proxy"]
    proxy.clear(history=True)
    proxy.inject(Fault.stall(1.5), method="GET", times=3)
    proxy.inject(Fault.error(503), probability=0.15, seed=3)
    proxy.inject(Fault.error(500), method="PUT", probability=0.15, seed=4)
    proxy.inject(Fault.reset(), probability=0.05, seed=5)
    out_uri = f"s3://{env['out']}/transient"
    cfg = pipeline_config(f"s3://{env['in']}/docs", out_uri, storage=storage(env["access"], proxy))
    summary = run_pipeline(cfg)
    proxy.clear()
    kinds = {s.fault for s in proxy.faults()}
    assert {"stall", "status"} <= kinds, kinds  # the faults really happened during the run
    table = read_committed(out_uri, env["access"].storage_options())  # straight to the store
    assert exactly_once_problems(table, _expected(env)) == []
    assert set(table.column("status").to_pylist()) == {"ok"}, table.column("error").to_pylist()
    assert summary.pages_ok == DOCS * PAGES and summary.pages_failed == 0


def _run_expecting_failure(cfg: Any) -> tuple[BaseException, float]:
    from pipeline.driver.run import run_pipeline

    start = time.monotonic()
    with pytest.raises(Exception) as info:
        run_pipeline(cfg)
    return info.value, time.monotonic() - start


def test_bad_credentials_stop_the_run_early_with_a_clear_error(env: dict[str, Any]) -> None:
    proxy: FaultProxy = env["proxy"]
    proxy.clear(history=True)
    wrong = "wrong-secret-" + uuid.uuid4().hex
    creds = {**storage(env["access"], proxy), "secret": wrong}
    cfg = pipeline_config(f"s3://{env['in']}/docs", f"s3://{env['out']}/badcreds", storage=creds)
    error, elapsed = _run_expecting_failure(cfg)
    assert elapsed < EARLY_S, elapsed
    assert (
        isinstance(error, PermissionError)
        or "denied" in str(error).lower()
        or "signature" in str(error).lower()
    )
    assert wrong not in str(error) and wrong not in repr(error)
    assert _document_reads(proxy, env["in"]) == []
    assert _objects_under(env, env["out"], "badcreds") == []


def test_missing_input_bucket_stops_the_run_early(env: dict[str, Any]) -> None:
    proxy: FaultProxy = env["proxy"]
    proxy.clear(history=True)
    missing = f"no-such-input-{uuid.uuid4().hex[:8]}"
    cfg = pipeline_config(
        f"s3://{missing}/docs", f"s3://{env['out']}/noinput", storage=storage(env["access"], proxy)
    )
    error, elapsed = _run_expecting_failure(cfg)
    assert elapsed < EARLY_S
    assert isinstance(error, FileNotFoundError | OSError), repr(error)
    assert _objects_under(env, env["out"], "noinput") == []


def test_missing_output_bucket_stops_the_run_before_any_document_is_read(env: dict[str, Any]) -> None:
    proxy: FaultProxy = env["proxy"]
    proxy.clear(history=True)
    missing = f"no-such-output-{uuid.uuid4().hex[:8]}"
    cfg = pipeline_config(
        f"s3://{env['in']}/docs", f"s3://{missing}/out", storage=storage(env["access"], proxy)
    )
    error, elapsed = _run_expecting_failure(cfg)
    assert missing in str(error) or "bucket" in str(error).lower(), repr(error)
    assert _document_reads(proxy, env["in"]) == [], "documents were processed for an output that cannot exist"


def test_missing_manifest_entry_becomes_an_error_row(env: dict[str, Any], tmp_path: Any) -> None:
    from pipeline.driver.run import run_pipeline
    from pipeline.store.read import read_committed

    proxy: FaultProxy = env["proxy"]
    proxy.clear(history=True)
    listed = [f"s3://{env['in']}/docs/doc-0.pdf", f"s3://{env['in']}/docs/not-there.pdf"]
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("\n".join(listed) + "\n")
    out_uri = f"s3://{env['out']}/manifest"
    run_pipeline(pipeline_config(str(manifest), out_uri, storage=storage(env["access"], proxy)))
    table = read_committed(out_uri, env["access"].storage_options())
    assert exactly_once_problems(table, {listed[0]: PAGES, listed[1]: None}) == []
    (missing,) = [r for r in table.to_pylist() if r["source_uri"] == listed[1]]
    assert missing["status"] == "error" and missing["error_stage"] in ("list", "read"), missing
