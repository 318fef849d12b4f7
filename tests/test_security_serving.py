"""Hostile clients against real uvicorn servers on 127.0.0.1 (issue #15, item 5).

Slow clients (headers or bodies trickled, stalled, oversized), stream floods against a small
queue, requests larger than any queue, megabyte inputs while ``/health`` is polled, and ``/info``
leaking local paths. Every server runs in a ``LocalServer`` block, so it stops also when a test
fails; every raw socket is closed by its ``with`` block; every loop is bounded by a deadline.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from numpy.typing import NDArray

import aikit
from aikit.contracts.backend import Arrays, Backend
from aikit.contracts.options import BackendOptions, GenerationOptions
from aikit.contracts.parts import ModelParts
from aikit.serve import DynamicBatcher, OverloadedError, ServeSettings, create_app
from aikit.serve._batcher import RequestTooLargeError
from aikit.serve._info import HIDDEN, hide_paths
from aikit.serve.local import LocalServer
from aikit.testing import TINY_WORDS, MockBackend, fresh_host

TOKEN = "s3cret-token-for-tests-0123456789"
MESSAGES = [{"role": "user", "content": "hello what is a cat"}]
HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
# How long past a timeout a close may take on a loaded machine before the test calls it missing;
# the tests' trickles last longer than timeout + slack, so a server that never cuts them off fails.
SLACK_S = 4.0


# ---------------------------------------------------------------------- helpers
def _wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} never became true within {timeout:g} s"
        time.sleep(0.02)


def _wait_ready(client: httpx.Client) -> None:
    _wait_for(lambda: client.get("/ready").status_code == 200, 120, "/ready")


def _metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} not exposed")


def _stream_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "aikit-stream")


class SlowClient:
    """A raw TCP client on 127.0.0.1 that sends bytes at its own pace and records the server's answer."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.received = b""

    def __enter__(self) -> SlowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def trickle(self, data: bytes, *, interval: float, budget: float) -> float | None:
        """Send ``data`` one byte per ``interval`` s (cycling) for at most ``budget`` s.

        Returns the seconds until the server closed the connection, or None if it never did.
        """
        start = time.monotonic()
        self.sock.settimeout(interval)
        i = 0
        while time.monotonic() - start < budget:
            try:
                self.sock.sendall(data[i % len(data) : i % len(data) + 1])
            except OSError:  # broken pipe / reset: the server closed it
                return time.monotonic() - start
            i += 1
            if self._closed_within(interval):
                return time.monotonic() - start
        return None

    def stall(self, *, budget: float) -> float | None:
        """Send nothing; the seconds until the server closed the connection, or None."""
        start = time.monotonic()
        return time.monotonic() - start if self._closed_within(budget) else None

    def _closed_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return False
            except OSError:
                return True
            if not chunk:
                return True
            self.received += chunk
        return False


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir: Callable[[str], Path]) -> Path:
    return tiny_model_dir("bert-embedding")


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> aikit.Model:
    return aikit.Model.load(model_dir)


@pytest.fixture(scope="module")
def strict_server(embedder: aikit.Model) -> Iterator[LocalServer]:
    """Short deadlines, so slow clients are cut off within the tests' time."""
    settings = ServeSettings(
        header_timeout_s=HEADER_TIMEOUT_S,
        body_timeout_s=BODY_TIMEOUT_S,
        keep_alive_s=1.0,
        max_header_bytes=4096,
        max_queue=8,
        max_inputs=3,
        warmup=False,
    )
    with LocalServer(create_app(embedder, settings)) as server:
        yield server


# ---------------------------------------------------------------------- slow clients
def test_headers_trickled_a_byte_at_a_time_get_408_and_a_close(strict_server: LocalServer) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    endless = head + b"X-Slow: a\r\n" * 200  # never the blank line that ends a head
    with SlowClient(strict_server.port) as client:
        closed = client.trickle(endless, interval=0.05, budget=HEADER_TIMEOUT_S + SLACK_S)
    assert closed is not None, "a trickled request head was never cut off"
    assert closed >= HEADER_TIMEOUT_S * 0.9
    assert client.received.startswith(b"HTTP/1.1 408"), client.received[:200]


