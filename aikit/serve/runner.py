"""``serve``: run the app under uvicorn with a graceful, exit-0 shutdown on SIGTERM / SIGINT.

On the signal uvicorn stops accepting connections, lets in-flight requests finish for up to
``shutdown_deadline_s``, then runs the app's shutdown (the batcher finishes queued items).
``/ready`` answers 503 from the moment the signal arrives. uvicorn re-raises the signal after a
graceful stop; ``serve`` installs no-op handlers first so the process then exits with status 0.
"""

from __future__ import annotations

import logging
import signal
import socket
from types import FrameType
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from aikit.errors import ServingError
from aikit.serve.settings import ServeSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from aikit.model.model import Model

__all__ = ["serve", "serve_app"]
logger = logging.getLogger("aikit.serve")


def serve(model: Model, settings: ServeSettings, *, log_level: str = "info") -> None:
    """Serve ``model`` on ``settings.host:settings.port`` until SIGTERM / SIGINT (blocking)."""
    from aikit.serve._app import create_app

    serve_app(create_app(model, settings), settings, log_level=log_level)


def serve_app(app: FastAPI, settings: ServeSettings, *, log_level: str = "info") -> None:
    """Run an app made by ``create_app`` under uvicorn; returns after a graceful shutdown."""
    import uvicorn

    _check_port(settings.host, settings.port)
    service = app.state.service

    class _Server(uvicorn.Server):
        @override
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            service.mark_draining()
            super().handle_exit(sig, frame)

    from aikit.serve._protocol import uvicorn_options

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        timeout_graceful_shutdown=int(max(1, round(settings.shutdown_deadline_s))),
        # Head deadline, head size, keep-alive (short, so idle clients do not delay shutdown);
        # the body limit and body deadline are the app's own (413, 408).
        **uvicorn_options(settings),
    )
    server = _Server(config)
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise ServingError(f"the server could not start on {settings.host}:{settings.port} (see the log above)")


def _ignore(sig: int, frame: Any) -> None:
    """Swallow the signal uvicorn re-raises after its graceful shutdown (so we exit 0)."""


def _check_port(host: str, port: int) -> None:
    """Fail with a clear error before loading anything when the port is taken."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServingError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port or stop the other server"
            ) from exc
