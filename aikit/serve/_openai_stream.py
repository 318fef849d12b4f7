"""Server-sent events for the streamed OpenAI routes: one generating thread per choice.

``stream_choices`` takes one place in the batcher's bound (``max_queue``) per choice before any
thread starts (``503`` with ``Retry-After`` when there is none, and the places already taken are
given back) and each thread gives its place back when it ends: finished, failed, or stopped
because the client went away or the deadline passed. So the number of generating threads never
exceeds ``max_queue``. Each thread runs ``Model.stream``, which goes through the
``aikit_predict`` middleware like every other model call. The first piece of any choice must
arrive within the request timeout (else ``504``); an error before it is answered with its own
status (``400`` for a bad input), an error after it ends the stream with an error event.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send
from typing_extensions import override

from aikit.contracts.results import Generation
from aikit.serve._batcher import Hold
from aikit.serve._openai_errors import error_body
from aikit.serve._service import ItemError, ModelService, RequestTimeoutError, describe_error

__all__ = ["ChoiceFormat", "StreamJob", "stream_choices"]


@dataclass(frozen=True, slots=True)
class StreamJob:
    """One choice to generate: the prompt (text or messages) and its ``Model.stream`` options."""

    prompt: Any
    options: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChoiceFormat:
    """How a route spells its chunks: ``object`` and id prefix, and one choice's JSON.

    ``choice(index, text, finish_reason, first)``: ``text`` is None for the opening and closing
    chunks of a choice, ``first`` is true for the opening one (chat sends the role there).
    """

    object: str
    id_prefix: str
    choice: Callable[[int, str | None, str | None, bool], dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class _Done:
    generation: Generation


async def stream_choices(
    service: ModelService,
    request: Request,
    jobs: Sequence[StreamJob],
    fmt: ChoiceFormat,
    *,
    include_usage: bool,
    prompt_tokens: Callable[[], Awaitable[int]],
    fail: Callable[[BaseException], NoReturn],
) -> StreamingResponse:
    """A ``text/event-stream`` response generating ``jobs`` (choice ``i`` is ``jobs[i]``).

    Ends with ``data: [DONE]``; with ``include_usage`` the chunk before it has no choices and
    the usage (``prompt_tokens()`` is awaited only then, so a refused request costs no counting).
    ``fail(exc)`` raises the HTTP error for a service failure before the first piece: overload,
    or ``ItemError(choice, error)`` when a choice failed.
    """
    holds: list[Hold] = []
    try:
        for _ in jobs:
            holds.append(service.hold_stream())  # before any thread exists: overload is refused at once
    except Exception as exc:
        for hold in holds:
            service.release_stream(hold)
        fail(exc)
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    stop = threading.Event()
    started = time.monotonic()

    def put(value: tuple[int, Any]) -> None:
        try:
            loop.call_soon_threadsafe(pieces.put_nowait, value)
        except RuntimeError:  # the loop has closed (server gone): nobody is listening
            stop.set()

    def produce(index: int, job: StreamJob, hold: Hold) -> None:
        try:
            stream = service.stream(job.prompt, job.options)
            try:
                while not stop.is_set():  # the client went away or the deadline passed: stop generating
                    try:
                        piece = next(stream)
                    except StopIteration as finished:
                        put((index, _Done(finished.value)))
                        break
                    put((index, piece))
            finally:
                stream.close()  # returns once the generating thread has ended
        except BaseException as exc:
            put((index, exc))
        finally:
            service.release_stream(hold)

    unstarted = list(holds)
    try:
        for index, (job, hold) in enumerate(zip(jobs, holds, strict=True)):
            threading.Thread(target=produce, args=(index, job, hold), name="aikit-stream", daemon=True).start()
            unstarted.remove(hold)
    except BaseException:
        stop.set()
        for hold in unstarted:
            service.release_stream(hold)  # no thread: give the place back at once
        raise
    try:
        first = await asyncio.wait_for(pieces.get(), service.settings.timeout_s)
    except TimeoutError:
        stop.set()
        fail(RequestTimeoutError(f"no token within {service.settings.timeout_s:g} s"))
    except BaseException:
        stop.set()  # cancelled (client gone, server stopping): the threads must not run on for nobody
        raise
    if isinstance(first[1], BaseException):
        stop.set()
        fail(ItemError(first[0], first[1]))
    request.state.queue_ms = 0.0
    request.state.inference_ms = (time.monotonic() - started) * 1000.0  # time to first piece
    chunk_id = f"{fmt.id_prefix}-{uuid.uuid4().hex}"
    created = int(time.time())

    def event(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": chunk_id,
            "object": fmt.object,
            "created": created,
            "model": service.settings.model_name,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return f"data: {json.dumps(chunk)}\n\n".encode()

    def one(index: int, text: str | None, finish: str | None, opening: bool = False) -> bytes | None:
        choice = fmt.choice(index, text, finish, opening)
        return None if choice is None else event([choice])

    async def events() -> AsyncIterator[bytes]:
        results: dict[int, Generation] = {}
        for index in range(len(jobs)):
            opening = one(index, None, None, opening=True)
            if opening is not None:
                yield opening
        index, item = first
        while True:
            if isinstance(item, BaseException):
                stop.set()
                yield f"data: {json.dumps(error_body(500, describe_error(item)))}\n\n".encode()
                break
            if isinstance(item, _Done):
                results[index] = item.generation
                yield one(index, None, item.generation.finish_reason) or b""
                if len(results) == len(jobs):
                    if include_usage:
                        prompt = await prompt_tokens()
                        completion = sum(len(g.token_ids) for g in results.values())
                        usage = {
                            "prompt_tokens": prompt,
                            "completion_tokens": completion,
                            "total_tokens": prompt + completion,
                        }
                        yield event([], usage)
                    break
            else:
                yield one(index, item, None) or b""
            index, item = await pieces.get()
        yield b"data: [DONE]\n\n"

    return _StreamResponse(events(), stop=stop)


class _StreamResponse(StreamingResponse):
    """Sets ``stop`` however the response ends, even before its body iterator was first entered.

    Starlette closes a started iterator on disconnect, but a client that vanishes before the
    first chunk is sent leaves it unstarted, and its ``finally`` would never run.
    """

    def __init__(self, content: AsyncIterator[bytes], *, stop: threading.Event) -> None:
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self._stop = stop

    @override
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._stop.set()
