"""OpenAI compatibility, proven with the official ``openai`` client (and httpx where the wire
format itself is the point) against real uvicorn servers on loopback over real tiny models."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

import aikit
from aikit.serve import ServeSettings, create_app
from aikit.serve.local import LocalServer
from aikit.testing import MockBackend, fresh_host

TOKEN = "s3cret-token-for-tests-0123456789"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "be good"},
    {"role": "user", "content": "hello what is a cat"},
]
SAMPLED = {"temperature": 1.5, "seed": 7}  # the tiny random Llama says nothing when greedy


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        while c.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.05)


def _client(server: LocalServer, **kwargs: Any) -> openai.OpenAI:
    # No retries: every status the server sends must reach the test as it was sent.
    return openai.OpenAI(base_url=server.url + "/v1", api_key=kwargs.pop("api_key", "unused"), max_retries=0, **kwargs)


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Callable[[str], Path]) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("bert-embedding"))


@pytest.fixture(scope="module")
def llama(tiny_model_dir: Callable[[str], Path]) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("llama-causal-lm"))


@pytest.fixture(scope="module")
def embed_server(embedder: aikit.Model) -> Iterator[LocalServer]:
    settings = ServeSettings(model_name="tiny-embed", embedding_dimensions=(8,), max_inputs=4)
    with LocalServer(create_app(embedder, settings)) as server:
        _wait_ready(server.url)
        yield server


@pytest.fixture(scope="module")
def chat_server(llama: aikit.Model) -> Iterator[LocalServer]:
    settings = ServeSettings(model_name="tiny-llama", max_batch_size=8, max_wait_ms=5, timeout_s=120)
    with LocalServer(create_app(llama, settings)) as server:
        _wait_ready(server.url)
        yield server


@pytest.fixture(scope="module")
def embeddings_client(embed_server: LocalServer) -> Iterator[openai.OpenAI]:
    with _client(embed_server) as client:
        yield client


@pytest.fixture(scope="module")
def chat_client(chat_server: LocalServer) -> Iterator[openai.OpenAI]:
    with _client(chat_server, timeout=120) as client:
        yield client


# ---------------------------------------------------------------------- the how-to's snippet
def test_the_how_to_snippet(chat_server: LocalServer, embed_server: LocalServer) -> None:
    chat_url, embed_url = chat_server.url + "/v1", embed_server.url + "/v1"
    # --8<-- [start:openai-client]
    from openai import OpenAI

    # aikit serve ./my-chat-model --name tiny-llama   (api_key: the token when --token-file is set)
    client = OpenAI(base_url=chat_url, api_key="unused")
    print([m.id for m in client.models.list()])
    answer = client.chat.completions.create(
        model="tiny-llama",
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hello"}],
        max_tokens=8,
    )
    print(answer.choices[0].message.content, answer.usage)
    for chunk in client.chat.completions.create(
        model="tiny-llama",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    ):
        print(chunk.choices[0].delta.content if chunk.choices else chunk.usage)

    embedder = OpenAI(base_url=embed_url, api_key="unused")
    vectors = embedder.embeddings.create(model="tiny-embed", input=["hello world", "cat"])
    print(len(vectors.data[0].embedding))
    # --8<-- [end:openai-client]
    assert answer.choices[0].finish_reason in ("stop", "length") and len(vectors.data) == 2
    client.close()
    embedder.close()


# ---------------------------------------------------------------------- embeddings
def test_embeddings_with_the_clients_defaults_are_base64_of_the_models_vectors(
    embeddings_client: openai.OpenAI, embed_server: LocalServer, embedder: aikit.Model
) -> None:
    texts = ["hello world", "cat"]
    expected = embedder.embed(texts)
    # The client asks for base64 unless told otherwise, and decodes it itself.
    answer = embeddings_client.embeddings.create(model="tiny-embed", input=texts)
    np.testing.assert_allclose(np.array([d.embedding for d in answer.data]), expected, rtol=1e-5, atol=1e-6)
    assert answer.usage.prompt_tokens == 4 + 3  # [CLS] hello world [SEP], [CLS] cat [SEP]
    as_floats = embeddings_client.embeddings.create(model="tiny-embed", input=texts, encoding_format="float")
    np.testing.assert_allclose(np.array([d.embedding for d in as_floats.data]), expected, rtol=1e-5, atol=1e-6)
    # On the wire: little-endian float32, base64, bit-identical to the float answer.
    raw = httpx.post(embed_server.url + "/v1/embeddings", json={"input": texts, "encoding_format": "base64"})
    decoded = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in raw.json()["data"]]
    np.testing.assert_array_equal(np.array(decoded), np.array([d.embedding for d in as_floats.data], dtype=np.float32))


def test_embeddings_take_token_ids_of_the_models_tokenizer(
    embeddings_client: openai.OpenAI, embedder: aikit.Model
) -> None:
    tokenizer = embedder.parts.tokenizer
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in ("hello world", "cat")]
    expected = embedder.embed(["hello world", "cat"])
    one = embeddings_client.embeddings.create(model="tiny-embed", input=ids[0], encoding_format="float")
    np.testing.assert_allclose(one.data[0].embedding, expected[0], rtol=1e-5, atol=1e-6)
    many = embeddings_client.embeddings.create(model="tiny-embed", input=ids, encoding_format="float")
    np.testing.assert_allclose(np.array([d.embedding for d in many.data]), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(openai.BadRequestError) as caught:
        embeddings_client.embeddings.create(model="tiny-embed", input=[[5, 10_000]])
    assert caught.value.body["param"] == "input" and "10000" in caught.value.body["message"]


def test_dimensions_only_as_declared_truncated_and_renormalised(
    embeddings_client: openai.OpenAI, embedder: aikit.Model
) -> None:
    full = embedder.embed(["hello world"])[0]
    short = embeddings_client.embeddings.create(model="tiny-embed", input="hello world", dimensions=8)
    vector = np.array(short.data[0].embedding)
    np.testing.assert_allclose(vector, full[:8] / np.linalg.norm(full[:8]), rtol=1e-5, atol=1e-6)
    assert abs(np.linalg.norm(vector) - 1.0) < 1e-5
    same = embeddings_client.embeddings.create(model="tiny-embed", input="hello world", dimensions=len(full))
    np.testing.assert_allclose(same.data[0].embedding, full, rtol=1e-5, atol=1e-6)
    with pytest.raises(openai.BadRequestError) as caught:
        embeddings_client.embeddings.create(model="tiny-embed", input="hello world", dimensions=5)
    assert caught.value.body["param"] == "dimensions" and "[8]" in caught.value.body["message"]


def test_dimensions_are_refused_when_none_are_declared(embedder: aikit.Model) -> None:
    app = create_app(embedder, ServeSettings(model_name="m", warmup=False))
    with LocalServer(app) as server, _client(server) as client, pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="m", input="cat", dimensions=8)
    assert caught.value.status_code == 400 and caught.value.body["param"] == "dimensions"
    assert "not declared" in caught.value.body["message"]


# ---------------------------------------------------------------------- models
def test_models_list_and_retrieve(embeddings_client: openai.OpenAI) -> None:
    listed = embeddings_client.models.list()
    assert [m.id for m in listed.data] == ["tiny-embed"]
    card = embeddings_client.models.retrieve("tiny-embed")
    assert card.id == "tiny-embed" and card.object == "model" and card.owned_by == "aikit"
    with pytest.raises(openai.NotFoundError) as caught:
        embeddings_client.models.retrieve("org/other-model")
    assert caught.value.body["code"] == "model_not_found"


def test_an_unknown_model_is_404_on_every_route(embeddings_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        embeddings_client.embeddings.create(model="gpt-4o", input="cat")
    assert caught.value.body["code"] == "model_not_found" and caught.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        embeddings_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


# ---------------------------------------------------------------------- chat completions
def test_chat_completion_matches_in_process_generation(chat_client: openai.OpenAI, llama: aikit.Model) -> None:
    answer = chat_client.chat.completions.create(
        model="tiny-llama", messages=MESSAGES, max_tokens=6, temperature=1.5, seed=7
    )
    expected = llama.predict(MESSAGES, max_new_tokens=6, do_sample=True, temperature=1.5, seed=7)
    assert expected.text, "the sampled tiny model should say something"
    (choice,) = answer.choices
    assert choice.message.content == expected.text and choice.finish_reason == expected.finish_reason
    assert answer.usage is not None and answer.usage.completion_tokens == len(expected.token_ids)
    assert answer.usage.prompt_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_n_choices_are_independent_seeded_samples(chat_client: openai.OpenAI, llama: aikit.Model) -> None:
    answer = chat_client.chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=6, n=3, **SAMPLED)
    texts = [c.message.content for c in answer.choices]
    expected = [
        llama.predict(MESSAGES, max_new_tokens=6, do_sample=True, temperature=1.5, seed=7 + i).text for i in range(3)
    ]
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert texts == expected and len(set(texts)) > 1
    greedy = chat_client.chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=4, n=2)
    assert greedy.choices[0].message.content == greedy.choices[1].message.content


def test_stop_ends_the_text_before_the_stop_string(chat_client: openai.OpenAI, llama: aikit.Model) -> None:
    sampled = {"temperature": 1.5, "seed": 8}  # a seed whose text has several words
    full = llama.predict(MESSAGES, max_new_tokens=8, do_sample=True, **sampled).text
    stop = full.split()[2]
    answer = chat_client.chat.completions.create(
        model="tiny-llama",
        messages=MESSAGES,
        max_tokens=8,
        stop=[stop],
        **sampled,
    )
    text = answer.choices[0].message.content
    assert text is not None and stop not in text and full.startswith(text) and len(text) < len(full)
    expected = llama.predict(MESSAGES, max_new_tokens=8, do_sample=True, stop=(stop,), **sampled)
    assert (text, answer.choices[0].finish_reason) == (expected.text, expected.finish_reason)


def test_developer_role_and_text_parts_mean_system_and_plain_content(chat_client: openai.OpenAI) -> None:
    def text(messages: list[dict[str, Any]]) -> str | None:
        answer = chat_client.chat.completions.create(
            model="tiny-llama",
            messages=messages,
            max_tokens=6,
            **SAMPLED,
        )
        return answer.choices[0].message.content

    plain = text(MESSAGES)
    assert text([{"role": "developer", "content": "be good"}, MESSAGES[1]]) == plain
    parts = [{"type": "text", "text": "hello what"}, {"type": "text", "text": "is a cat"}]
    assert text([MESSAGES[0], {"role": "user", "content": parts}]) == text(
        [MESSAGES[0], {"role": "user", "content": "hello what\nis a cat"}]
    )


def test_streamed_chat_with_a_usage_chunk(chat_client: openai.OpenAI, llama: aikit.Model) -> None:
    stream = chat_client.chat.completions.create(
        model="tiny-llama",
        messages=MESSAGES,
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
        **SAMPLED,
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    expected = "".join(llama.stream(MESSAGES, max_new_tokens=6, do_sample=True, temperature=1.5, seed=7))
    assert expected and "".join(pieces) == expected
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert usage_chunks == [chunks[-1]] and chunks[-1].choices == []
    plain = chat_client.chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=6, **SAMPLED)
    assert plain.usage is not None and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens > 0


def test_streamed_chat_with_n_choices_interleaves_them_by_index(chat_client: openai.OpenAI, llama: aikit.Model) -> None:
    stream = chat_client.chat.completions.create(
        model="tiny-llama",
        messages=MESSAGES,
        max_tokens=5,
        n=2,
        stream=True,
        **SAMPLED,
    )
    texts = ["", ""]
    finished = set()
    for chunk in stream:
        assert chunk.usage is None  # not asked for
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
            if c.finish_reason is not None:
                finished.add(c.index)
    expected = [
        "".join(llama.stream(MESSAGES, max_new_tokens=5, do_sample=True, temperature=1.5, seed=7 + i)) for i in range(2)
    ]
    assert texts == expected and finished == {0, 1}


# ---------------------------------------------------------------------- legacy completions
def test_text_completions_use_the_raw_prompt(chat_client: openai.OpenAI, llama: aikit.Model) -> None:
    prompts = ["the cat is", "paris is a"]
    answer = chat_client.completions.create(model="tiny-llama", prompt=prompts, max_tokens=5, n=2, **SAMPLED)
    # Choice j of every prompt samples with seed 7 + j, the prompts together in one batch.
    batches = [
        llama.predict(prompts, max_new_tokens=5, chat_template=False, do_sample=True, temperature=1.5, seed=7 + j)
        for j in range(2)
    ]
    expected = [batches[j][p].text for p in range(len(prompts)) for j in range(2)]
    assert [c.text for c in answer.choices] == expected and [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert answer.object == "text_completion"
    assert answer.usage is not None and answer.usage.prompt_tokens > 0
    streamed = chat_client.completions.create(
        model="tiny-llama",
        prompt="the cat is",
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
        **SAMPLED,
    )
    chunks = list(streamed)
    alone = llama.stream("the cat is", max_new_tokens=5, chat_template=False, do_sample=True, temperature=1.5, seed=7)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "".join(alone)
    assert chunks[-1].usage is not None and chunks[-1].choices == []


# ---------------------------------------------------------------------- refusals and errors
@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"presence_penalty": -1.0}, "presence_penalty"),
        ({"logit_bias": {"5": 10}}, "logit_bias"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "c"}]}, "messages[0].role"),
        ({"made_up_option": 1}, "made_up_option"),
    ],
)
def test_what_aikit_cannot_honour_is_a_400_naming_it(
    chat_server: LocalServer, extra: dict[str, Any], param: str
) -> None:
    body = {"model": "tiny-llama", "messages": MESSAGES, "max_tokens": 2, **extra}
    response = httpx.post(chat_server.url + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert param.split("[")[0] in error["message"] or "content parts" in error["message"]


def test_values_that_ask_for_nothing_are_accepted(chat_client: openai.OpenAI) -> None:
    answer = chat_client.chat.completions.create(
        model="tiny-llama",
        messages=MESSAGES,
        max_tokens=2,
        frequency_penalty=0,
        presence_penalty=0.0,
        logprobs=False,
        response_format={"type": "text"},
        user="someone",
    )
    assert len(answer.choices) == 1


def test_validation_errors_are_400_in_openai_shape(chat_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat_client.chat.completions.create(
            model="tiny-llama", messages=[{"role": "user", "content": "hi"}], max_tokens=0
        )
    assert caught.value.body["param"] == "max_tokens" and caught.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as too_long:  # the tiny model's context is 128 tokens
        chat_client.chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=500, stream=True)
    assert "context" in too_long.value.body["message"]


def test_embeddings_route_on_a_chat_model_is_400(chat_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat_client.embeddings.create(model="tiny-llama", input="hi")
    assert "feature-extraction" in caught.value.body["message"]


def test_auth_and_size_refusals_are_in_openai_shape(embedder: aikit.Model) -> None:
    settings = ServeSettings(model_name="m", token=TOKEN, max_inputs=2, max_body_bytes=2000, warmup=False)
    with LocalServer(create_app(embedder, settings)) as server:
        with _client(server, api_key="wrong-token") as wrong, pytest.raises(openai.AuthenticationError) as denied:
            wrong.models.list()
        assert denied.value.body["code"] == "invalid_api_key"
        with _client(server, api_key=TOKEN) as client:
            with pytest.raises(openai.APIStatusError) as too_many:
                client.embeddings.create(model="m", input=["a", "b", "c"])
            assert too_many.value.status_code == 413 and "at most 2" in too_many.value.body["message"]
            with pytest.raises(openai.APIStatusError) as too_big:
                client.embeddings.create(model="m", input=["word " * 1000])
            assert too_big.value.status_code == 413 and too_big.value.body["code"] == "request_too_large"
        # aikit's own route keeps FastAPI's shape.
        plain = httpx.post(server.url + "/v1/predict", json={"inputs": ["a"]})
        assert plain.status_code == 401 and "detail" in plain.json()


class _Gate:
    """Middleware holding every model call until ``open`` is set (a real hook implementation)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()

    @aikit.hookimpl(wrapper=True)
    def aikit_predict(self, call: aikit.PredictCall) -> Generator[None, list[Any], list[Any]]:
        self.entered.set()
        assert self.open.wait(60), "the test never opened the gate"
        return (yield)


