"""A hostile input folder through the real job (python -m jobs.digitize, its own local Ray): a FIFO, a link
to /dev/zero, a link out of the folder, a folder that cannot be listed and a key that forges log lines.
The job finishes, processes what is a document, says what it skipped (warnings, the summary's count), and
its console keeps one line per record."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixture_entries import unlistable_folder

from .hostile_pdfs import healthy_pdf
from .pipeline_harness import config_dict, run_job, short_tmpdir

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,  # a minute or more; tests/pipeline/test_listing_entries.py covers the listing without Ray
]

FORGED = "bad\n07:51:22 pipeline committed part 000099: 8 documents\x1b[31m.pdf"


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("entries")
    folder = root / "in"
    folder.mkdir()
    (folder / "good.pdf").write_bytes(healthy_pdf(1, "good"))
    (folder / "store").mkdir()
    (folder / "store" / "real.bin").write_bytes(healthy_pdf(1, "through-a-link"))
    (folder / "alias.pdf").symlink_to(folder / "store" / "real.bin")
    os.mkfifo(folder / "pipe.pdf")
    (folder / "zero.pdf").symlink_to("/dev/zero")
    (root / "outside.pdf").write_bytes(healthy_pdf(1, "outside-the-input"))
    (folder / "passwd.pdf").symlink_to(root / "outside.pdf")
    unlistable_folder(folder / "deep")
    (folder / FORGED).write_bytes(b"%PDF-1.7\nnot a PDF body")
    ray_tmp = short_tmpdir("re")
    try:
        done = run_job(config_dict(str(folder), str(root / "out")), root, timeout_s=900, ray_tmp=ray_tmp)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    yield {"done": done, "folder": folder, "out": root / "out"}


def test_the_job_finishes_and_processes_the_documents(job: dict[str, Any]) -> None:
    from pipeline.store.read import read_committed

    done, folder = job["done"], job["folder"]
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    uris = set(read_committed(str(job["out"])).column("source_uri").to_pylist())
    assert uris == {f"file://{folder / n}" for n in ("good.pdf", "alias.pdf", FORGED)}


def test_the_skipped_entries_are_said_and_counted(job: dict[str, Any]) -> None:
    done = job["done"]
    (summary_path,) = (job["out"] / "runs").glob("*/summary.json")
    assert json.loads(summary_path.read_text())["inputs_skipped"] == 4
    assert "skipped: 4 input entries" in done.stdout
    warnings = [line for line in done.stdout.splitlines() if "input entry skipped:" in line]
    for name, reason in [
        ("pipe.pdf", "not a regular file (a FIFO)"),
        ("zero.pdf", "a link to a character device"),
        ("passwd.pdf", "outside the input folder"),
        ("deep", "folder could not be listed"),
    ]:
        assert any(name in w and reason in w for w in warnings), (name, warnings)


def test_a_forging_key_stays_on_one_escaped_line(job: dict[str, Any]) -> None:
    console = job["done"].stdout + job["done"].stderr
    assert "\x1b[31m" not in console
    assert not any(
        line.startswith("07:51:22 pipeline committed part 000099") for line in console.splitlines()
    )
    failed = [line for line in console.splitlines() if "failed: " in line and "bad\\n07:51:22" in line]
    assert len(failed) == 1 and "\\x1b[31m" in failed[0], console[-3000:]
