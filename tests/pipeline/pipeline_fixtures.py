"""Shared fixtures: the local Ray with logical GPUs, and a real S3-compatible server (moto)
on loopback."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).absolute().parents[2]  # the checkout under test (symlinks kept)


def _tiny_model() -> str:
    """v1 (the paper's model) when its adapter is installed, else v2: both are real engine code paths."""
    import importlib.util

    try:
        return (
            "tiny-random-v1" if importlib.util.find_spec("rtprune.models.deepseek_v1") else "tiny-random-v2"
        )
    except ModuleNotFoundError:
        return "tiny-random-v2"


# Small max_new_tokens keeps CPU runs short: the pipeline's behaviour does not depend on text length.
ENGINE_OVERRIDES = {"model": _tiny_model(), "mode": "tiny", "max_new_tokens": 8}
# One OCR attempt per page. The tiny random model always ends at the token cap or in a loop, so the page
# policy's default unpruned retry would double the OCR work of every pipeline test that is not about the
# policy (test_page_policy.py and test_e2e_recovery.py keep the default). The text-layer fallback stays on.
PAGE_POLICY_ONE_ATTEMPT = {"greedy_retry": False}
# One render actor and one OCR actor on a logical GPU, in small batches: the pipeline tests' pools.
SMALL_POOLS = {
    "render_actors": 1,
    "render_num_cpus": 0.5,
    "ocr_num_gpus": 1,
    "ocr_num_cpus": 0.5,
    "ocr_batch_size": 4,
    "ocr_sub_batch_size": 2,
}


@pytest.fixture(scope="module")
def local_ray(session_ray):
    """The session's local Ray (8 logical CPUs, 2 logical GPUs; tests/conftest.py), progress bars off."""
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    return session_ray


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    key: str
    secret: str

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield S3Server(
        f"http://{host}:{port}",
        "AKIATESTKEY" + secrets.token_hex(4).upper(),
        "e2e-secret-" + secrets.token_hex(12),
    )
    server.stop()


def job_env() -> dict[str, str]:
    """The environment of a job started as its own process from the tests: this checkout first on the path,
    and no RAY_ADDRESS (the job starts its own local Ray, as on a user's machine)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(CHECKOUT), env.get("PYTHONPATH", "")])
    return env