class _FailOnBoom:
    @aikit.hookimpl(wrapper=True)
    def aikit_predict(self, call: aikit.PredictCall) -> Generator[None, list[Any], list[Any]]:
        if any("boom" in str(item) for item in call.inputs):
            raise RuntimeError("the model broke")
        return (yield)


def test_overload_is_503_with_retry_after_and_a_crash_is_500(llama: aikit.Model) -> None:
    gate = _Gate()
    settings = ServeSettings(model_name="m", max_queue=1, warmup=False, timeout_s=60)
    with fresh_host(gate, _FailOnBoom()), LocalServer(create_app(llama, settings)) as server, _client(server) as client:
        holder = threading.Thread(
            target=lambda: list(
                client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=2, stream=True)
            ),
        )
        holder.start()
        try:
            assert gate.entered.wait(60)
            with pytest.raises(openai.InternalServerError) as busy:
                client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=2)
            assert busy.value.status_code == 503 and busy.value.response.headers["retry-after"]
            assert busy.value.body["type"] == "server_error" and busy.value.body["code"] == "overloaded"
        finally:
            gate.open.set()
            holder.join(60)
        with pytest.raises(openai.InternalServerError) as crashed:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "boom"}], max_tokens=2)
        assert crashed.value.status_code == 500 and "the model broke" in crashed.value.body["message"]


