"""OpenAI chat completions (plain and server-sent events) on a real tiny Llama."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import aikit
from aikit.serve import ServeSettings, create_app
from aikit.serve.local import LocalServer

MESSAGES = [{"role": "system", "content": "be good"}, {"role": "user", "content": "hello what is a cat"}]


@pytest.fixture(scope="module")
def llama(tiny_model_dir: Any) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("llama-causal-lm"))


@pytest.fixture(scope="module")
def client(llama: aikit.Model) -> Iterator[httpx.Client]:
    settings = ServeSettings(max_batch_size=4, max_wait_ms=10, model_name="tiny-llama")
    with LocalServer(create_app(llama, settings)) as server, httpx.Client(base_url=server.url, timeout=120) as c:
        deadline = time.monotonic() + 120
        while c.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield c


def test_chat_completion_matches_in_process_generation(client: httpx.Client, llama: aikit.Model) -> None:
    response = client.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 6, "model": "tiny-llama"})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = llama.predict(MESSAGES, max_new_tokens=6)
    choice = body["choices"][0]
    assert body["object"] == "chat.completion" and body["model"] == "tiny-llama"
    assert choice["message"] == {"role": "assistant", "content": expected.text, "refusal": None}
    assert choice["finish_reason"] == expected.finish_reason
    assert body["usage"]["completion_tokens"] == len(expected.token_ids)
    assert body["usage"]["prompt_tokens"] > 0
    assert float(response.headers["x-inference-time-ms"]) > 0


def test_chat_streams_server_sent_events(client: httpx.Client, llama: aikit.Model) -> None:
    with client.stream(
        "POST", "/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 6, "stream": True}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "".join(llama.stream(MESSAGES, max_new_tokens=6))
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_chat_predict_route_takes_message_lists_and_options(client: httpx.Client, llama: aikit.Model) -> None:
    response = client.post(
        "/v1/predict", json={"inputs": [MESSAGES, "hello"], "options": {"max_new_tokens": 3, "stop": ["zzz"]}}
    )
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert outputs[0]["token_ids"] == list(llama.predict(MESSAGES, max_new_tokens=3, stop=("zzz",)).token_ids)
    bad = client.post("/v1/predict", json={"inputs": ["hello"], "options": {"max_new_tokens": 0}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "options"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"messages": MESSAGES, "n": 0}, "n"),
        ({"messages": MESSAGES, "model": "x"}, "model"),
    ],
)
def test_chat_validation_is_an_openai_error_naming_the_parameter(
    client: httpx.Client, body: dict[str, Any], param: str
) -> None:
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == (404 if param == "model" else 400)
    assert response.json()["error"]["param"] == param


def test_embeddings_route_on_a_chat_model_is_400(client: httpx.Client) -> None:
    response = client.post("/v1/embeddings", json={"input": "hi"})
    assert response.status_code == 400 and "feature-extraction" in response.json()["error"]["message"]
