"""OpenAI-compatible routes: ``POST /v1/embeddings`` and ``POST /v1/chat/completions``.

Both go through the same batcher as ``/v1/predict``. Streaming chat (``"stream": true``) sends
server-sent events produced by ``Model.stream`` in a worker thread; the first piece must arrive
within the request timeout (else ``504``), later pieces flow as they are decoded. Each stream
takes one place in the batcher's bound (``max_queue``) before its thread starts and gives it
back when that thread ends (finished, failed, or stopped because the client went away), so a
flood of streams gets ``503`` with ``Retry-After`` like any other overload, and the number of
generating threads never exceeds ``max_queue``. Usage counts run in worker threads on text cut to
what the model can read (``ModelService.usage_tokens``).
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
from starlette.types import Receive, Scope, Send

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
        tokens = await service.usage_tokens(texts)
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
        if body.stream:
            return await _stream_chat(service, request, messages, options)
        try:
            results, timings = await service.run([messages], options)
        except Exception as exc:
            raise_http(exc, inputs_field=("messages",))
        gen: Generation = results[0]
        # Counted after admission and inference: a refused request costs no tokenizing.
        prompt_tokens = await service.usage_tokens([messages], keep="tail")
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


class _StreamResponse(StreamingResponse):
    """Sets ``stop`` however the response ends, even before its body iterator was first entered.

    Starlette closes a started iterator on disconnect, but a client that vanishes before the
    first chunk is sent leaves it unstarted, and its ``finally`` would never run.
    """

    def __init__(self, content: AsyncIterator[bytes], *, stop: threading.Event) -> None:
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self._stop = stop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._stop.set()


async def _stream_chat(
    service: ModelService, request: Request, messages: list[dict[str, str]], options: dict[str, Any]
) -> StreamingResponse:
    try:
        hold = service.hold_stream()  # before any thread exists: overload is refused at once
    except Exception as exc:
        raise_http(exc, inputs_field=("messages",))
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()
    started = time.monotonic()

    def put(value: Any) -> None:
        try:
            loop.call_soon_threadsafe(pieces.put_nowait, value)
        except RuntimeError:  # the loop has closed (server gone): nobody is listening
            stop.set()

    def produce() -> None:
        try:
            for piece in service.model.stream(messages, **options):
                if stop.is_set():  # the client went away or the deadline passed: stop generating
                    break
                put(piece)
            put(_END)
        except BaseException as exc:
            put(exc)
        finally:
            service.release_stream(hold)

    try:
        threading.Thread(target=produce, name="aikit-stream", daemon=True).start()
    except BaseException:
        service.release_stream(hold)  # no thread: give the place back at once
        raise
    try:
        first = await asyncio.wait_for(pieces.get(), service.settings.timeout_s)
    except TimeoutError:
        stop.set()
        raise_http(RequestTimeoutError(f"no token within {service.settings.timeout_s:g} s"))
    except BaseException:
        stop.set()  # cancelled (client gone, server stopping): the thread must not run on for nobody
        raise
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
            used = await service.usage_tokens([text], special=False) if text else 0
            finish = "length" if used >= options["max_new_tokens"] else "stop"
            yield event({}, finish)
        yield b"data: [DONE]\n\n"

    return _StreamResponse(events(), stop=stop)
