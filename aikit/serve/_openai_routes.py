"""OpenAI-compatible routes: embeddings, chat and text completions, and the model list.

- ``POST /v1/embeddings``: strings or token ids of this model's tokenizer; ``float`` or
  ``base64`` encoding; ``dimensions`` only as declared (``ServeSettings.embedding_dimensions``).
- ``POST /v1/chat/completions`` and ``POST /v1/completions`` (legacy: raw prompts, no chat
  template): ``n`` choices, ``stop``, ``seed``, ``usage``; ``"stream": true`` sends server-sent
  events (see ``aikit.serve._openai_stream``), ``stream_options.include_usage`` a last usage chunk.
- ``GET /v1/models`` and ``GET /v1/models/{id}``: the one served model.

All go through the same batcher (and so the same ``aikit_predict`` middleware) as
``/v1/predict``. A ``model`` other than the served one is ``404``; a field aikit cannot honour is
``400`` naming it (``aikit.serve._openai_schemas``); errors are in OpenAI's shape
(``aikit.serve._openai_errors``). Usage counts run in worker threads on text cut to what the
model can read (``ModelService.usage_tokens``).
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np
from fastapi import FastAPI, Request

from aikit.contracts.options import options_from_kwargs
from aikit.contracts.results import Embedding, Generation
from aikit.errors import ConfigError
from aikit.serve._batcher import RequestTooLargeError
from aikit.serve._http_errors import raise_http
from aikit.serve._openai_errors import OpenAIError
from aikit.serve._openai_schemas import ChatMessage, ChatRequest, CompletionRequest, EmbeddingsRequest
from aikit.serve._openai_stream import ChoiceFormat, StreamJob, stream_choices
from aikit.serve._service import ItemError, ModelService, describe_error

__all__ = ["add_openai_routes"]

Messages = list[dict[str, str]]


def add_openai_routes(app: FastAPI, service: ModelService) -> None:
    """Register the OpenAI-style routes on ``app`` (they answer 400 for models of another task)."""
    model = service.model
    name = service.settings.model_name
    created = int(time.time())
    card = {"id": name, "object": "model", "created": created, "owned_by": "aikit"}

    def check_model(requested: str | None, capability: str, route: str) -> None:
        """404 for another model's name; 400 unless the task declares ``capability`` (a ``Task`` flag)."""
        if requested is not None and requested != name:
            raise OpenAIError(
                404,
                f"the model {requested!r} does not exist; this server serves {name!r}",
                param="model",
                code="model_not_found",
            )
        if not getattr(model.task, capability):
            what = {
                "embeds": "an embedding model (feature-extraction)",
                "chat": "a chat model (text-generation)",
                "generative": "a text-generation model",
            }[capability]
            raise OpenAIError(400, f"{route} needs {what}; this one does {model.task_name!r}", param="model")

    @app.get("/v1/models", tags=["openai"], summary="OpenAI-compatible model list (the served model)")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [card]}

    @app.get("/v1/models/{model_id:path}", tags=["openai"], summary="OpenAI-compatible model lookup")
    async def model_card(model_id: str) -> dict[str, Any]:
        if model_id != name:
            raise OpenAIError(
                404,
                f"the model {model_id!r} does not exist; this server serves {name!r}",
                param="model",
                code="model_not_found",
            )
        return card

    @app.post("/v1/embeddings", tags=["openai"], summary="OpenAI-compatible embeddings")
    async def embeddings(body: EmbeddingsRequest, request: Request) -> dict[str, Any]:
        check_model(body.model, "embeds", "/v1/embeddings")
        texts = await _embedding_texts(service, body.input)
        dims = body.dimensions
        allowed = service.settings.embedding_dimensions
        try:
            results, timings = await service.run(texts, {})
        except Exception as exc:
            raise_http(exc, inputs_field=("input",))
        vectors = [np.asarray(r.vector, dtype=np.float32) for r in results if isinstance(r, Embedding)]
        if dims is not None and dims != len(vectors[0]):
            if dims not in allowed:
                shorter = (
                    f"is declared as trained for {sorted(allowed)} only"
                    if allowed
                    else "is not declared as trained for shorter ones (ServeSettings.embedding_dimensions)"
                )
                raise OpenAIError(
                    400,
                    f"this model gives {len(vectors[0])} dimensions and {shorter}; omit 'dimensions'",
                    param="dimensions",
                )
            vectors = [_shorten(v, dims) for v in vectors]
        request.state.queue_ms, request.state.inference_ms = timings.queue_ms, timings.inference_ms
        tokens = await service.usage_tokens(texts)
        encode = _base64 if body.encoding_format == "base64" else _floats
        return {
            "object": "list",
            "model": name,
            "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @app.post(
        "/v1/chat/completions", tags=["openai"], summary="OpenAI-compatible chat completions (SSE when streaming)"
    )
    async def chat(body: ChatRequest, request: Request) -> Any:
        check_model(body.model, "chat", "/v1/chat/completions")
        _refuse_unsupported(body.unsupported_fields())
        messages = _messages(body.messages)
        base = _generation_options(service, body, body.max_completion_tokens or body.max_tokens or 64, {})

        def fail(exc: BaseException) -> NoReturn:
            _raise(exc, lambda _choice: "messages")

        async def prompt_tokens() -> int:
            # Counted after admission and inference: a refused request costs no tokenizing.
            return await service.usage_tokens([messages], keep="tail")

        choice_options = _per_choice(base, body.n)
        if body.stream:
            jobs = [StreamJob(messages, o) for o in choice_options]
            fmt = ChoiceFormat("chat.completion.chunk", "chatcmpl", _chat_chunk_choice)
            include = body.stream_options is not None and body.stream_options.include_usage
            return await stream_choices(
                service, request, jobs, fmt, include_usage=include, prompt_tokens=prompt_tokens, fail=fail
            )
        generations = await _generate(service, request, [messages], choice_options, fail)
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": g.text, "refusal": None},
                "logprobs": None,
                "finish_reason": g.finish_reason,
            }
            for i, g in enumerate(generations)
        ]
        return _completion("chatcmpl", "chat.completion", name, choices, await prompt_tokens(), generations)

    @app.post("/v1/completions", tags=["openai"], summary="OpenAI-compatible text completions (legacy; SSE)")
    async def completions(body: CompletionRequest, request: Request) -> Any:
        check_model(body.model, "generative", "/v1/completions")
        _refuse_unsupported(body.unsupported_fields())
        prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
        if not prompts:
            raise OpenAIError(400, "prompt must hold at least one string", param="prompt")
        base = _generation_options(service, body, body.max_tokens or 16, {"chat_template": False})
        n = body.n

        def fail(exc: BaseException) -> NoReturn:
            _raise(exc, lambda choice: f"prompt[{choice // n}]" if isinstance(body.prompt, list) else "prompt")

        async def prompt_tokens() -> int:
            return await service.usage_tokens(prompts, keep="tail")

        choice_options = _per_choice(base, n)
        if body.stream:
            # Choices are numbered prompt by prompt, n for each (OpenAI's order).
            jobs = [StreamJob(p, o) for p in prompts for o in choice_options]
            fmt = ChoiceFormat("text_completion", "cmpl", _text_chunk_choice)
            include = body.stream_options is not None and body.stream_options.include_usage
            return await stream_choices(
                service, request, jobs, fmt, include_usage=include, prompt_tokens=prompt_tokens, fail=fail
            )
        generations = await _generate(service, request, prompts, choice_options, fail)
        choices = [
            {"index": i, "text": g.text, "logprobs": None, "finish_reason": g.finish_reason}
            for i, g in enumerate(generations)
        ]
        return _completion("cmpl", "text_completion", name, choices, await prompt_tokens(), generations)


