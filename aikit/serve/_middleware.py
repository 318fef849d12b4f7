"""``ServiceMiddleware``: the pure-ASGI layer every request crosses.

In order: bearer-token auth (all routes but the public ones), the body-size limit (``413``
before the body is read when ``Content-Length`` says so, and while streaming otherwise), the
body-read deadline (``408``), timing headers on every response, and request metrics. Pure ASGI
rather than ``BaseHTTPMiddleware`` so streamed responses (server-sent events) pass through
untouched and cheaply.

Every refusal sent before the body was read (``401``, ``400``, ``413``, ``408``) carries
``Connection: close``: the server then closes the connection instead of reading, and waiting
for, the rest of a body nobody will use.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aikit.serve._metrics import ServeMetrics

__all__ = ["ServiceMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ServiceMiddleware:
    """Auth, body limit, timing headers and metrics around an ASGI app.

    Handlers put ``queue_ms`` / ``inference_ms`` in ``request.state``; they become the
    ``X-Queue-Time-Ms`` / ``X-Inference-Time-Ms`` headers (``0`` for routes that run no model) and a
    ``Server-Timing`` header, next to ``X-Total-Time-Ms``.

    ``body_timeout_s`` bounds the time from the request head to the last byte of its body, while
    the app reads it: past it the read raises ``408`` (the app answers it; the connection is then
    closed). It does not bound the response, nor a route that never reads its body (the server
    closes such a connection once the response is sent; see ``aikit.serve._protocol``).
    ``max_inputs`` is only quoted in ``413`` answers, so clients learn how to split a request.
    A request that passed the token check gets ``scope["state"]["authenticated"] = True``.
    ``error_body(path, status, message)`` builds the JSON of the refusals this layer sends itself
    (default ``{"detail": message}``, FastAPI's shape), so each route family keeps its own shape.
    ``replica``, when given, is sent as ``X-Aikit-Replica`` on every response.
    ``admission(path)`` (optional) is asked, for a request that passed the checks above, whether the
    model would refuse it now; if it returns an ``OverloadedError``, the request gets ``503`` with
    ``Retry-After`` at once, its body drained unparsed (so the connection stays usable): under
    overload most requests are refused, and refusing them before routing and validation leaves the
    CPU to the requests that are served.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        max_body_bytes: int,
        body_timeout_s: float,
        max_inputs: int,
        metrics: ServeMetrics,
        routes: frozenset[str],
        public: frozenset[str] = frozenset({"/health"}),
        error_body: Callable[[str, int, str], Any] | None = None,
        replica: str | None = None,
        admission: Callable[[str], Any] | None = None,
    ) -> None:
        self.app = app
        self._token = token.encode("utf-8") if token else None
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.max_inputs = max_inputs
        self.metrics = metrics
        self.routes = routes
        self.public = public
        self.error_body = error_body or _detail
        self._replica = [(b"x-aikit-replica", replica.encode())] if replica else []
        self._admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path: str = scope["path"]
        route = path if path in self.routes else "other"  # bounded label set: no per-URL series
        state: dict[str, Any] = scope.setdefault("state", {})
        status = [500]

        async def send_timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                total_ms = (time.perf_counter() - start) * 1000.0
                queue_ms = float(state.get("queue_ms", 0.0))
                inference_ms = float(state.get("inference_ms", 0.0))
                timing = f"queue;dur={queue_ms:.3f}, inference;dur={inference_ms:.3f}, total;dur={total_ms:.3f}"
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-queue-time-ms", f"{queue_ms:.3f}".encode()),
                    (b"x-inference-time-ms", f"{inference_ms:.3f}".encode()),
                    (b"x-total-time-ms", f"{total_ms:.3f}".encode()),
                    (b"server-timing", timing.encode()),
                    *self._replica,
                ]
                message["headers"] = headers
                self.metrics.latency.labels(route).observe(total_ms / 1000.0)
            await send(message)

        self.metrics.in_flight.inc()
        try:
            refusal = self._refuse(scope, path, state)
            overloaded = self._admission(path) if refusal is None and self._admission is not None else None
            if refusal is not None:
                code, detail, extra = refusal
                await _send_json(send_timed, code, self.error_body(path, code, detail), [*extra, _CLOSE])
            elif overloaded is not None:
                drained = await _drain(self._limited(receive, start))
                retry = str(max(1, math.ceil(overloaded.retry_after_s)))
                extra = [(b"retry-after", retry.encode())] + ([] if drained else [_CLOSE])
                await _send_json(send_timed, 503, self.error_body(path, 503, str(overloaded)), extra)
            else:
                await self.app(scope, self._limited(receive, start), send_timed)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.requests.labels(route, str(status[0])).inc()
            if status[0] >= 400:
                self.metrics.errors.labels(route, str(status[0])).inc()

    def _refuse(
        self, scope: Scope, path: str, state: dict[str, Any]
    ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        if self._token is not None:
            supplied = _header(scope, b"authorization")
            scheme, _, value = supplied.partition(b" ")
            ok = scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), self._token)
            state["authenticated"] = ok
            if not ok and path not in self.public:
                reason = "missing bearer token" if not supplied else "invalid bearer token"
                return 401, f"{reason}: send 'Authorization: Bearer <token>'", [(b"www-authenticate", b"Bearer")]
        length = _header(scope, b"content-length")
        if length:
            try:
                size = int(length)
            except ValueError:
                return 400, "invalid Content-Length header", []
            if size > self.max_body_bytes:
                return 413, f"request body of {size} bytes {self._over_limit()}", []
        return None

    def _over_limit(self) -> str:
        return (
            f"exceeds the limit of {self.max_body_bytes} bytes (max_body_bytes); "
            f"one request may also carry at most {self.max_inputs} inputs"
        )

    def _limited(self, receive: Receive, start: float) -> Receive:
        """``receive`` that raises ``413`` once a streamed (chunked) body passes the limit, and
        ``408`` when the body is not complete ``body_timeout_s`` after ``start``.

        Once the body is complete, later calls (a streaming response listening for the client's
        disconnect) wait without a deadline.
        """
        from starlette.exceptions import HTTPException

        seen = [0]
        complete = [False]
        limit = self.max_body_bytes
        deadline = start + self.body_timeout_s
        close = {"Connection": "close"}

        async def receive_limited() -> Message:
            if complete[0]:
                return await receive()
            try:
                async with asyncio.timeout_at(_loop_time(deadline)):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408, f"the request body did not arrive within {self.body_timeout_s:g} s", headers=close
                ) from None
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise HTTPException(413, f"request body {self._over_limit()}", headers=close)
                complete[0] = not message.get("more_body", False)
            return message

        return receive_limited


_CLOSE = (b"connection", b"close")


def _detail(path: str, status: int, message: str) -> dict[str, str]:
    return {"detail": message}


async def _drain(receive: Receive) -> bool:
    """Read a request's body to its end without keeping it; False when it could not be read (too
    large, too slow, client gone): the connection is then closed after the answer."""
    from starlette.exceptions import HTTPException

    try:
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return bool(message["type"] == "http.request")
    except HTTPException:
        return False


def _loop_time(perf_deadline: float) -> float:
    """A ``time.perf_counter`` deadline on the running loop's clock (``asyncio.timeout_at``)."""
    return asyncio.get_running_loop().time() + (perf_deadline - time.perf_counter())


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return b""


async def _send_json(send: Send, status: int, body: Any, extra: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
