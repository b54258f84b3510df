"""Every job's bad input (an unknown key, a wrong type, a negative size, an override without `=`, a missing
or broken --config, a bad flag) ends in one line on stderr that names the key and the problem, and exit
status 2; never a traceback. In process for each kind of mistake, and once per job as a real process."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).absolute().parents[2]
MISSING = "/nonexistent/job.yaml"


def _yaml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return str(path)


# (job, argv with {tmp} and {yaml} placeholders, the YAML file's text or None, words the line must hold)
CASES = [
    ("digitize", ["bogus=1"], None, ["bogus", "unknown key"]),
    ("digitize", ["pools.render_actors=abc"], None, ["pools.render_actors", "integer"]),
    ("digitize", ["render.max_bytes=-5"], None, ["render.max_bytes", "greater than or equal to 1"]),
    ("digitize", ["pools.ocr_initial_actors=-1"], None, ["pools.ocr_initial_actors", "greater than"]),
    ("digitize", ["noequals"], None, ["'noequals'", "key=value"]),
    ("digitize", ["pools=4"], None, ["pools", "dictionary"]),
    ("digitize", ["engine.model.x=4"], None, ["engine.model.x", "'engine.model' is not a section"]),
    ("digitize", ["--config", MISSING], None, [MISSING, "no such file"]),
    ("digitize", ["--config", "{yaml}"], "input: [unclosed\n", ["job.yaml", "not valid YAML", "line 2"]),
    ("digitize", ["--config", "{yaml}"], "- a list\n", ["job.yaml", "mapping"]),
    ("digitize", ["--local-cpus", "many"], None, ["--local-cpus", "invalid int value"]),
    ("digitize", ["--no-such-flag"], None, ["--no-such-flag", "unrecognized"]),
    ("export", ["bogus=1"], None, ["bogus", "unknown key"]),
    ("export", ["shard_max_bytes=-1"], None, ["shard_max_bytes", "greater than or equal to 1"]),
    ("export", ["markdown=maybe"], None, ["markdown", "boolean"]),
    ("export", ["noequals"], None, ["'noequals'", "key=value"]),
    ("export", ["--config", MISSING], None, [MISSING, "no such file"]),
    ("compact", ["--config", MISSING], None, [MISSING, "no such file"]),
    ("compact", ["--config", "{yaml}"], "output: o\nbogus: 1\n", ["bogus", "unknown key"]),
    ("compact", ["--config", "{yaml}"], "output: o\nstorage: {attempts: -1}\n", ["storage.attempts"]),
    ("compact", ["{tmp}", "--stale-after-s", "soon"], None, ["--stale-after-s", "invalid float value"]),
    ("cost_report", ["--output", "{tmp}", "--days", "-1"], None, ["days", "greater than or equal to 0"]),
    ("cost_report", ["--output", "{tmp}", "--days", "x"], None, ["--days", "invalid int value"]),
    ("cost_report", ["--output", "{tmp}", "--storage-options", "{{bad"], None, ["--storage-options", "JSON"]),
    ("cost_report", ["--output", "{tmp}", "--bogus"], None, ["--bogus", "unrecognized"]),
    ("cost_report", [], None, ["--output", "required"]),
    ("evaluate", ["--config", MISSING], None, [MISSING, "no such file"]),
    ("evaluate", ["--corpus", "{tmp}", "--sample-pages", "-3"], None, ["sample_pages", "greater than"]),
    ("evaluate", ["--config", "{yaml}"], "corpus: c\nbogus: 1\n", ["bogus", "unknown key"]),
    ("evaluate", ["--config", "{yaml}"], "corpus: c\nengine: 5\n", ["engine", "dictionary"]),
    ("evaluate", ["--corpus", "{tmp}", "--batch-size", "x"], None, ["--batch-size", "invalid int value"]),
    ("evaluate", ["--corpus", "{tmp}", "--retentions", "0.7,most"], None, ["--retentions", "numbers"]),
    ("compact", ["{tmp}", "--stale-after-s", "-1"], None, ["--stale-after-s", "0 or more"]),
]


def _argv(argv: list[str], tmp_path: Path, text: str | None) -> list[str]:
    yaml_path = _yaml(tmp_path, text) if text is not None else ""
    return [a.format(tmp=tmp_path, yaml=yaml_path) for a in argv]


def _check_line(job: str, err: str, words: list[str]) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{job}: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "Traceback" not in err


@pytest.mark.parametrize(("job", "argv", "text", "words"), CASES, ids=lambda v: str(v)[:40])
def test_a_bad_config_is_one_line_and_exit_2(job, argv, text, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the embedded defaults point at ./out: nothing may be written there
    main = importlib.import_module(f"jobs.{job}").main
    assert main(_argv(argv, tmp_path, text)) == 2
    captured = capsys.readouterr()
    _check_line(job, captured.err, words)
    assert not (tmp_path / "out").exists() and not (tmp_path / "report").exists()


def test_a_secret_in_a_bad_override_is_not_echoed(capsys):
    from jobs.digitize import main

    assert main(["storage.secret=TOPSECRET", "storage.endpoint_ur=http://x"]) == 2
    err = capsys.readouterr().err
    assert "storage.endpoint_ur" in err and "TOPSECRET" not in err


# One real process per job: what `python -m jobs.<job>` prints, with nothing caught by a test harness.
PROCESS_CASES = [
    ("digitize", ["render.max_bytes=-5"], ["render.max_bytes"]),
    ("export", ["--config", MISSING], [MISSING, "no such file"]),
    ("compact", ["--config", MISSING], [MISSING, "no such file"]),
    ("cost_report", ["--output", "out", "--days", "-1"], ["days"]),
    ("evaluate", ["--corpus", "c", "--sample-pages", "0"], ["sample_pages"]),
]


@pytest.mark.parametrize(("job", "argv", "words"), PROCESS_CASES, ids=[c[0] for c in PROCESS_CASES])
def test_each_job_as_a_process_prints_one_line_and_exits_2(job, argv, words, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", f"jobs.{job}", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2, done.stderr
    _check_line(job, done.stderr, words)
