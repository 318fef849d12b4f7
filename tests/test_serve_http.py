"""The HTTP API on real uvicorn servers (loopback, free ports) over real tiny models."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import aikit
from aikit.serve import ServeSettings, create_app
from aikit.serve.local import LocalServer
from aikit.testing import TINY_WORDS

TOKEN = "s3cret-token-for-tests-0123456789"


def _wait_ready(client: httpx.Client, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "the server never became ready"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Any) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("bert-embedding"))


@pytest.fixture(scope="module")
def served(embedder: aikit.Model) -> Iterator[httpx.Client]:
    """The tiny embedder with batching, a small body limit and a generous queue."""
    settings = ServeSettings(max_batch_size=16, max_wait_ms=20, max_body_bytes=4096, model_name="tiny-embed")
    with LocalServer(create_app(embedder, settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        _wait_ready(c)
        yield c


def _metric(client: httpx.Client, name: str) -> float:
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---------------------------------------------------------------------- operations routes
def test_health_ready_info_and_openapi(served: httpx.Client, embedder: aikit.Model) -> None:
    assert served.get("/health").json() == {"status": "ok"}
    assert served.get("/ready").json() == {"ready": True}
    info = served.get("/info").json()
    assert info["model"] == "tiny-embed" and info["task"] == "feature-extraction"
    assert info["backend"] == embedder.backend_name
    assert {"aikit", "python", "torch", "fastapi", "uvicorn"} <= set(info["versions"])
    assert info["settings"]["max_batch_size"] == 16 and info["settings"]["auth"] is False
    paths = served.get("/openapi.json").json()["paths"]
    for route in ("/v1/predict", "/v1/embeddings", "/v1/chat/completions", "/health", "/ready", "/metrics", "/info"):
        assert route in paths


def test_warm_up_measures_items_per_model_call_unless_someone_chose_it(
    served: httpx.Client, embedder: aikit.Model
) -> None:
    """A text encoder whose batch size nobody chose gets the fastest of max_batch_size, /2, /4 per
    call, timed at warm-up on real sentences; a size set in the settings is used as it is."""
    settings = served.get("/info").json()["settings"]
    rates = {int(k): v for k, v in settings["model_batch_rates"].items()}
    assert sorted(rates) == [4, 8, 16] and all(r > 0 for r in rates.values())
    fastest = max(rates, key=lambda k: rates[k])
    # The fastest size, unless it beat whole batches by under 10% (then whole batches: None).
    assert settings["model_batch_size"] == (fastest if rates[fastest] >= 1.1 * rates[16] else None)
    chosen = ServeSettings(max_batch_size=16, model_batch_size=2)
    with LocalServer(create_app(embedder, chosen)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        _wait_ready(c)
        info = c.get("/info").json()["settings"]
        assert info["model_batch_size"] == 2 and info["model_batch_rates"] == {}
        texts = [" ".join(TINY_WORDS[i : i + 3 + i % 5]) for i in range(6)]
        got = np.asarray([o["embedding"] for o in c.post("/v1/predict", json={"inputs": texts}).json()["outputs"]])
        np.testing.assert_allclose(got, embedder.embed(texts), atol=1e-5)


def test_predict_matches_in_process_predict_and_sends_timing_headers(
    served: httpx.Client, embedder: aikit.Model
) -> None:
    texts = ["hello world", "the cat is on the river", "paris"]
    response = served.post("/v1/predict", json={"inputs": texts})
    assert response.status_code == 200
    body = response.json()
    assert body["task"] == "feature-extraction" and len(body["outputs"]) == 3
    expected = embedder.embed(texts)
    np.testing.assert_allclose(np.array([o["embedding"] for o in body["outputs"]]), expected, rtol=1e-4, atol=1e-5)
    for header in ("x-queue-time-ms", "x-inference-time-ms", "x-total-time-ms", "server-timing"):
        assert header in response.headers
    assert float(response.headers["x-inference-time-ms"]) > 0
    # Operations routes carry the headers too (zero model time).
    assert served.get("/health").headers["x-inference-time-ms"] == "0.000"


def test_concurrent_requests_are_batched_and_answered_individually(served: httpx.Client, embedder: aikit.Model) -> None:
    words = TINY_WORDS[TINY_WORDS.index("good") :][:16]  # words the tiny tokenizer knows
    texts = [f"{a} {b}" for a, b in zip(words, reversed(words))]
    batches_before = _metric(served, "aikit_batch_size_count")
    items_before = _metric(served, "aikit_batch_size_sum")

    def one(text: str) -> list[float]:
        r = served.post("/v1/predict", json={"inputs": [text]})
        assert r.status_code == 200, r.text
        vector: list[float] = r.json()["outputs"][0]["embedding"]
        return vector

    with concurrent.futures.ThreadPoolExecutor(len(texts)) as pool:
        vectors = list(pool.map(one, texts))
    np.testing.assert_allclose(np.array(vectors), embedder.embed(texts), rtol=1e-4, atol=1e-5)
    batches = _metric(served, "aikit_batch_size_count") - batches_before
    items = _metric(served, "aikit_batch_size_sum") - items_before
    assert items == len(texts)
    assert batches < len(texts), "concurrent requests were never grouped into one model call"


def test_metrics_report_requests_latency_queue_and_inference(served: httpx.Client) -> None:
    served.post("/v1/predict", json={"inputs": ["hello"]})
    text = served.get("/metrics").text
    assert 'aikit_requests_total{route="/v1/predict",status="200"}' in text
    for name in (
        "aikit_request_latency_seconds_bucket",
        "aikit_queue_time_seconds_count",
        "aikit_inference_time_seconds_count",
        "aikit_batch_size_bucket",
        "aikit_queue_depth",
        "aikit_ready 1.0",
    ):
        assert name in text


# ---------------------------------------------------------------------- validation and limits
@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"inputs": [3]}, ["body", "inputs", 0]),
        ({"inputs": []}, ["body", "inputs"]),
        ({"inputs": ["a"], "unknown": 1}, ["body", "unknown"]),
        ({"inputs": ["a"], "options": {"max_new_tokens": 3}}, ["body", "options"]),
        ({"inputs": ["a", {"image_base64": "aGVsbG8="}]}, ["body", "inputs", 1]),
        ({"inputs": [[{"role": "user", "content": "hi"}]]}, ["body", "inputs", 0]),
    ],
)
def test_invalid_input_is_422_naming_the_field(served: httpx.Client, body: dict[str, Any], loc: list[Any]) -> None:
    response = served.post("/v1/predict", json=body)
    assert response.status_code == 422
    locs = [e["loc"][: len(loc)] for e in response.json()["detail"]]
    assert loc in locs, response.json()


def test_malformed_json_is_422(served: httpx.Client) -> None:
    response = served.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_body_over_the_limit_is_413_declared_or_streamed(served: httpx.Client) -> None:
    big = {"inputs": ["word " * 2000]}
    assert served.post("/v1/predict", json=big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield b'{"inputs": ["'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"]}'

    response = served.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert served.post("/v1/predict", json={"inputs": ["still fine"]}).status_code == 200


# ---------------------------------------------------------------------- OpenAI embeddings
def test_openai_embeddings(served: httpx.Client, embedder: aikit.Model) -> None:
    response = served.post("/v1/embeddings", json={"input": ["hello world", "cat"], "model": "tiny-embed"})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and [d["index"] for d in body["data"]] == [0, 1]
    np.testing.assert_allclose(
        np.array([d["embedding"] for d in body["data"]]), embedder.embed(["hello world", "cat"]), rtol=1e-4, atol=1e-5
    )
    assert body["usage"]["prompt_tokens"] == 4 + 3  # [CLS] hello world [SEP], [CLS] cat [SEP]
    single = served.post("/v1/embeddings", json={"input": "cat"}).json()
    assert len(single["data"]) == 1
    assert served.post("/v1/embeddings", json={"input": [[]]}).status_code == 400
    assert served.post("/v1/embeddings", json={"input": "cat", "dimensions": 3}).status_code == 400


def test_chat_route_on_an_embedding_model_is_400(served: httpx.Client) -> None:
    response = served.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400
    assert "text-generation" in response.json()["error"]["message"]


# ---------------------------------------------------------------------- auth
def test_bearer_token_guards_every_route_but_health(embedder: aikit.Model) -> None:
    settings = ServeSettings(token=TOKEN, warmup=False)
    with LocalServer(create_app(embedder, settings)) as server, httpx.Client(base_url=server.url) as c:
        assert c.get("/health").status_code == 200
        for method, path in [
            ("GET", "/ready"),
            ("GET", "/metrics"),
            ("GET", "/info"),
            ("GET", "/openapi.json"),
            ("POST", "/v1/predict"),
            ("POST", "/v1/embeddings"),
            ("GET", "/docs"),
        ]:
            missing = c.request(method, path, json={"inputs": ["a"]})
            assert missing.status_code == 401, path
            assert missing.headers["www-authenticate"] == "Bearer"
            wrong = c.request(method, path, headers={"Authorization": "Bearer " + TOKEN[:-1] + "X"})
            assert wrong.status_code == 401, path
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert c.get("/ready", headers=good).status_code == 200
        assert c.post("/v1/predict", json={"inputs": ["a"]}, headers=good).status_code == 200
        assert c.get("/info", headers=good).json()["settings"]["auth"] is True
        assert TOKEN not in c.get("/info", headers=good).text


# ---------------------------------------------------------------------- backpressure
def test_full_queue_is_an_immediate_503_and_timeouts_are_504_then_recovery(embedder: aikit.Model) -> None:
    # 10 s, not less: on a loaded machine the three held requests must still be queued (not yet past
    # their deadline) when the fourth arrives, or the fourth is admitted and ends in 504 instead of 503.
    settings = ServeSettings(max_batch_size=1, max_wait_ms=0, max_queue=2, timeout_s=10.0)
    app = create_app(embedder, settings)
    with LocalServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        _wait_ready(c)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            # Another user of the same model holds it: the worker takes one item and blocks on the
            # model; two more fill the queue; the fourth must be refused at once. The first is sent
            # alone and is in the model before the next two leave: sent together, all three can reach
            # the door before the worker takes one (a slow wake-up on a loaded machine), and the third
            # is then rightly refused with the queue full.
            with embedder._lock:
                post = partial(c.post, "/v1/predict")
                waiting = [pool.submit(post, json={"inputs": ["item 0"]})]
                _wait_for(lambda: app.state.service.batcher.busy)
                waiting += [pool.submit(post, json={"inputs": [f"item {i}"]}) for i in (1, 2)]
                _wait_for(lambda: _metric(c, "aikit_queue_depth") == 2)
                t0 = time.monotonic()
                refused = c.post("/v1/predict", json={"inputs": ["one too many"]})
                refused_s = time.monotonic() - t0
                assert refused.status_code == 503
                assert int(refused.headers["retry-after"]) >= 1
                assert refused_s < 0.5, f"a full queue took {refused_s:.2f} s to answer"
                # Refused at the door, before the body is parsed: even an invalid body gets 503, in
                # the route family's own error shape, and the connection stays open for the next one.
                assert c.post("/v1/predict", json={"not": "valid"}).status_code == 503
                openai = c.post("/v1/embeddings", json={"input": "x", "model": "m"})
                assert openai.status_code == 503 and openai.json()["error"]["code"] is not None
                assert openai.headers.get("connection") != "close" and int(openai.headers["retry-after"]) >= 1
                statuses = sorted(f.result().status_code for f in waiting)
            assert statuses == [504, 504, 504]
        # The model is free again: the service recovers.
        assert c.post("/v1/predict", json={"inputs": ["after"]}).status_code == 200
        text = c.get("/metrics").text
        assert 'aikit_requests_total{route="/v1/predict",status="503"} 2.0' in text
        assert 'aikit_request_errors_total{route="/v1/predict",status="504"} 3.0' in text


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


# ---------------------------------------------------------------------- failure isolation (images)
def _png(color: tuple[int, int, int]) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (24, 24), color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_a_bad_item_in_a_batch_fails_only_its_own_request(tiny_model_dir: Any) -> None:
    model = aikit.Model.load(tiny_model_dir("vit-image-classification"))
    settings = ServeSettings(max_batch_size=8, max_wait_ms=1500)  # long enough for all three to queue
    with LocalServer(create_app(model, settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        _wait_ready(c)
        good = {"inputs": [{"image_base64": _png((200, 30, 30))}]}
        bad = {"inputs": [{"image_base64": base64.b64encode(b"not an image at all").decode()}]}
        # A pair first: once a batch held more than one item, a lone arrival waits for company.
        assert c.post("/v1/predict", json={"inputs": good["inputs"] * 2}).status_code == 200
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            with hold_model(model):  # the three requests queue up meanwhile and form one batch
                futures = [pool.submit(c.post, "/v1/predict", json=body) for body in (good, bad, good)]
                _wait_for(lambda: _metric(c, "aikit_queue_depth") == 3)
            responses = [f.result() for f in futures]
        assert [r.status_code for r in responses] == [200, 422, 200]
        assert responses[1].json()["detail"][0]["loc"] == ["body", "inputs", 0]
        expected = model.predict(base64.b64decode(good["inputs"][0]["image_base64"]))
        assert responses[0].json()["outputs"][0]["label"] == expected.label
        # Model calls: the warm-up (1), the pair (2), the failed batch (3), then each of its items alone (1, 1, 1).
        assert _metric(c, "aikit_batch_size_count") == 6
        assert _metric(c, "aikit_batch_size_sum") == 1 + 2 + 3 + 3
        assert c.post("/v1/predict", json={"inputs": ["text"]}).status_code == 422
        not_b64 = c.post("/v1/predict", json={"inputs": [{"image_base64": "***"}]})
        assert not_b64.status_code == 422
        assert not_b64.json()["detail"][0]["loc"] == ["body", "inputs", 0, "image_base64"]


class hold_model:  # noqa: N801 - reads as a statement: "with hold_model(model)"
    """Hold a model's lock (another user of the same model) until the block's end."""

    def __init__(self, model: aikit.Model) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.model._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.model._lock.release()


def test_warmup_failure_keeps_ready_503(tmp_path: Path, tiny_model_dir: Any) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-embedding"))
    # A model whose tokenizer is gone fails every prediction: the service must not claim readiness.
    model.parts.tokenizer = None
    model.task = type(model.task)(model.parts)
    with LocalServer(create_app(model, ServeSettings())) as server, httpx.Client(base_url=server.url) as c:
        _wait_for(lambda: "warm-up prediction failed" in c.get("/ready").text)
        response = c.get("/ready")
        assert response.status_code == 503 and response.json()["ready"] is False
        assert c.get("/health").status_code == 200
        assert c.post("/v1/predict", json={"inputs": ["a"]}).status_code in (422, 500)