# ---------------------------------------------------------------------- requests
def _refuse_unsupported(fields: Sequence[str]) -> None:
    if fields:
        raise OpenAIError(
            400,
            f"aikit cannot honour {', '.join(fields)}: this server generates plain text from the model alone "
            "(no tools, structured output, log-probabilities or penalties); remove "
            + ("it" if len(fields) == 1 else "them"),
            param=fields[0],
            code="unsupported_parameter",
        )


def _messages(messages: Sequence[ChatMessage]) -> Messages:
    """OpenAI messages → aikit's ``{"role", "content"}`` dicts, refusing what a template cannot carry."""
    out: Messages = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if m.role in ("tool", "function"):
            raise OpenAIError(
                400,
                f"{where}: role {m.role!r} needs tool calling, which aikit does not do",
                param=f"{where}.role",
                code="unsupported_parameter",
            )
        for field in ("name", "tool_calls", "tool_call_id", "function_call", "audio"):
            if getattr(m, field) is not None:
                raise OpenAIError(
                    400,
                    f"{where}: {field!r} is not supported (chat templates carry role and text)",
                    param=f"{where}.{field}",
                    code="unsupported_parameter",
                )
        if m.content is None:
            raise OpenAIError(400, f"{where}: content is required", param=f"{where}.content")
        if isinstance(m.content, str):
            text = m.content
        else:
            texts = []
            for j, part in enumerate(m.content):
                if part.type != "text" or part.text is None:
                    raise OpenAIError(
                        400,
                        f"{where}.content[{j}]: content parts of type {part.type!r} are not supported; "
                        "this model reads text parts only",
                        param=f"{where}.content[{j}]",
                        code="unsupported_parameter",
                    )
                texts.append(part.text)
            text = "\n".join(texts)  # parts are paragraphs of one message (as vLLM joins them)
        # "developer" is OpenAI's newer name for the system message; chat templates know "system".
        out.append({"role": "system" if m.role == "developer" else m.role, "content": text})
    return out


