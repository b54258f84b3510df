"""Secrets through the job: storage credentials and pre-signed URL signatures never appear in stdout,
stderr, the Ray session log folder, the committed rows, the ledger, the summary or error messages."""

from __future__ import annotations

import secrets
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from .hostile_pdfs import encrypted_pdf, healthy_pdf
from .pipeline_harness import config_dict, run_job, short_tmpdir
from .s3_server import MotoS3

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.ci,
]  # a minute or more: CI runs it (-m "slow and ci")


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    # moto only honours pre-signed URLs with its IAM checks off; any key then works, so the test still
    # proves the configured key and secret go nowhere.
    with MotoS3(auth=False) as server:
        yield server


def _signed(client: Any, bucket: str, key: str) -> str:
    return client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600)


def _secret_values(creds: dict[str, str], signed_urls: list[str]) -> list[str]:
    values = [creds["key"], creds["secret"]]
    for url in signed_urls:
        query = parse_qs(urlsplit(url).query)
        values += query["X-Amz-Signature"] + [query["X-Amz-Credential"][0].split("/")[0]]
    return sorted(set(values))


def _leaks(haystacks: dict[str, bytes], values: list[str]) -> list[str]:
    return [
        f"{value[:6]}... in {where}"
        for where, blob in haystacks.items()
        for value in values
        if value.encode() in blob
    ]


def _folder_blobs(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


def _bucket_blobs(client: Any, bucket: str) -> dict[str, bytes]:
    listing = client.list_objects_v2(Bucket=bucket, Prefix="out/").get("Contents", [])
    return {
        f"s3://{bucket}/{o['Key']}": client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in listing
    }


@pytest.fixture(scope="module")
def job(moto: MotoS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    assert moto.access is not None
    root, ray_tmp = tmp_path_factory.mktemp("secrets"), short_tmpdir("rs")
    bucket = moto.make_bucket(f"sec-{uuid.uuid4().hex[:8]}")
    client = moto.access.client()
    for i in range(3):
        client.put_object(Bucket=bucket, Key=f"in/doc-{i}.pdf", Body=healthy_pdf(1, f"secret-{i}"))
    client.put_object(Bucket=bucket, Key="in/locked.pdf", Body=encrypted_pdf())
    signed = [_signed(client, bucket, "in/doc-2.pdf"), _signed(client, bucket, "in/locked.pdf")]
    manifest = root / "manifest.txt"
    manifest.write_text(
        "\n".join([f"s3://{bucket}/in/doc-0.pdf", f"s3://{bucket}/in/doc-1.pdf", *signed]) + "\n"
    )
    creds = {
        "endpoint_url": moto.url,
        "key": "AKIA" + secrets.token_hex(8).upper(),
        "secret": secrets.token_hex(20),
    }
    cfg = config_dict(str(manifest), f"s3://{bucket}/out", storage=creds)
    done = run_job(cfg, root, ray_tmp=ray_tmp)
    yield {
        "done": done,
        "bucket": bucket,
        "client": client,
        "ray_tmp": ray_tmp,
        "creds": creds,
        "values": _secret_values(creds, signed),
        "signed": signed,
    }
    shutil.rmtree(ray_tmp, ignore_errors=True)


def test_job_succeeds_and_writes_rows(job: dict[str, Any]) -> None:
    done = job["done"]
    assert done.returncode == 0, done.stderr[-3000:]
    blobs = _bucket_blobs(job["client"], job["bucket"])
    assert any(k.endswith(".parquet") for k in blobs) and any(k.endswith("summary.json") for k in blobs)


def test_ray_session_logs_exist_where_we_look(job: dict[str, Any]) -> None:
    logs = [p for p in job["ray_tmp"].rglob("*") if p.is_file() and "logs" in p.parts]
    assert len(logs) > 5, "RAY_TMPDIR was not honoured: the scan below would prove nothing"


def test_no_secret_in_stdout_stderr_or_ray_logs(job: dict[str, Any]) -> None:
    done = job["done"]
    haystacks = {
        "stdout": done.stdout.encode(),
        "stderr": done.stderr.encode(),
        **_folder_blobs(job["ray_tmp"]),
    }
    assert _leaks(haystacks, job["values"]) == []


def test_no_secret_in_rows_ledger_or_summary(job: dict[str, Any]) -> None:
    blobs = _bucket_blobs(job["client"], job["bucket"])
    assert _leaks(blobs, job["values"]) == []  # parquet pages are zstd-compressed: check the rows too
    from pipeline.store.read import read_committed

    table = read_committed(
        f"s3://{job['bucket']}/out",
        {"client_kwargs": {"endpoint_url": job["creds"]["endpoint_url"]}, "key": "any", "secret": "any"},
    )
    text = "\n".join(str(v) for col in table.columns for v in col.to_pylist()).encode()
    assert _leaks({"rows": text}, job["values"]) == []
    uris = set(table.column("source_uri").to_pylist())
    assert all("?" not in u for u in uris) and len(uris) == 4, uris  # signed URLs kept, queries dropped
    locked = [r for r in table.to_pylist() if r["source_uri"].endswith("locked.pdf")]
    assert locked and locked[0]["status"] == "error" and "encrypt" in locked[0]["error"]


def test_failed_signed_url_does_not_leak_in_the_error(moto: MotoS3, tmp_path: Path) -> None:
    assert moto.access is not None
    bucket = moto.make_bucket(f"gone-{uuid.uuid4().hex[:8]}")
    missing = _signed(moto.access.client(), bucket, "in/not-there.pdf")
    (tmp_path / "manifest.txt").write_text(missing + "\n")
    ray_tmp = short_tmpdir("rs")
    try:
        done = run_job(
            config_dict(str(tmp_path / "manifest.txt"), str(tmp_path / "out")), tmp_path, ray_tmp=ray_tmp
        )
        assert done.returncode != 0
        values = _secret_values({"key": "unused-key", "secret": "unused-secret"}, [missing])
        assert _leaks({"stdout": done.stdout.encode(), "stderr": done.stderr.encode()}, values) == []
        assert "not-there.pdf" in done.stderr + done.stdout  # the message still says which document
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
