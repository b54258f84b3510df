"""Where a digitize job writes: a relative output under Ray's job server is refused before any work (the
job's working directory is Ray's temporary copy), and the embedded default's samples follow the output.
The same refusal through a real job server: tests/jobs/test_job_submit.py."""

from __future__ import annotations

import pytest

from jobs.digitize import EMBEDDED_DEFAULT, JOB_SERVER_ENV, load_config, main
from pipeline.locations import is_relative_local, output_refusal


@pytest.mark.parametrize(
    ("uri", "relative"),
    [
        ("out", True),
        ("./out", True),
        ("../shared/out", True),
        ("file://out", True),
        ("local://out/x", True),
        ("/data/ocr", False),
        ("file:///data/ocr", False),
        ("~/ocr", False),  # fsspec expands the home folder
        ("s3://bucket/ocr", False),
        ("gs://bucket/ocr", False),
        ("memory://ocr", False),
    ],
)
def test_relative_local_paths_are_told_from_absolute_paths_and_uris(uri, relative):
    assert is_relative_local(uri) is relative


def test_only_a_relative_output_under_a_job_server_is_refused():
    assert output_refusal("output", "out", under_job_server=False) is None  # a shell: ./out is where you are
    assert output_refusal("output", "/data/ocr", under_job_server=True) is None
    assert output_refusal("output", "s3://bucket/ocr", under_job_server=True) is None
    message = output_refusal("output", "./out", under_job_server=True)
    assert message is not None
    assert "'./out'" in message and "job server" in message
    assert "output=/" in message and "output=s3://" in message  # says what to give instead


def test_the_embedded_default_keeps_its_samples_beside_an_overridden_output():
    assert load_config(None, []).input == EMBEDDED_DEFAULT["input"]
    assert load_config(None, ["output=/data/ocr"]).input == "/data/ocr/samples"
    assert load_config(None, ["output=/data/ocr/"]).input == "/data/ocr/samples"
    # An explicit input wins; an object-store output keeps the local sample folder (samples are files).
    assert load_config(None, ["output=/data/ocr", "input=/pdfs"]).input == "/pdfs"
    assert load_config(None, ["output=s3://b/ocr"]).input == EMBEDDED_DEFAULT["input"]


def test_a_job_file_input_is_not_moved(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("input: /pdfs\noutput: out\n")
    assert load_config(str(job), ["output=/data/ocr"]).input == "/pdfs"


def test_the_embedded_default_under_a_job_server_stops_before_writing_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(JOB_SERVER_ENV, '{"runtime_env": {}, "metadata": {}}')
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("digitize: output 'out' is a relative path") and "Give an absolute path" in err
    assert list(tmp_path.iterdir()) == []  # no samples, no output: nothing left in Ray's copy
    assert main(["output=./elsewhere"]) == 2
    assert list(tmp_path.iterdir()) == []