def _generation_options(
    service: ModelService, body: ChatRequest | CompletionRequest, max_new_tokens: int, extra: dict[str, Any]
) -> dict[str, Any]:
    """OpenAI fields → aikit ``GenerationOptions`` keywords (greedy unless temperature > 0),
    validated now so that a bad value is a ``400`` naming it, not a failure inside a batch."""
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, **extra}
    if body.temperature:
        options.update(do_sample=True, temperature=body.temperature)
        if body.top_p is not None:
            options["top_p"] = body.top_p
    if body.seed is not None:
        options["seed"] = body.seed
    if body.stop:
        options["stop"] = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop)
    options_cls = service.model.task.options_class
    if options_cls is not None:
        try:
            options_from_kwargs(options_cls, options, what=service.model.task_name)
        except ConfigError as exc:
            raise OpenAIError(400, str(exc), param="stop" if "stop" in str(exc) else None) from exc
    return options


def _per_choice(options: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Options for each of ``n`` choices: sampled with a seed, choice ``i`` uses ``seed + i`` so
    that the choices are independent samples and each is reproducible."""
    if n == 1 or not options.get("do_sample") or "seed" not in options:
        return [options] * n
    return [{**options, "seed": (options["seed"] + i) % 2**63} for i in range(n)]


async def _generate(
    service: ModelService,
    request: Request,
    prompts: list[Any],
    choice_options: list[dict[str, Any]],
    fail: Callable[[BaseException], NoReturn],
) -> list[Generation]:
    """Every prompt under every choice's options, numbered prompt by prompt, ``n`` for each."""
    n = len(choice_options)
    limit = service.settings.request_inputs_limit
    if len(prompts) * n > limit:  # one request, however it is split into batcher submissions
        fail(RequestTooLargeError(len(prompts) * n, limit))
    same = all(o == choice_options[0] for o in choice_options)
    try:
        if same:
            runs = [await service.run([p for p in prompts for _ in range(n)], choice_options[0])]
            ordered = runs[0][0]
        else:
            runs = list(await asyncio.gather(*(service.run(prompts, o) for o in choice_options)))
            ordered = [runs[j][0][p] for p in range(len(prompts)) for j in range(n)]
    except ItemError as exc:  # number it as a choice: a prompt's first choice when runs were per choice
        fail(ItemError(exc.index if same else exc.index * n, exc.error))
    except Exception as exc:
        fail(exc)
    request.state.queue_ms = max(t.queue_ms for _, t in runs)
    request.state.inference_ms = max(t.inference_ms for _, t in runs)
    return [g for g in ordered if isinstance(g, Generation)]


def _raise(exc: BaseException, param: Callable[[int], str]) -> NoReturn:
    """A service failure as an OpenAI error; an input's fault names ``param(choice)``."""
    if isinstance(exc, ItemError) and exc.client_fault:
        raise OpenAIError(400, describe_error(exc.error), param=param(exc.index)) from exc
    raise_http(exc)


# ---------------------------------------------------------------------- answers
def _completion(
    prefix: str, obj: str, name: str, choices: list[dict[str, Any]], prompt: int, generations: Sequence[Generation]
) -> dict[str, Any]:
    completion = sum(len(g.token_ids) for g in generations)
    return {
        "id": f"{prefix}-{uuid.uuid4().hex}",
        "object": obj,
        "created": int(time.time()),
        "model": name,
        "choices": choices,
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def _chat_chunk_choice(index: int, text: str | None, finish: str | None, opening: bool) -> dict[str, Any]:
    if opening:
        return {"index": index, "delta": {"role": "assistant"}, "logprobs": None, "finish_reason": None}
    delta = {} if text is None else {"content": text}
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def _text_chunk_choice(index: int, text: str | None, finish: str | None, opening: bool) -> dict[str, Any] | None:
    if opening:
        return None  # text completions open with their first piece
    return {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}


async def _embedding_texts(service: ModelService, value: str | list[str] | list[int] | list[list[int]]) -> list[str]:
    """The texts to embed: strings as they are, token ids decoded with the model's tokenizer."""
    if isinstance(value, str):
        return [value]
    if not value:
        raise OpenAIError(400, "input must hold at least one string or token list", param="input")
    if all(isinstance(v, str) for v in value):
        return [v for v in value if isinstance(v, str)]
    if all(isinstance(v, int) for v in value):
        lists = [[v for v in value if isinstance(v, int)]]
    else:
        lists = [[t for t in v if isinstance(t, int)] for v in value if isinstance(v, list)]
    if any(not v for v in lists):
        raise OpenAIError(400, "a token list must not be empty", param="input")
    try:
        return await service.decode_tokens(lists)
    except ValueError as exc:
        raise OpenAIError(400, str(exc), param="input") from exc


def _shorten(vector: np.ndarray[Any, Any], dims: int) -> np.ndarray[Any, Any]:
    """The first ``dims`` values scaled to unit length (Matryoshka truncation, as OpenAI's
    ``text-embedding-3`` models answer ``dimensions``)."""
    head = vector[:dims]
    norm = float(np.linalg.norm(head))
    return head / norm if norm > 0 else head


def _floats(vector: np.ndarray[Any, Any]) -> list[float]:
    values: list[float] = vector.tolist()
    return values


def _base64(vector: np.ndarray[Any, Any]) -> str:
    """Little-endian float32 bytes, base64: what the ``openai`` client decodes by default."""
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
