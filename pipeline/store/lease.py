"""The run lease: one digitize run at a time per output root.

    {output}/_lease/run.json   {run_id, host, pid, token, acquired_at, expires_at}   (epoch seconds, UTC)

A run takes the lease before it plans (jobs.digitize: before Ray starts) and renews it every ttl_s / 5
while it lives; a second run on the same output finds a live lease and refuses, naming the holder and when
the lease expires, or waits for it (lease.wait_s). A run that is killed stops renewing, so its lease expires
after at most ttl_s and the next run takes it over; sooner when the next run starts on the same machine
(same kernel boot and pid namespace) and sees that the holder's process is gone. A run releases the lease
when it ends.

Object stores have no create-if-absent in fsspec, so taking the lease is: read it; if it is absent, expired
or ours, write ours; wait settle_s; read it back. Of runs that write within settle_s of each other, the last
write stands and only its writer reads back its own token: the others lose and refuse. The window left
open: a run that reads "free" and then stalls for longer than settle_s before its write can overwrite a
lease another run already confirmed. Renewal closes it after the fact: a renewal reads the lease first,
and a run that finds another run's token there has lost the lease (LeaseLost) and stops at its next batch,
so two runs overlap for at most one renewal interval. Expiry compares the holder's clock with the
reader's: hosts' clocks must agree to well within ttl_s (NTP does)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.config import LeaseConfig
from pipeline.redact import describe_error, redact_uri
from pipeline.store import paths
from pipeline.store.output import Output
from pipeline.store.retry import retry

log = logging.getLogger("pipeline")

LEASE_FILE = paths.LEASE_KEY
RENEWALS_PER_TTL = 5  # a lease survives four missed renewals (a stalled driver, a store's bad minute)
MAX_POLL_S = 5.0  # how often a waiting run looks at the lease again, at most


@dataclass(frozen=True)
class LeaseRecord:
    """What the lease object holds: who holds it and until when."""

    run_id: str
    host: str
    pid: int
    token: str  # unique per lease taken: tells two runs with one run_id apart
    acquired_at: float
    expires_at: float
    # The kernel boot and pid namespace the holder ran in ("" where unknown): a reader in the same one can
    # tell whether the holder's process still exists.
    machine: str = ""

    def describe(self, now: float) -> str:
        until = datetime.fromtimestamp(self.expires_at, UTC).isoformat(timespec="seconds")
        left = self.expires_at - now
        when = f"{left:.0f} s from now" if left > 0 else f"expired {-left:.0f} s ago"
        return f"run {self.run_id} (host {self.host}, pid {self.pid}) until {until} ({when})"


class LeaseHeld(RuntimeError):
    """Another run holds the output's lease (and did not release it within lease.wait_s)."""


class LeaseLost(RuntimeError):
    """This run's lease was taken over by another run (or removed): two runs were on one output."""


def this_machine() -> str:
    """This process's kernel boot id and pid namespace (Linux), "" elsewhere: two processes with the same
    value see the same pids."""
    try:
        boot_id = open("/proc/sys/kernel/random/boot_id").read().strip()  # noqa: SIM115 - one short read
        return f"{boot_id}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def holder_gone(record: LeaseRecord) -> bool:
    """True when the holder ran on this machine, in this pid namespace, and its process no longer exists:
    a killed run, whose lease need not be waited out. False whenever that cannot be told."""
    here = this_machine()
    if not here or record.machine != here or record.host != socket.gethostname():
        return False
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def _parse(data: bytes) -> LeaseRecord | None:
    try:
        fields: dict[str, Any] = json.loads(data)
        return LeaseRecord(**fields)
    except (ValueError, TypeError):  # not a lease this code wrote: treated as no lease
        return None


