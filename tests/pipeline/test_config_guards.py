"""Guards at the config edge and in redaction: credentials in a URI's userinfo never reach an error or a
log line (with or without the scheme in front of them), input/output URIs that carry them are refused
before anything runs, and run ids that would escape their folder are refused with a one-line reason."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from jobs.digitize import load_config, load_typed_config
from pipeline.config import PipelineConfig, StorageConfig
from pipeline.redact import describe_error, redact_text
from pipeline.store.listing import list_documents

KEY, SECRET = "AKIDKEY0123", "wJalrXUtn/FEMI+K7MDENG"


@pytest.mark.parametrize(
    "text",
    [
        # botocore quotes the bucket without its scheme (seen in ParamValidationError)
        f'Invalid bucket name "{KEY}:{SECRET}@bucket": Bucket name must match the regex',
        f"s3://{KEY}:{SECRET}@bucket/in/a.pdf failed",
        f"could not reach {KEY}:{SECRET}@minio.local:9000",
        f"('{KEY}:{SECRET}@bucket', 'in/a.pdf')",
    ],
)
def test_userinfo_is_redacted_wherever_it_appears(text):
    out = redact_text(text)
    assert KEY not in out and SECRET not in out and "wJalr" not in out, out
    assert "***@" in out or "s3://bucket/in" in out  # says that something was there, or drops it in a URL


def test_redaction_keeps_keys_that_merely_hold_a_colon_and_an_at():
    out = redact_text("missing: s3://bucket/in/report 10:30 final.pdf and s3://bucket/in/a@b.pdf")
    assert out == "missing: s3://bucket/in/report 10:30 final.pdf and s3://bucket/in/a@b.pdf"


@pytest.mark.parametrize("secret", ["wJalrXUtnFEMIK7MDENG", SECRET])  # SECRET holds a '/'
def test_a_real_botocore_error_for_a_userinfo_bucket_is_redacted(secret):
    storage = StorageConfig(endpoint_url="http://127.0.0.1:9", attempts=1, s3fs_retries=1)
    with pytest.raises(Exception) as info:  # noqa: PT011 - botocore's own validation error type
        list_documents(f"s3://{KEY}:{secret}@bucket/in/", storage)
    assert "wJalr" in str(info.value)  # the leak the redaction is for
    shown = describe_error(info.value)
    assert "wJalr" not in shown and KEY not in shown and "Invalid bucket name" in shown, shown


@pytest.mark.parametrize("key", ["input", "output"])
@pytest.mark.parametrize(
    "uri",
    [
        f"s3://{KEY}:{SECRET}@bucket/in/",
        f"s3://{KEY}@bucket/in/",
        "s3://AKIDKEY0123:wJalr/XUtn@bucket/in/",  # an unescaped '/' in the secret: still userinfo
        f"https://user:{SECRET}@host/list.txt",
    ],
)
def test_uris_with_userinfo_are_refused_early_and_say_where_credentials_go(tmp_path, key, uri):
    path = tmp_path / "job.yaml"
    path.write_text("input: in\noutput: out\n")
    with pytest.raises(ValueError, match=key) as info:
        load_config(str(path), [f"{key}={uri}"])
    message = str(info.value)
    assert "\n" not in message and SECRET not in message and "wJalr" not in message, message
    assert "storage" in message and "environment" in message, message


def test_validation_errors_never_echo_the_value():
    with pytest.raises(ValidationError) as info:
        PipelineConfig(input=f"s3://{KEY}:{SECRET}@bucket/in/", output="out")
    assert SECRET not in str(info.value) and "wJalr" not in str(info.value)


@pytest.mark.parametrize(
    "uri", ["s3://bucket/in/", "s3://bucket/in/user:pw@x.pdf", "http://host:9000/in/", "/data/in", "in"]
)
def test_uris_without_userinfo_pass(uri):
    assert PipelineConfig(input=uri, output=uri).input == uri


@pytest.mark.parametrize("run_id", ["..", ".", "", "a/b", "../x", "run\n1", "run\x1b[31m", ".hidden", "-x"])
def test_bad_run_ids_are_one_clear_config_error(run_id):
    job = {"input": "in", "output": "out", "run_id": run_id}
    with pytest.raises(ValueError, match=r"^invalid config: run_id: ") as info:
        load_typed_config(PipelineConfig, None, [], job)
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


def test_a_run_id_override_of_dots_is_refused(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("input: in\noutput: out\n")
    with pytest.raises(ValueError, match=r"run_id: .*letter or digit"):
        load_config(str(path), ["run_id=.."])


@pytest.mark.parametrize("run_id", ["nightly-2025-11-05", "20251105T020000Z-1a2b3c", "r1.retry_2"])
def test_good_run_ids_pass(run_id):
    assert PipelineConfig(input="in", output="out", run_id=run_id).run_id == run_id


def test_the_log_filter_redacts_userinfo(caplog):
    from jobs.digitize import _RedactingFilter

    record = logging.LogRecord(
        "pipeline", logging.WARNING, __file__, 1, "bucket %s", (f"{KEY}:{SECRET}@b",), None
    )
    assert _RedactingFilter([]).filter(record)
    assert SECRET not in record.getMessage() and "***@b" in record.getMessage()


def test_a_url_whose_port_is_not_a_number_is_masked_not_a_crash():
    assert redact_text("failed: s3://AKID:wJalr/x") == "failed: ***"


@pytest.mark.parametrize("key", ["output", "dest"])
def test_the_export_refuses_userinfo_too(key):
    from pipeline.export import ExportConfig

    uris = {"output": "out", "dest": "out/export", key: f"s3://{KEY}:{SECRET}@bucket/x"}
    with pytest.raises(ValidationError, match="storage.key") as info:
        ExportConfig(**uris)
    assert SECRET not in str(info.value)
