import pytest
from pydantic import ValidationError

from jobs.cli import apply_overrides
from jobs.digitize import load_config
from pipeline.config import PipelineConfig, StorageConfig
from pipeline.redact import describe_error, loggable_name, redact_text, redact_uri, source_name


def test_overrides_parse_yaml_scalars_and_nest(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("input: in\noutput: out\npools: {ocr_batch_size: 4}\n")
    cfg = load_config(str(path), ["pools.ocr_batch_size=32", "engine.max_new_tokens=8", "retry_failed=true"])
    assert cfg.pools.ocr_batch_size == 32 and cfg.engine.max_new_tokens == 8 and cfg.retry_failed is True
    assert cfg.pools.render_actors == 2  # untouched defaults stay


def test_unknown_key_is_named_and_secret_value_not_echoed(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("input: in\noutput: out\n")
    with pytest.raises(ValueError, match=r"storage\.endpoint_ur") as info:
        load_config(str(path), ["storage.endpoint_ur=http://x", "storage.secret=TOPSECRET"])
    assert "TOPSECRET" not in str(info.value)


def test_override_needs_key_value():
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides({}, ["nonsense"])


def test_config_is_frozen_and_secret_hidden_in_repr():
    cfg = PipelineConfig(input="a", output="b", storage=StorageConfig(key="AKID", secret="S3CR3T"))
    assert "S3CR3T" not in repr(cfg) and "S3CR3T" not in cfg.model_dump_json()
    assert cfg.storage.fsspec_options()["secret"] == "S3CR3T"
    with pytest.raises(ValidationError):
        cfg.input = "c"  # type: ignore[misc]


def test_run_ids_are_unique_and_sortable():
    a, b = PipelineConfig(input="a", output="b"), PipelineConfig(input="a", output="b")
    assert a.run_id != b.run_id and a.run_id[:8].isdigit()


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/a/b.pdf", "s3://bucket/a/b.pdf"),
        (
            "https://user:pw@host:9000/b/x.pdf?X-Amz-Signature=abc&X-Amz-Credential=AK",
            "https://host:9000/b/x.pdf",
        ),
        ("/local/path/x.pdf", "/local/path/x.pdf"),
        ("file:///tmp/x.pdf#frag", "file:///tmp/x.pdf"),
    ],
)
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/in/q?v=1#x.pdf", "s3://bucket/in/q?v=1#x.pdf"),
        ("file:///in/tab\tline\nbreak\r.pdf", "file:///in/tab\tline\nbreak\r.pdf"),
        ("s3://AKID:S3CR3T@bucket/in/a?b.pdf", "s3://bucket/in/a?b.pdf"),
        ("s3://bucket/in/user:pw@x.pdf", "s3://bucket/in/user:pw@x.pdf"),
        ("https://u:pw@host/b/x.pdf?X-Amz-Signature=abc", "https://host/b/x.pdf"),
    ],
)
def test_source_name_keeps_listed_keys_and_drops_credentials(uri, expected):
    assert source_name(uri) == expected


def test_loggable_name_escapes_control_characters():
    shown = loggable_name("s3://b/a\nforged line\u202e.pdf")
    assert "\n" not in shown and "\u202e" not in shown and "forged line" in shown


def test_redact_text_scrubs_known_secrets_and_credential_pairs():
    text = "failed s3://u:pw@b/k?sig=1 with secret=abc123 and key 'MYSECRETVALUE' aws_access_key_id: AKIAXYZ"
    out = redact_text(text, ["MYSECRETVALUE"])
    for leaked in ("pw@", "sig=1", "abc123", "MYSECRETVALUE", "AKIAXYZ"):
        assert leaked not in out
    assert "s3://b/k" in out


def test_describe_error_is_bounded_and_typed():
    msg = describe_error(ValueError("x" * 1000 + " secret=zzz"), limit=50)
    assert msg.startswith("ValueError: x") and len(msg) == 50