class RunLease:
    """The lease of one run on one output. Use as a context manager: entering takes it (or raises
    LeaseHeld) and starts renewing it; leaving stops renewing and releases it."""

    def __init__(self, out: Output, run_id: str, cfg: LeaseConfig, uri: str) -> None:
        self._out, self._run_id, self._cfg, self._uri = out, run_id, cfg, redact_uri(uri)
        self._path = out.path(LEASE_FILE)
        self.token = uuid.uuid4().hex
        self._acquired_at = 0.0
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the object ---------------------------------------------------------------------------------------
    def read(self) -> LeaseRecord | None:
        """The lease as stored now (None: no lease)."""
        try:
            data = retry(lambda: self._out.fs.cat_file(self._path))
        except FileNotFoundError:
            return None
        return _parse(data)

    def _write(self) -> None:
        now = time.time()
        acquired_at = self._acquired_at or now
        record = LeaseRecord(
            self._run_id,
            socket.gethostname(),
            os.getpid(),
            self.token,
            acquired_at,
            now + self._cfg.ttl_s,
            this_machine(),
        )
        data = json.dumps(asdict(record), sort_keys=True).encode()
        fs = self._out.fs
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        if protocol in ("file", "local"):  # tmp + rename, the tmp name ours alone (two runs write at once)
            fs.makedirs(self._path.rsplit("/", 1)[0], exist_ok=True)
            tmp = f"{self._path}.{self.token}.tmp"
            fs.pipe_file(tmp, data)
            fs.mv(tmp, self._path)
        else:  # one PUT: readers see all of it or the previous object
            retry(lambda: fs.pipe_file(self._path, data))

    # -- taking, renewing, releasing ---------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lease, waiting up to lease.wait_s for a live one to be released or to expire; raise
        LeaseHeld past that."""
        deadline = time.monotonic() + self._cfg.wait_s
        said = False
        while True:
            holder = self.read()
            if holder is None or holder.token == self.token or self._dead(holder):
                self._write()
                time.sleep(self._cfg.settle_s)
                holder = self.read()
                if holder is not None and holder.token == self.token:
                    self._acquired_at = holder.acquired_at
                    return
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                raise LeaseHeld(self._held_message(holder))
            if not said:
                who = holder.describe(time.time()) if holder is not None else "another run"
                log.info("output %s is in use by %s; waiting for it (up to %g s)", self._uri, who, left_s)
                said = True
            until_expiry_s = holder.expires_at - time.time() if holder is not None else 0.0
            time.sleep(max(0.05, min(left_s, MAX_POLL_S, self._cfg.ttl_s / RENEWALS_PER_TTL, until_expiry_s)))

    @staticmethod
    def _dead(holder: LeaseRecord) -> bool:
        """An expired lease, or one whose holder's process is gone: taken over (and said so)."""
        if holder.expires_at <= time.time():
            log.warning("taking over the expired lease of %s", holder.describe(time.time()))
            return True
        if holder_gone(holder):
            log.warning("taking over the lease of %s: its process is gone", holder.describe(time.time()))
            return True
        return False

    def _held_message(self, holder: LeaseRecord | None) -> str:
        who = holder.describe(time.time()) if holder is not None else "another run"
        return (
            f"output {self._uri} is in use by {who}; a run renews its lease while it lives and a killed "
            f"one's lease expires after lease.ttl_s ({self._cfg.ttl_s:g} s). Wait for it with "
            "--wait-for-lease (lease.wait_s), or use another output"
        )

    def renew(self) -> None:
        """Extend the lease by ttl_s; raise LeaseLost when it is no longer ours."""
        current = self.read()
        if current is None or current.token != self.token:
            who = current.describe(time.time()) if current is not None else "nobody (the lease was removed)"
            self._lost = f"the lease on {self._uri} of run {self._run_id} is now held by {who}"
            raise LeaseLost(self._lost)
        self._write()

    def check(self) -> None:
        """Raise LeaseLost if a renewal found the lease taken over: the run should stop."""
        if self._lost is not None:
            raise LeaseLost(self._lost)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._cfg.ttl_s / RENEWALS_PER_TTL):
            try:
                self.renew()
            except LeaseLost as exc:
                log.error("%s: stopping this run at its next batch", exc)
                return
            except Exception as exc:  # noqa: BLE001 - a storage blip: the next renewal tries again
                log.warning("lease renewal failed (retrying): %s", describe_error(exc))

    def release(self) -> None:
        """Stop renewing; remove the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(FileNotFoundError):
            current = self.read()
            if current is not None and current.token == self.token:
                self._out.fs.rm_file(self._path)

    def __enter__(self) -> RunLease:
        self.acquire()
        self._thread = threading.Thread(target=self._renew_loop, name="run-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.release()
        except Exception as err:  # noqa: BLE001 - the lease expires by itself; the run's outcome stands
            log.warning("could not release the lease (it expires by itself): %s", describe_error(err))
