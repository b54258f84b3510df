"""The hostile names are what they claim, and the test store keeps them intact (so a mangled name in the
pipeline's output is the pipeline's doing, not the store's)."""

from __future__ import annotations

import unicodedata
import uuid

from .hostile_names import S3_MAX_KEY_BYTES, hostile_names, is_inside, moto_names
from .s3_server import MotoS3


def test_names_are_distinct_and_within_s3_limits() -> None:
    names = hostile_names()
    keys = [n.key for n in names]
    assert len(set(keys)) == len(keys)
    assert all(0 < len(k.encode()) <= S3_MAX_KEY_BYTES for k in keys)
    by_label = {n.label: n.key for n in names}
    assert by_label["nfc"] != by_label["nfd"]
    assert unicodedata.normalize("NFC", by_label["nfd"]) == by_label["nfc"]


def test_is_inside_resolves_dot_segments() -> None:
    assert is_inside("s3://b/out", "s3://b/out/x.parquet")
    assert is_inside("/tmp/out/", "/tmp/out/a/../b.parquet")
    assert not is_inside("s3://b/out", "s3://b/out/../escape.pdf")
    assert not is_inside("/tmp/out", "/tmp/outside/x")
    assert not is_inside("/tmp/out", "/etc/x.pdf")


def test_store_lists_every_hostile_key_back_intact() -> None:
    with MotoS3() as server:
        bucket = server.make_bucket(f"names-{uuid.uuid4().hex[:8]}")
        assert server.access is not None
        client = server.access.client()
        for case in moto_names():
            client.put_object(Bucket=bucket, Key=f"in/{case.key}", Body=case.label.encode())
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="in/")
        listed = {o["Key"] for page in pages for o in page.get("Contents", [])}
        assert listed == {f"in/{c.key}" for c in moto_names()}
        for case in moto_names():
            body = client.get_object(Bucket=bucket, Key=f"in/{case.key}")["Body"].read()
            assert body == case.label.encode(), case.label
