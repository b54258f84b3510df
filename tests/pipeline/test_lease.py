"""The run lease (pipeline/store/lease.py): of two runs started at once on one output exactly one proceeds
and the other refuses naming the holder (local disk and a moto S3 server); a live lease is never taken
over, an expired one is, a killed run's lease expires; a waiting run takes the lease when its holder
ends; renewal extends the lease and notices a takeover; the digitize job refuses a held output before
anything starts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from reliability.s3_server import MotoS3

from pipeline.config import LeaseConfig, PipelineConfig, StorageConfig
from pipeline.store.lease import LEASE_FILE, LeaseHeld, LeaseLost, LeaseRecord, RunLease
from pipeline.store.output import Output

ROOT = Path(__file__).absolute().parents[2]
HOLDER = Path(__file__).with_name("lease_holder.py")
FAST = {"ttl_s": 30.0, "settle_s": 0.5}


@pytest.fixture(scope="module")
def moto():
    with MotoS3() as server:
        yield server


def _storage(moto: MotoS3 | None) -> StorageConfig:
    if moto is None:
        return StorageConfig()
    a = moto.access
    return StorageConfig(endpoint_url=a.endpoint_url, key=a.key, secret=a.secret, region="us-east-1")


@pytest.fixture(params=["local", "s3"])
def place(request, tmp_path) -> tuple[str, StorageConfig]:
    """(output URI, storage settings) on local disk or on the moto S3 server."""
    if request.param == "local":
        return str(tmp_path / "out"), StorageConfig()
    server = request.getfixturevalue("moto")
    bucket = server.make_bucket(f"lease-{os.urandom(4).hex()}")
    return f"s3://{bucket}/out", _storage(server)


def _holder(output: str, storage: StorageConfig, run_id: str, **fields) -> subprocess.Popen:
    secret = {"key": storage.key, "secret": storage.secret}
    plain = storage.model_dump(exclude={"key", "secret"})
    plain.update({k: v.get_secret_value() for k, v in secret.items() if v is not None})
    args = {"output": output, "storage": plain, "run_id": run_id, "lease": FAST, "hold_s": 3.0} | fields
    proc = subprocess.Popen(
        [sys.executable, str(HOLDER), json.dumps(args)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr
    return proc


def _lease(output: str, storage: StorageConfig, run_id: str, **fields) -> RunLease:
    return RunLease(Output.open(output, storage), run_id, LeaseConfig(**(FAST | fields)), output)


def _put_record(output: str, storage: StorageConfig, record: LeaseRecord) -> bytes:
    out = Output.open(output, storage)
    data = json.dumps(asdict(record)).encode()
    out.fs.makedirs(out.path("_lease"), exist_ok=True)
    out.fs.pipe_file(out.path(LEASE_FILE + ".test.tmp"), data)  # whole or not at all, as a run writes it
    out.fs.mv(out.path(LEASE_FILE + ".test.tmp"), out.path(LEASE_FILE))
    return data


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# Rounds 1 and 2 race again (slow): the default run races once per store.
@pytest.mark.parametrize(
    "round_", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)]
)
def test_two_runs_at_once_one_proceeds_the_other_refuses_naming_it(place, tmp_path, round_):
    output, storage = place
    go = tmp_path / f"go-{round_}"
    runs = {name: _holder(output, storage, name, go=str(go)) for name in ("run-a", "run-b")}
    go.touch()  # both are imported and waiting: they race from here
    said = {name: proc.communicate(timeout=600)[0].splitlines()[0] for name, proc in runs.items()}
    winners = [name for name, line in said.items() if line == "acquired"]
    assert len(winners) == 1, said
    winner, loser = winners[0], next(n for n in runs if n not in winners)
    refusal = said[loser]
    assert refusal.startswith("refused: output ") and f"in use by run {winner} " in refusal, refusal
    assert f"(host {socket.gethostname()}, pid {runs[winner].pid})" in refusal
    assert "until " in refusal and "--wait-for-lease" in refusal
    assert _lease(output, storage, "reader").read() is None  # the winner released it when it ended


def test_a_live_lease_is_not_taken_over(place):
    output, storage = place
    live = LeaseRecord("holder", "elsewhere", _dead_pid(), "t" * 32, time.time(), time.time() + 600)
    before = _put_record(output, storage, live)
    with pytest.raises(LeaseHeld, match=r"in use by run holder \(host elsewhere, pid \d+\) until .*from now"):
        _lease(output, storage, "second").acquire()
    assert Output.open(output, storage).fs.cat_file(Output.open(output, storage).path(LEASE_FILE)) == before


def test_an_expired_lease_is_taken_over(place):
    output, storage = place
    stale = LeaseRecord(
        "killed", socket.gethostname(), _dead_pid(), "s" * 32, time.time() - 700, time.time() - 1
    )
    _put_record(output, storage, stale)
    lease = _lease(output, storage, "next")
    lease.acquire()
    now = lease.read()
    assert now is not None and (now.run_id, now.token, now.pid) == ("next", lease.token, os.getpid())
    assert now.expires_at > time.time()
    lease.release()
    assert lease.read() is None


def test_a_killed_runs_lease_is_taken_over_at_once_on_its_machine(tmp_path):
    output, storage = str(tmp_path / "out"), StorageConfig()
    proc = _holder(output, storage, "killed", lease={"ttl_s": 600.0, "settle_s": 0.2}, hold_s=600)
    assert proc.stdout.readline().strip() == "acquired"
    proc.send_signal(signal.SIGKILL)  # no release: the lease stays, live for ten more minutes
    proc.wait()
    held = _lease(output, storage, "next").read()
    assert held is not None and held.run_id == "killed" and held.expires_at > time.time() + 60
    lease = _lease(output, storage, "next")  # no waiting: the holder's process is gone
    lease.acquire()
    assert lease.read().token == lease.token


def test_a_killed_runs_lease_from_another_machine_is_waited_out(tmp_path):
    output, storage = str(tmp_path / "out"), StorageConfig()
    now = time.time()
    # A run on another machine that was killed: its process cannot be looked at from here.
    other = LeaseRecord("killed", "elsewhere", os.getpid(), "k" * 32, now, now + 3.0, "another-machine")
    _put_record(output, storage, other)
    with pytest.raises(LeaseHeld, match="in use by run killed"):
        _lease(output, storage, "impatient").acquire()
    waiting = _lease(output, storage, "next", wait_s=600)
    waiting.acquire()  # returns once the lease has expired
    assert time.time() >= other.expires_at
    assert waiting.read().token == waiting.token


def test_a_waiting_run_takes_the_lease_when_its_holder_ends(tmp_path):
    output, storage = str(tmp_path / "out"), StorageConfig()
    released = tmp_path / "released"
    proc = _holder(output, storage, "first", hold_s=2.0, released=str(released))
    assert proc.stdout.readline().strip() == "acquired"
    waiting = _lease(output, storage, "second", wait_s=600)
    waiting.acquire()
    assert released.exists()  # it got the lease only after the first run let it go (well before expiry)
    assert waiting.read().run_id == "second"
    proc.wait(timeout=600)


def test_renewal_extends_the_lease_and_notices_a_takeover(tmp_path):
    output, storage = str(tmp_path / "out"), StorageConfig()
    with _lease(output, storage, "renewing", ttl_s=1.0, settle_s=0.0) as lease:
        first = lease.read().expires_at
        for _ in range(600):  # renewals come every ttl_s / 5
            if lease.read().expires_at > first:
                break
            time.sleep(0.1)
        assert lease.read().expires_at > first
        other = LeaseRecord("intruder", "h", 1, "i" * 32, time.time(), time.time() + 600)
        _put_record(output, storage, other)
        for _ in range(600):
            try:
                lease.check()
            except LeaseLost as exc:
                assert "now held by run intruder" in str(exc)
                break
            time.sleep(0.1)
        else:
            pytest.fail("the takeover was never noticed")
    assert lease.read().run_id == "intruder"  # leaving does not remove a lease that is not ours


def test_run_pipeline_refuses_an_output_held_by_another_run(tmp_path):
    from pipeline.driver.run import run_pipeline

    cfg = PipelineConfig(
        input=str(tmp_path / "in"), output=str(tmp_path / "out"), run_id="second", lease=LeaseConfig(**FAST)
    )
    with _lease(cfg.output, StorageConfig(), "first"), pytest.raises(LeaseHeld, match="in use by run first"):
        run_pipeline(cfg)


def test_digitize_refuses_a_held_output_in_one_line_before_anything_starts(tmp_path):
    (tmp_path / "in").mkdir()
    output = str(tmp_path / "out")
    with _lease(output, StorageConfig(), "first"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "jobs.digitize",
                f"input={tmp_path / 'in'}",
                f"output={output}",
                "run_id=second",
            ],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digitize: run second stopped: LeaseHeld: "), lines
    assert f"in use by run first (host {socket.gethostname()}, pid {os.getpid()})" in lines[0]
    assert "Ray" not in done.stdout + done.stderr  # refused before Ray started
