"""Continuous batching of text generation: sequences join a running decode and leave it, exactly.

Real models on ONNX Runtime: the packaged SmolLM2 GGUF (shared-buffer ``GroupQueryAttention``
graph) and a tiny Llama exported by aikit itself (concatenated cache), and real HTTP servers.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

import aikit
from aikit.contracts.backend import StepDecoder
from aikit.contracts.options import GenerationOptions
from aikit.serve import ContinuousBatcher, OverloadedError, ServeSettings, create_app
from aikit.serve.local import LocalServer
from aikit.testing import fresh_host

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three prime numbers.",
    "Explain gravity in one sentence.",
    "Name a colour.",
]
NEW_TOKENS = 12


@pytest.fixture(scope="module")
def smollm2_ort(smollm2_path: Any) -> aikit.Model:
    return aikit.Model.load(smollm2_path)  # a GGUF file: ONNX Runtime with the file's own blocks


@pytest.fixture(scope="module")
def llama_concat(tiny_model_dir: Callable[[str], Path]) -> aikit.Model:
    return aikit.Model.load(
        tiny_model_dir("llama-causal-lm"), backend="onnxruntime", backend_options={"decoder": "torch"}
    )


def _alone(model: aikit.Model, prompt: str) -> list[int]:
    return list(model.predict(prompt, max_new_tokens=NEW_TOKENS).token_ids)


@pytest.mark.parametrize("which", ["smollm2_ort", "llama_concat"])
def test_sequences_joining_and_leaving_a_running_decode_get_their_own_tokens(
    which: str, request: pytest.FixtureRequest
) -> None:
    """Joins are staggered (each prompt arrives while the earlier ones are mid-decode) and every
    sequence leaves when it has its tokens; each must get exactly what greedy decoding alone gives."""
    model: aikit.Model = request.getfixturevalue(which)
    decoder = model.backend.step_decoder()
    assert decoder is not None
    assert model.backend.decoder.layout.shared == (which == "smollm2_ort")  # both cache layouts are covered
    options = GenerationOptions(max_new_tokens=NEW_TOKENS)
    task = model.task
    got: dict[int, list[int]] = {}
    owner: dict[int, int] = {}
    for i, prompt in enumerate(PROMPTS):
        ids = task.open_sequence(task.preprocess([prompt], max_length=None)[0], options).prompt_ids()
        slot, first = decoder.join(ids, options)
        owner[slot], got[i] = i, [first]
        for _ in range(2):
            for s, token in decoder.step().items():
                got[owner[s]].append(token)
            for s in [s for s, j in owner.items() if len(got[j]) >= NEW_TOKENS]:
                decoder.leave(s)
                del owner[s]
    while owner:
        for s, token in decoder.step().items():
            got[owner[s]].append(token)
        for s in [s for s, j in owner.items() if len(got[j]) >= NEW_TOKENS]:
            decoder.leave(s)
            del owner[s]
    assert decoder.active == 0
    eos = task.eos
    for i, prompt in enumerate(PROMPTS):
        expected = _alone(model, prompt)
        tokens = got[i][:NEW_TOKENS]
        end = next((k for k, t in enumerate(tokens) if t in eos), len(tokens))
        assert tokens[:end] == expected, f"prompt {i} ({prompt!r})"


def _ready(client: httpx.Client) -> None:
    deadline = time.monotonic() + 120
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "the server never became ready"
        time.sleep(0.05)


def test_concurrent_chat_requests_share_one_running_decode_over_http(smollm2_ort: aikit.Model) -> None:
    """Streamed and plain requests arriving together are decoded in shared steps (fewer steps than
    tokens) and each gets the text it gets alone."""
    settings = ServeSettings(max_batch_size=8, model_name="smol")
    app = create_app(smollm2_ort, settings)
    expected = {p: smollm2_ort.predict(p, max_new_tokens=NEW_TOKENS).text for p in PROMPTS}
    with LocalServer(app) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        _ready(client)
        assert client.get("/info").json()["settings"]["continuous_batching"] is True
        generator = app.state.service.generator
        steps_before, tokens_before = generator.steps, generator.tokens

        def plain(prompt: str) -> str:
            body = {"model": "smol", "messages": [{"role": "user", "content": prompt}], "max_tokens": NEW_TOKENS}
            r = client.post("/v1/chat/completions", json=body)
            assert r.status_code == 200, r.text
            content: str = r.json()["choices"][0]["message"]["content"]
            return content

        def streamed(prompt: str) -> str:
            body = {
                "model": "smol",
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": NEW_TOKENS,
                "stream": True,
            }
            text = ""
            with client.stream("POST", "/v1/chat/completions", json=body) as r:
                assert r.status_code == 200
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        for choice in json.loads(line[6:])["choices"]:
                            text += choice["delta"].get("content") or ""
            return text

        with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
            futures = {p: pool.submit(streamed if i % 2 else plain, p) for i, p in enumerate(PROMPTS)}
            answers = {p: f.result(timeout=120) for p, f in futures.items()}
        assert answers == expected
        steps, tokens = generator.steps - steps_before, generator.tokens - tokens_before
        assert tokens > steps  # some steps decoded several requests at once
        assert generator.active == 0 and generator.held == 0  # every place was given back


def test_middleware_sees_every_prompt_on_the_continuous_path(
    tiny_model_dir: Callable[[str], Path], aikit_redact: Any
) -> None:
    """The input-redaction plugin rewrites the prompt before the shared decoder sees it, for plain and
    streamed requests alike (the decoded prompt is what the step decoder was given)."""
    secret = "mail bob@example.com now"
    with fresh_host(aikit_redact):
        model = aikit.Model.load(
            tiny_model_dir("llama-causal-lm"), backend="onnxruntime", backend_options={"decoder": "torch"}
        )
        joined: list[list[int]] = []
        original = type(model.backend).step_decoder

        def recording(backend: Any) -> Any:
            decoder = original(backend)
            join = decoder.join

            def spy(prompt_ids: Any, options: GenerationOptions) -> tuple[int, int]:
                joined.append(list(prompt_ids))
                return join(prompt_ids, options)

            decoder.join = spy
            return decoder

        model.backend.step_decoder = recording.__get__(model.backend)  # type: ignore[method-assign]
        settings = ServeSettings(model_name="m", warmup=False)
        with LocalServer(create_app(model, settings)) as server, httpx.Client(base_url=server.url, timeout=60) as c:
            for stream in (False, True):
                body = {"model": "m", "messages": [{"role": "user", "content": secret}], "max_tokens": 2}
                r = c.post("/v1/chat/completions", json={**body, "stream": stream})
                assert r.status_code == 200, r.text
    tokenizer = model.parts.tokenizer

    def ids(content: str) -> list[int]:
        messages = [{"role": "user", "content": content}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])

    assert joined == [ids("mail [EMAIL] now")] * 2
    assert ids("mail [EMAIL] now") != ids(secret)  # the check can tell them apart


class _PacedDecoder(StepDecoder):
    """A real step decoder that takes at least ``pace`` seconds per step (a slower machine)."""

    def __init__(self, inner: StepDecoder, pace: float) -> None:
        self.inner, self.pace = inner, pace

    def join(self, prompt_ids: Sequence[int], options: GenerationOptions) -> tuple[int, int]:
        return self.inner.join(prompt_ids, options)

    def step(self) -> dict[int, int]:
        time.sleep(self.pace)
        return self.inner.step()

    def leave(self, slot: int) -> None:
        self.inner.leave(slot)

    @property
    def active(self) -> int:
        return self.inner.active


def test_a_request_that_could_not_start_before_its_deadline_is_refused_at_once(llama_concat: aikit.Model) -> None:
    """One place, taken by a generation of 40 tokens at >= 50 ms a step: a second request would wait
    about 2 s, past its 0.5 s deadline, so it is refused in milliseconds; once the place frees it
    is admitted again."""
    decoder = _PacedDecoder(llama_concat.backend.step_decoder(), 0.05)
    batcher = ContinuousBatcher(llama_concat, decoder, max_active=1, max_waiting=4, deadline_s=0.5)
    try:
        first = batcher.hold()
        stream = batcher.stream("hello", max_new_tokens=40, chat_template=False)
        next(stream)
        deadline = time.monotonic() + 5
        while not batcher._paces:  # one step timed, so the pace is known
            assert time.monotonic() < deadline
            time.sleep(0.01)
        wait = batcher.estimated_wait_s()
        assert wait is not None and 1.0 < wait < 3.0
        t0 = time.monotonic()
        with pytest.raises(OverloadedError, match="deadline"):
            batcher.hold()
        assert time.monotonic() - t0 < 0.05
        for _ in stream:
            pass
        first.release()
        batcher.hold().release()  # the place is free again: admitted
    finally:
        batcher.stop(timeout=10)
