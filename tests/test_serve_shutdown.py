"""Graceful shutdown of a real ``aikit serve`` process: SIGTERM with requests in flight."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from aikit.serve.local import free_port

AIKIT = str(Path(sys.executable).parent / "aikit")
MESSAGES = [{"role": "user", "content": "hello"}]


def _start(
    model_dir: Path, *extra: str, env_extra: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env_extra or {})}
    env.pop("AIKIT_SERVE_TOKEN", None)
    proc = subprocess.Popen(
        [AIKIT, "serve", str(model_dir), "--port", str(port), "--log-level", "warning", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
        assert time.monotonic() < deadline, "the server did not become ready"
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)


def _in_flight(url: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("aikit_requests_in_flight "):
            return float(line.split()[1]) - 1  # minus this /metrics request
    return 0.0


def test_sigterm_finishes_requests_in_flight_refuses_new_ones_and_exits_0(tiny_model_dir: Any) -> None:
    # Each prediction is held for 1 s by a real middleware plugin, so three requests are still in
    # flight when SIGTERM arrives, on a slow machine or a fast one.
    slow = {
        "AIKIT_LOAD_PLUGINS": "_slow_predict_plugin",
        "AIKIT_TEST_PREDICT_DELAY": "1.0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])),
    }
    proc, url = _start(
        tiny_model_dir("llama-causal-lm"), "--max-batch-size", "1", "--shutdown-deadline", "120", env_extra=slow
    )
    try:
        body = {"messages": MESSAGES, "max_tokens": 24}
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(httpx.post, url + "/v1/chat/completions", json=body, timeout=180) for _ in range(3)]
            deadline = time.monotonic() + 60
            while _in_flight(url) < 3:
                assert time.monotonic() < deadline, "the requests never reached the server"
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with pytest.raises(httpx.TransportError):  # the listening socket is closed: no new work
                httpx.get(url + "/health", timeout=5)
            responses = [f.result() for f in futures]
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert all(r.json()["usage"]["completion_tokens"] > 0 for r in responses)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_a_port_in_use_and_a_short_token(tiny_model_dir: Any, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [AIKIT, "serve", str(tiny_model_dir("bert-embedding")), "--port", str(port)], capture_output=True, text=True
        )
    assert out.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in out.stderr
    token_file = tmp_path / "token"
    token_file.write_text("short\n")
    out = subprocess.run(
        [AIKIT, "serve", str(tiny_model_dir("bert-embedding")), "--token-file", str(token_file)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "at least 16 characters" in out.stderr