# ---------------------------------------------------------------------- middleware on streams
class _UseMockBackend:
    @aikit.hookimpl
    def aikit_register_backends(self, register: Callable[[type[aikit.Backend]], None]) -> None:
        register(MockBackend)


def test_a_streamed_chat_prompt_is_redacted_before_the_model_sees_it(
    tiny_model_dir: Callable[[str], Path], aikit_redact: Any
) -> None:
    secret = [{"role": "user", "content": "mail bob@example.com now"}]
    with fresh_host(aikit_redact, _UseMockBackend()):
        model = aikit.Model.load(tiny_model_dir("llama-causal-lm"), backend="mock")
        settings = ServeSettings(model_name="m", warmup=False)
        with LocalServer(create_app(model, settings)) as server, _client(server) as client:
            chunks = list(client.chat.completions.create(model="m", messages=secret, max_tokens=3, stream=True))
    assert chunks and isinstance(model.backend, MockBackend)
    (call,) = model.backend.calls  # one generation: the streamed one
    tokenizer = model.parts.tokenizer

    def ids(messages: list[dict[str, str]]) -> list[int]:
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])

    assert call["input_ids"][0].tolist() == ids([{"role": "user", "content": "mail [EMAIL] now"}])
    assert ids([{"role": "user", "content": "mail [EMAIL] now"}]) != ids(secret)  # the check can tell them apart


def test_stream_chunks_are_valid_server_sent_events(chat_server: LocalServer) -> None:
    body = {"model": "tiny-llama", "messages": MESSAGES, "max_tokens": 3, "stream": True, **SAMPLED}
    with httpx.stream("POST", chat_server.url + "/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
    assert {json.loads(line[6:])["object"] for line in lines[:-1]} == {"chat.completion.chunk"}