def test_a_connection_that_sends_nothing_is_closed(strict_server: LocalServer) -> None:
    with SlowClient(strict_server.port) as client:
        closed = client.stall(budget=HEADER_TIMEOUT_S + SLACK_S)
    assert closed is not None, "an idle connection was held open"
    assert client.received == b""  # nothing was asked, so nothing is answered


def test_keep_alive_connection_then_trickled_head_is_closed(strict_server: LocalServer) -> None:
    # The deadline is re-armed after each response: a second, trickled request is cut off too.
    with SlowClient(strict_server.port) as client:
        client.sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        _wait_for(lambda: client._closed_within(0.05) or b"\r\n\r\n" in client.received, 10, "first answer")
        assert client.received.startswith(b"HTTP/1.1 200")
        closed = client.trickle(b"GET /health HTTP/1.1\r\nX: y\r\n", interval=0.05, budget=HEADER_TIMEOUT_S + SLACK_S)
    assert closed is not None


@pytest.mark.parametrize("mode", ["stall", "trickle"])
def test_a_stalled_or_trickled_body_gets_408_and_a_close(strict_server: LocalServer, mode: str) -> None:
    body = json.dumps({"inputs": ["hello world"] * 3}).encode()
    head = (
        f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with SlowClient(strict_server.port) as client:
        client.sock.sendall(head + body[:5])
        if mode == "stall":
            closed = client.stall(budget=BODY_TIMEOUT_S + SLACK_S)
        else:  # a byte every 0.2 s: the body would need about 10 s
            closed = client.trickle(body[5:], interval=0.2, budget=BODY_TIMEOUT_S + SLACK_S)
    assert closed is not None, f"a {mode}ed body was never cut off"
    assert client.received.startswith(b"HTTP/1.1 408"), client.received[:200]
    assert b"connection: close" in client.received.lower()
    assert b"did not arrive within 1 s" in client.received


def test_a_body_sent_to_a_route_that_ignores_it_does_not_hold_the_connection(strict_server: LocalServer) -> None:
    with SlowClient(strict_server.port) as client:
        client.sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        closed = client.trickle(b"x", interval=0.05, budget=SLACK_S)
    assert closed is not None, "trickling a body nobody reads held the connection"
    assert client.received.startswith(b"HTTP/1.1 200")


def test_an_oversized_head_is_refused(strict_server: LocalServer) -> None:
    # A head still unfinished after max_header_bytes (4096) is refused, whatever comes next.
    with SlowClient(strict_server.port) as client:
        client.sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192)
        closed = client.stall(budget=SLACK_S)
    assert closed is not None
    assert client.received.startswith(b"HTTP/1.1 400"), client.received[:200]


def test_many_slow_clients_at_once_are_all_cut_off_and_health_stays_up(strict_server: LocalServer) -> None:
    count = 16
    head = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: a\r\n" * 100

    def one(i: int) -> float | None:
        with SlowClient(strict_server.port) as client:
            if i % 2:
                return client.stall(budget=HEADER_TIMEOUT_S + SLACK_S)
            return client.trickle(head, interval=0.1, budget=HEADER_TIMEOUT_S + SLACK_S)

    with concurrent.futures.ThreadPoolExecutor(count) as pool, httpx.Client(base_url=strict_server.url) as c:
        futures = [pool.submit(one, i) for i in range(count)]
        while not all(f.done() for f in futures):
            t0 = time.monotonic()
            assert c.get("/health").status_code == 200
            assert time.monotonic() - t0 < 1.0
            time.sleep(0.1)
        closed = [f.result() for f in futures]
    assert all(s is not None for s in closed), closed


# ---------------------------------------------------------------------- request size
def test_more_inputs_than_one_request_may_carry_is_413_naming_the_limit(strict_server: LocalServer) -> None:
    with httpx.Client(base_url=strict_server.url, timeout=30) as c:
        for path, body in [
            ("/v1/predict", {"inputs": ["a", "b", "c", "d"]}),
            ("/v1/embeddings", {"input": ["a", "b", "c", "d"]}),
        ]:
            response = c.post(path, json=body)
            assert response.status_code == 413, (path, response.text)
            assert "retry-after" not in response.headers
            body = response.json()  # the OpenAI route answers in OpenAI's error shape
            detail = body["error"]["message"] if path == "/v1/embeddings" else body["detail"]
            assert "carries 4 inputs" in detail and "at most 3" in detail, detail
        assert c.post("/v1/predict", json={"inputs": ["a", "b", "c"]}).status_code == 200
        too_big = c.post("/v1/predict", json={"inputs": ["word " * 250_000]})  # over max_body_bytes
        assert too_big.status_code == 413
        assert "at most 3 inputs" in too_big.json()["detail"]
        assert c.get("/info").json()["settings"]["max_inputs"] == 3


