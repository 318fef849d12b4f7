"""OpenAI-compatible routes: ``POST /v1/embeddings`` and ``POST /v1/chat/completions``.

Both go through the same batcher as ``/v1/predict``. Streaming chat (``"stream": true``) sends
server-sent events produced by ``Model.stream`` in a worker thread; the first piece must arrive
within the request timeout (else ``504``), later pieces flow as they are decoded.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse

from .http_errors import field_error, raise_http
from .schemas import ChatRequest, EmbeddingsRequest
from .service import ModelService, RequestTimeoutError

if TYPE_CHECKING:
    from ..results import Embedding, Generation

__all__ = ["add_openai_routes"]


def add_openai_routes(app: FastAPI, service: ModelService) -> None:
    """Register the two OpenAI-style routes on ``app`` (they answer 400 for models of another task)."""
    model = service.model
    name = service.settings.model_name

    @app.post("/v1/embeddings", tags=["openai"], summary="OpenAI-compatible embeddings")
    async def embeddings(body: EmbeddingsRequest, request: Request) -> dict[str, Any]:
        if model.task_name != "feature-extraction":
            raise HTTPException(
                400, f"/v1/embeddings needs a feature-extraction model; this one does {model.task_name!r}"
            )
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        if not texts:
            raise field_error(("input",), "input must hold at least one string")
        try:
            results, timings = await service.run(texts, {})
        except Exception as exc:
            raise_http(exc, inputs_field=("input",))
        vectors: list[Embedding] = results
        if body.dimensions is not None and body.dimensions != len(vectors[0]):
            raise field_error(("dimensions",), f"this model gives {len(vectors[0])} dimensions; omit 'dimensions'")
        request.state.queue_ms, request.state.inference_ms = timings.queue_ms, timings.inference_ms
        tokens = sum(service.count_tokens(t) for t in texts)
        return {
            "object": "list",
            "model": name,
            "data": [
                {"object": "embedding", "index": i, "embedding": v.vector.tolist()} for i, v in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @app.post(
        "/v1/chat/completions", tags=["openai"], summary="OpenAI-compatible chat completions (SSE when streaming)"
    )
    async def chat(body: ChatRequest, request: Request) -> Any:
        if model.task_name != "text-generation":
            raise HTTPException(
                400, f"/v1/chat/completions needs a text-generation model; this one does {model.task_name!r}"
            )
        messages = [m.model_dump() for m in body.messages]
        options = _generation_options(body)
        prompt_tokens = service.count_tokens(messages)
        if body.stream:
            return await _stream_chat(service, request, messages, options, prompt_tokens)
        try:
            results, timings = await service.run([messages], options)
        except Exception as exc:
            raise_http(exc, inputs_field=("messages",))
        gen: Generation = results[0]
        request.state.queue_ms, request.state.inference_ms = timings.queue_ms, timings.inference_ms
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": gen.text},
                    "finish_reason": gen.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(gen.token_ids),
                "total_tokens": prompt_tokens + len(gen.token_ids),
            },
        }


def _generation_options(body: ChatRequest) -> dict[str, Any]:
    """OpenAI fields → aikit ``GenerationOptions`` keywords (greedy unless temperature > 0)."""
    options: dict[str, Any] = {"max_new_tokens": body.max_completion_tokens or body.max_tokens or 64}
    if body.temperature:
        options.update(do_sample=True, temperature=body.temperature)
        if body.top_p is not None:
            options["top_p"] = body.top_p
    if body.seed is not None:
        options["seed"] = body.seed
    if body.stop:
        options["stop"] = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop)
    return options


_END = object()


async def _stream_chat(
    service: ModelService, request: Request, messages: list[dict[str, str]], options: dict[str, Any], prompt_tokens: int
) -> StreamingResponse:
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()
    started = time.monotonic()

    def produce() -> None:
        try:
            for piece in service.model.stream(messages, **options):
                if stop.is_set():  # the client went away: stop generating
                    break
                loop.call_soon_threadsafe(pieces.put_nowait, piece)
            loop.call_soon_threadsafe(pieces.put_nowait, _END)
        except BaseException as exc:
            loop.call_soon_threadsafe(pieces.put_nowait, exc)

    threading.Thread(target=produce, name="aikit-stream", daemon=True).start()
    try:
        first = await asyncio.wait_for(pieces.get(), service.settings.timeout_s)
    except TimeoutError:
        stop.set()
        raise_http(RequestTimeoutError(f"no token within {service.settings.timeout_s:g} s"))
    if isinstance(first, BaseException):
        raise HTTPException(500, f"generation failed: {type(first).__name__}: {first}")
    request.state.queue_ms = 0.0
    request.state.inference_ms = (time.monotonic() - started) * 1000.0  # time to first piece
    chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def event(delta: dict[str, str], finish: str | None) -> bytes:
        chunk = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": service.settings.model_name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        text = ""
        item: Any = first
        try:
            yield event({"role": "assistant"}, None)
            while item is not _END:
                if isinstance(item, BaseException):
                    error = {"error": {"message": f"{type(item).__name__}: {item}", "type": "server_error"}}
                    yield f"data: {json.dumps(error)}\n\n".encode()
                    break
                text += item
                yield event({"content": item}, None)
                item = await pieces.get()
            else:
                # Model.stream yields text, not a finish reason: re-count the tokens to tell "length".
                used = service.count_tokens(text, special=False) if text else 0
                finish = "length" if used >= options["max_new_tokens"] else "stop"
                yield event({}, finish)
            yield b"data: [DONE]\n\n"
        finally:
            stop.set()

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
