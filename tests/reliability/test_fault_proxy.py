"""The fault proxy forwards faithfully and injects exactly the faults asked for; S3 clients (s3fs over
aiobotocore, boto3) retry the transient ones and fail clearly on the permanent ones."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest

from .fault_proxy import Fault, FaultProxy
from .s3_server import MotoS3, S3Access


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    with MotoS3() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(moto: MotoS3) -> Iterator[FaultProxy]:
    with FaultProxy(moto.url) as p:
        yield p


@pytest.fixture
def bucket(moto: MotoS3, proxy: FaultProxy) -> Iterator[str]:
    proxy.clear(history=True)
    name = moto.make_bucket(f"proxy-{uuid.uuid4().hex[:10]}")
    proxy.clear(history=True)
    yield name
    proxy.clear()


@pytest.fixture
def access(moto: MotoS3, proxy: FaultProxy) -> S3Access:
    assert moto.access is not None
    return moto.access.with_endpoint(proxy.url)


def test_forwards_multipart_put_get_list_and_range_reads(
    access: S3Access, proxy: FaultProxy, bucket: str
) -> None:
    fs = access.filesystem()
    data = os.urandom(11 << 20)  # > 2 parts of 5 MiB: exercises multipart upload through the proxy
    with fs.open(f"{bucket}/big.bin", "wb", block_size=5 << 20) as f:
        f.write(data)
    fs.pipe_file(f"{bucket}/dir/small.txt", b"hello")
    assert fs.cat_file(f"{bucket}/big.bin") == data
    assert fs.cat_file(f"{bucket}/big.bin", start=1_000_000, end=1_000_100) == data[1_000_000:1_000_100]
    assert sorted(fs.ls(bucket, detail=False)) == [f"{bucket}/big.bin", f"{bucket}/dir"]
    assert fs.info(f"{bucket}/big.bin")["size"] == len(data)
    statuses = {s.status for s in proxy.seen}
    assert 206 in statuses and all(
        s.fault is None for s in proxy.seen
    )  # every request really went through us


def test_injected_503s_are_retried_until_success(access: S3Access, proxy: FaultProxy, bucket: str) -> None:
    fs = access.filesystem()
    fs.pipe_file(f"{bucket}/a.txt", b"payload")
    proxy.inject(Fault.error(503), method="GET", path="/a.txt", times=3)
    assert fs.cat_file(f"{bucket}/a.txt") == b"payload"
    assert [s.status for s in proxy.faults("status")] == [503, 503, 503]


def test_injected_500s_on_put_are_retried(access: S3Access, proxy: FaultProxy, bucket: str) -> None:
    fs = access.filesystem()
    proxy.inject(Fault.error(500), method="PUT", times=2)
    fs.pipe_file(f"{bucket}/b.txt", b"written")
    assert len(proxy.faults("status")) == 2
    assert access.client().get_object(Bucket=bucket, Key="b.txt")["Body"].read() == b"written"


def test_connection_resets_are_retried(access: S3Access, proxy: FaultProxy, bucket: str) -> None:
    fs = access.filesystem()
    fs.pipe_file(f"{bucket}/c.txt", b"resettable")
    proxy.inject(Fault.reset(), method="GET", times=2)
    assert fs.cat_file(f"{bucket}/c.txt") == b"resettable"
    assert len(proxy.faults("reset")) == 2


def test_body_cut_mid_download_is_never_returned_short(
    access: S3Access, proxy: FaultProxy, bucket: str
) -> None:
    fs = access.filesystem()
    data = os.urandom(1 << 20)
    fs.pipe_file(f"{bucket}/d.bin", data)
    proxy.inject(Fault.cut_body(), method="GET", times=1)
    assert fs.cat_file(f"{bucket}/d.bin") == data  # retried; a silent short read would fail here
    assert len(proxy.faults("cut_body")) == 1


def test_seeded_random_faults_are_reproducible_and_survived(
    access: S3Access, proxy: FaultProxy, bucket: str
) -> None:
    fs = access.filesystem()
    proxy.inject(Fault.error(503), probability=0.3, seed=7)
    for i in range(5):
        fs.pipe_file(f"{bucket}/r{i}.txt", str(i).encode())
    assert [fs.cat_file(f"{bucket}/r{i}.txt") for i in range(5)] == [str(i).encode() for i in range(5)]
    first = len(proxy.faults("status"))
    assert 0 < first < len(proxy.seen)  # some requests failed, not all
    proxy.clear(history=True)
    proxy.inject(Fault.error(503), probability=0.3, seed=7)
    for i in range(5):
        fs.pipe_file(f"{bucket}/r{i}.txt", str(i).encode())
    assert [fs.cat_file(f"{bucket}/r{i}.txt") for i in range(5)] == [str(i).encode() for i in range(5)]
    assert len(proxy.faults("status")) == first


def test_short_stall_is_waited_out(access: S3Access, proxy: FaultProxy, bucket: str) -> None:
    fs = access.filesystem(read_timeout_s=5)
    fs.pipe_file(f"{bucket}/e.txt", b"slow")
    proxy.inject(Fault.stall(1.0), method="GET", times=1)
    start = time.monotonic()
    assert fs.cat_file(f"{bucket}/e.txt") == b"slow"
    assert time.monotonic() - start >= 1.0


def test_stall_longer_than_client_timeout_fails_cleanly_and_in_bounded_time(
    access: S3Access, proxy: FaultProxy, bucket: str
) -> None:
    # s3fs's own retry loop (5 by default) wraps botocore's attempts, and cat_file nests two such loops:
    # with the defaults a dead endpoint costs ~25 x attempts x read_timeout (measured: 83 s at 0.5 s).
    fs = access.filesystem(read_timeout_s=0.5, max_attempts=2, s3fs_retries=1)
    fs.pipe_file(f"{bucket}/f.txt", b"never")
    proxy.inject(Fault.stall(4.0), method="GET")  # every GET, every retry
    start = time.monotonic()
    with pytest.raises(Exception, match="(?i)timeout|timed out") as info:
        fs.cat_file(f"{bucket}/f.txt")
    assert time.monotonic() - start < 15, "the client retried a dead server for too long"
    assert access.secret not in str(info.value)
    proxy.clear()
    assert fs.cat_file(f"{bucket}/f.txt") == b"never"  # proxy and store are fine afterwards


def test_bad_secret_fails_with_a_clear_permission_error(access: S3Access, bucket: str) -> None:
    wrong = "wrong-secret-" + uuid.uuid4().hex
    fs = access.with_secret(wrong).filesystem(max_attempts=2)
    start = time.monotonic()
    with pytest.raises(PermissionError) as info:
        fs.ls(bucket)
    assert time.monotonic() - start < 10  # not retried as if transient
    assert "signature" in str(info.value).lower() or "access" in str(info.value).lower()
    assert wrong not in str(info.value)


def test_unknown_access_key_fails_with_a_clear_permission_error(access: S3Access, bucket: str) -> None:
    fs = S3Access(access.endpoint_url, "AKIANOSUCHKEY0000000", access.secret).filesystem(max_attempts=2)
    with pytest.raises(PermissionError, match="Access Key Id you provided does not exist"):
        fs.ls(bucket)
    with pytest.raises(PermissionError):  # a HEAD has no error body: the message is only "Forbidden"
        fs.cat_file(f"{bucket}/anything")


def test_missing_bucket_fails_with_a_clear_not_found_error(access: S3Access) -> None:
    fs = access.filesystem(max_attempts=2)
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    with pytest.raises(FileNotFoundError, match="bucket does not exist"):  # s3fs does not name the bucket
        fs.ls(missing)
    with pytest.raises((FileNotFoundError, OSError)):
        fs.pipe_file(f"{missing}/x.txt", b"x")


def test_the_pipelines_storage_settings_bound_a_stalled_read(
    access: S3Access, proxy: FaultProxy, bucket: str
) -> None:
    from pydantic import SecretStr

    from pipeline.config import StorageConfig
    from pipeline.store.fs import filesystem

    storage = StorageConfig(
        endpoint_url=access.endpoint_url,
        region="us-east-1",
        key=SecretStr(access.key),
        secret=SecretStr(access.secret),
        read_timeout_s=0.5,
        attempts=2,
        s3fs_retries=1,
    )
    fs, path = filesystem(f"s3://{bucket}/g.txt", storage)
    fs.pipe_file(path, b"stalled")
    proxy.inject(Fault.stall(4.0), method="GET")  # every GET, every retry
    start = time.monotonic()
    with pytest.raises(Exception, match="(?i)timeout|timed out"):
        fs.cat_file(path)
    assert time.monotonic() - start < 15, "the pipeline's client waited on a dead server for too long"
    proxy.clear()
    assert fs.cat_file(path) == b"stalled"