def test_a_request_larger_than_the_queue_is_413_not_503_forever(embedder: aikit.Model) -> None:
    # max_inputs unset: the queue's size is the limit, since more could never be admitted.
    settings = ServeSettings(max_queue=4, warmup=False)
    with LocalServer(create_app(embedder, settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        for _ in range(3):  # the answer does not change on retry
            response = c.post("/v1/predict", json={"inputs": ["a"] * 5})
            assert response.status_code == 413
            assert "at most 4" in response.json()["detail"]
        assert c.post("/v1/predict", json={"inputs": ["a"] * 4}).status_code == 200


def test_batcher_refuses_an_impossible_submit_and_counts_holds(embedder: aikit.Model) -> None:
    batcher = DynamicBatcher(
        lambda items, options: embedder.predict(items), max_batch_size=2, max_wait_ms=0, max_queue=3
    )
    try:
        with pytest.raises(RequestTooLargeError, match="at most 3"):
            batcher.submit(["a"] * 4)
        holds = [batcher.hold(), batcher.hold()]
        assert batcher.held == 2
        with pytest.raises(OverloadedError, match="2 streams running"):
            batcher.submit(["a", "b"])
        holds[0].release()
        holds[0].release()  # idempotent: a second release frees nothing more
        assert batcher.held == 1
        futures = batcher.submit(["a", "b"])
        assert [f.result(timeout=60).result.vector.shape for f in futures] == [(embedder.embed(["a"]).shape[1],)] * 2
        holds[1].release()
        assert batcher.held == 0
    finally:
        batcher.stop(10)


# ---------------------------------------------------------------------- streams and admission
@pytest.fixture(scope="module")
def llama(tiny_model_dir: Callable[[str], Path]) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("llama-causal-lm"))


def _stream(client: httpx.Client, max_tokens: int = 4) -> tuple[int, str | None, list[str]]:
    body = {"messages": MESSAGES, "max_tokens": max_tokens, "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        lines = [line for line in r.iter_lines() if line]
        return r.status_code, r.headers.get("retry-after"), lines


def test_a_stream_flood_gets_fast_503s_and_the_admitted_streams_finish(llama: aikit.Model) -> None:
    settings = ServeSettings(max_queue=2, max_batch_size=1, timeout_s=120, model_name="tiny-llama")
    flood = 60
    threads_before = _stream_threads()
    limits = httpx.Limits(max_connections=flood + 4)
    with (
        LocalServer(create_app(llama, settings)) as server,
        httpx.Client(base_url=server.url, timeout=120, limits=limits) as c,
    ):
        _wait_ready(c)
        with concurrent.futures.ThreadPoolExecutor(flood) as pool:
            # Another user holds the model: admitted streams wait for it, so exactly two places fill
            # and every other stream must be refused while the model is still busy.
            with llama._lock:
                futures = [pool.submit(_stream, c) for _ in range(flood)]
                _wait_for(lambda: sum(f.done() for f in futures) >= flood - 2, 60, "the refusals")
                refused = [f.result() for f in futures if f.done()]
                assert len(refused) == flood - 2
                assert all(status == 503 for status, _, _ in refused), {s for s, _, _ in refused}
                assert all(retry is not None and int(retry) >= 1 for _, retry, _ in refused)
                assert _metric(c, "aikit_streams_active") == 2
                assert _stream_threads() - threads_before <= 2
            answers = [f.result() for f in futures]
        statuses = sorted(status for status, _, _ in answers)
        assert statuses == [200] * 2 + [503] * (flood - 2)  # nothing lost, nothing else
        expected = "".join(llama.stream(MESSAGES, max_new_tokens=4))
        for status, _, lines in answers:
            if status == 200:
                assert lines[-1] == "data: [DONE]"
                chunks = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
                assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks) == expected
        _wait_for(lambda: _metric(c, "aikit_streams_active") == 0, 20, "places given back")
        _wait_for(lambda: _stream_threads() == threads_before, 20, "stream threads ended")
        assert _stream(c)[0] == 200  # recovered


def test_a_stream_that_times_out_holds_its_place_until_its_thread_ends(llama: aikit.Model) -> None:
    settings = ServeSettings(max_queue=1, max_batch_size=1, timeout_s=1.0)
    with LocalServer(create_app(llama, settings)) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        _wait_ready(c)
        with llama._lock:
            status, _, _ = _stream(c)
            assert status == 504
            # Its thread still waits for the model: the place stays taken, a new stream is refused.
            assert _metric(c, "aikit_streams_active") == 1
            assert _stream(c)[0] == 503
        _wait_for(lambda: _metric(c, "aikit_streams_active") == 0, 20, "the timed-out stream's place back")
        failed = c.post(
            "/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 500, "stream": True}
        )  # more new tokens than the model's context: the generating thread fails at once
        assert failed.status_code == 400  # the client's fault, named in OpenAI's error shape
        assert "context" in failed.json()["error"]["message"]
        _wait_for(lambda: _metric(c, "aikit_streams_active") == 0, 20, "the failed stream's place back")
        assert _stream(c)[0] == 200


class PacedBackend(MockBackend):
    """``MockBackend`` generating one known word every ``step_s`` seconds: a stream that lasts."""

    name = "paced"
    description = "mock backend that generates slowly"
    priority = -200
    step_s = 0.1

    def __init__(self, options: BackendOptions | None = None, *, token_id: int = 0) -> None:
        super().__init__(options)
        self.token_id = token_id

    @classmethod
    def from_parts(cls, parts: ModelParts, options: BackendOptions) -> Backend:
        return cls(options, token_id=int(parts.tokenizer.convert_tokens_to_ids(TINY_WORDS[0])))

    def generate(self, inputs: Arrays, options: GenerationOptions) -> Iterator[NDArray[np.int64]]:
        rows = inputs["input_ids"].shape[0]
        for _ in range(options.max_new_tokens):
            time.sleep(self.step_s)
            yield np.full(rows, self.token_id, dtype=np.int64)


class _PacedPlugin:
    @aikit.hookimpl
    def aikit_register_backends(self, register: Callable[[Any], None]) -> None:
        register(PacedBackend)


def test_a_client_that_disconnects_mid_stream_frees_its_place(tiny_model_dir: Callable[[str], Path]) -> None:
    max_tokens = 100  # 10 s of generation at 0.1 s a token: far longer than the test waits
    with fresh_host(_PacedPlugin()):
        model = aikit.Model.load(tiny_model_dir("llama-causal-lm"), backend="paced")
        settings = ServeSettings(max_queue=1, max_batch_size=1, timeout_s=30)
        with LocalServer(create_app(model, settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
            _wait_ready(c)
            body = {"messages": MESSAGES, "max_tokens": max_tokens, "stream": True}
            started = time.monotonic()
            with c.stream("POST", "/v1/chat/completions", json=body) as r:
                assert r.status_code == 200
                for line in r.iter_lines():
                    if '"content"' in line:
                        break  # one piece of text, then hang up
            _wait_for(lambda: _metric(c, "aikit_streams_active") == 0, 5, "the place after a disconnect")
            assert time.monotonic() - started < max_tokens * PacedBackend.step_s, "the generation ran to its end"
            with c.stream("POST", "/v1/chat/completions", json={**body, "max_tokens": 2}) as again:
                assert again.status_code == 200  # the single place is free again
                assert list(again.iter_lines())[-2] == "data: [DONE]"


# ---------------------------------------------------------------------- megabyte inputs
def test_megabyte_inputs_do_not_stall_health(model_dir: Path) -> None:
    model = aikit.Model.load(model_dir)  # its own: the truncation warning is shown once per model
    settings = ServeSettings(max_body_bytes=6_000_000, warmup=False)
    text = "hello world the cat " * 50_000  # 1 MB: whole, it takes about 0.4 s to tokenize here
    with (
        LocalServer(create_app(model, settings)) as server,
        httpx.Client(base_url=server.url, timeout=60) as c,
        pytest.warns(aikit.TruncationWarning),  # the model reads 64 tokens of each input, and says so
    ):
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            job = pool.submit(c.post, "/v1/embeddings", json={"input": [text] * 4})
            worst = 0.0
            polls = 0
            while not job.done() or polls < 3:
                t0 = time.monotonic()
                assert c.get("/health").status_code == 200
                worst = max(worst, time.monotonic() - t0)
                polls += 1
                time.sleep(0.02)
            response = job.result()
        assert response.status_code == 200, response.text[:300]
        assert worst < 1.0, f"/health took {worst:.2f} s while a megabyte request was handled"
        # Usage counts what the model reads: at most its limit (64 tokens) per input.
        assert response.json()["usage"]["prompt_tokens"] == 4 * 64


def test_megabyte_chat_prompt_usage_is_capped_at_the_context(tiny_model_dir: Callable[[str], Path]) -> None:
    model = aikit.Model.load(tiny_model_dir("llama-causal-lm"))  # its own: one truncation warning per model
    settings = ServeSettings(max_body_bytes=2_000_000, warmup=False)
    messages = [{"role": "user", "content": "hello what is a cat " * 50_000}]
    with (
        LocalServer(create_app(model, settings)) as server,
        httpx.Client(base_url=server.url, timeout=60) as c,
        pytest.warns(aikit.TruncationWarning),
    ):
        response = c.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 2})
        assert response.status_code == 200, response.text[:300]
        assert 0 < response.json()["usage"]["prompt_tokens"] <= 128


# ---------------------------------------------------------------------- /info and local paths
def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_info_shows_no_local_paths_without_a_token(embedder: aikit.Model, model_dir: Path, tmp_path: Path) -> None:
    saved = tmp_path / "artifact"
    embedder.save(saved)
    model = aikit.Model.load(saved)
    secrets = {str(model_dir), str(saved), str(tmp_path), str(Path.home()), str(Path.cwd())}
    with LocalServer(create_app(model, ServeSettings(warmup=False))) as server, httpx.Client(base_url=server.url) as c:
        info = c.get("/info").json()
    text = json.dumps(info)
    assert not [s for s in secrets if s in text]
    assert not [s for s in _strings(info) if s.startswith(("/", "~")) or ":\\" in s]
    assert info["describe"]["source"]["location"] == HIDDEN
    assert info["describe"]["source"]["sha256"]  # the weights are still identified
    assert info["model"] and info["task"] == "feature-extraction"


def test_info_shows_paths_only_to_a_request_with_the_token(embedder: aikit.Model, model_dir: Path) -> None:
    settings = ServeSettings(token=TOKEN, warmup=False)
    with LocalServer(create_app(embedder, settings)) as server, httpx.Client(base_url=server.url) as c:
        assert c.get("/info").status_code == 401
        assert c.get("/info", headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
        info = c.get("/info", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert info["describe"]["source"]["location"] == str(model_dir)


def test_hide_paths_replaces_every_form_of_path_and_keeps_the_rest() -> None:
    value = {
        "source": {"kind": "huggingface", "location": "relative/models/bert", "sha256": "ab12"},
        "cache_dir": "cache",
        "note": "exported to /home/alice/.cache/aikit/model.onnx from C:\\Users\\bob\\m and ~/x",
        "url": "file:///srv/models/a",
        "ratio": "3/4",
        "steps": [{"export_path": "out.onnx", "size": 12}],
    }
    hidden = hide_paths(value)
    assert hidden["source"] == {"kind": "huggingface", "location": HIDDEN, "sha256": "ab12"}
    assert hidden["cache_dir"] == HIDDEN
    assert hidden["note"] == f"exported to {HIDDEN} from {HIDDEN} and {HIDDEN}"
    assert hidden["url"] == HIDDEN
    assert hidden["ratio"] == "3/4"
    assert hidden["steps"] == [{"export_path": HIDDEN, "size": 12}]
    assert value["cache_dir"] == "cache"  # a copy: the model's own data is untouched
