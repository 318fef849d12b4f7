"""The HTTP/1.1 connection limits uvicorn lacks: a request-head deadline, and no reading on after an early answer.

uvicorn arms no timer while a request head is being received: its keep-alive timer starts only
after a response and is cancelled by any byte, so a client that opens a connection and sends a
header a byte at a time (slowloris) holds it forever. ``deadline_protocol`` makes an h11
protocol class that closes such connections. h11 rather than httptools because h11 also bounds
the size of a request head (``h11_max_incomplete_event_size``); httptools has no such bound.

What each bound covers (``uvicorn_options`` applies them all from ``ServeSettings``):

- ``header_timeout_s`` (here): from the connection's opening, or from the end of its previous
  response, to the complete request head. Past it the connection is closed, after a ``408`` if
  part of a request had arrived (an idle connection is closed silently, as at keep-alive expiry).
- ``max_header_bytes`` (h11's ``max_incomplete_event_size``): bytes buffered of an unfinished
  request head; past it ``400`` and a close. A head that arrives whole in one read is parsed
  even if larger: the bound is on memory held per connection, not on header size as such.
- ``keep_alive_s`` (uvicorn's ``timeout_keep_alive``): idle time between requests.
- ``body_timeout_s`` (``ServiceMiddleware``): the body's arrival while the app reads it (``408``).
- Here too: when a response is complete but the client is still sending the request's body
  (a route answered without reading it), the connection is closed rather than kept open for
  a body nobody reads, so trickling a body to a route that ignores it holds nothing.

Nothing here bounds how slowly a client reads a response.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import h11
from typing_extensions import override
from uvicorn.protocols.http.h11_impl import H11Protocol

from aikit.serve.settings import ServeSettings

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

__all__ = ["DeadlineH11Protocol", "deadline_protocol", "uvicorn_options"]

_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 40\r\nconnection: close\r\n\r\nthe request head did not arrive in time\n"
)


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a request-head deadline of ``header_timeout_s`` seconds."""

    header_timeout_s: float = 10.0

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(config, server_state, app_state, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_started = False  # whether a byte of the awaited request head has arrived

    @override
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    @override
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._head_started = self._head_started or bool(data)
        else:  # the head is complete (the request now sends its body, or is done)
            self._cancel_head_timer()

    @override
    def on_response_complete(self) -> None:
        # Read before uvicorn moves on: it may parse a pipelined next request in the call.
        body_unread = self.conn.their_state is h11.SEND_BODY
        super().on_response_complete()
        if self.transport.is_closing():
            self._cancel_head_timer()
        elif body_unread:
            # Answered before the body was read: the rest of it is of no use to anyone.
            self._cancel_head_timer()
            self.transport.close()
        elif self.conn.their_state is h11.IDLE:
            self._arm_head_timer()

    @override
    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_started = False
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._head_started:
            # Written directly: h11 cannot send a response before it has parsed a request.
            self.transport.write(_TIMEOUT_408)
        self.transport.close()


def deadline_protocol(header_timeout_s: float) -> type[DeadlineH11Protocol]:
    """A ``DeadlineH11Protocol`` subclass with this deadline (uvicorn instantiates the class itself)."""

    class Protocol(DeadlineH11Protocol):
        pass

    Protocol.header_timeout_s = header_timeout_s
    Protocol.__name__ = Protocol.__qualname__ = "AikitH11Protocol"
    return Protocol


def uvicorn_options(settings: ServeSettings) -> dict[str, Any]:
    """The ``uvicorn.Config`` keywords that apply ``settings``' connection limits."""
    return {
        "http": deadline_protocol(settings.header_timeout_s),
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_s,
        "server_header": False,
    }
