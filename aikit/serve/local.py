"""``LocalServer``: run an app under a real uvicorn server in a background thread, on a free
loopback port. For tests, notebooks and benchmarks; production uses ``serve`` (signals, exit code).
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

from aikit.errors import ServingError
from aikit.serve.settings import ServeSettings

__all__ = ["LocalServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class LocalServer:
    """``with LocalServer(app) as server: httpx.get(server.url + "/health")``.

    Binds ``127.0.0.1`` on a free port before starting, so ``url`` is valid at once; waits
    (up to ``start_timeout`` s) until uvicorn has started. Leaving the block stops the server
    gracefully (in-flight requests finish) and joins its thread.

    An app made by ``create_app`` runs with the same connection limits as ``aikit serve``
    (request-head deadline, head size, keep-alive: ``aikit.serve._protocol.uvicorn_options``),
    taken from its settings; ``config`` keywords override them.
    """

    def __init__(self, app: Any, *, start_timeout: float = 60.0, log_level: str = "warning", **config: Any) -> None:
        import uvicorn

        service = getattr(getattr(app, "state", None), "service", None)
        settings = getattr(service, "settings", None)
        if isinstance(settings, ServeSettings):
            from aikit.serve._protocol import uvicorn_options

            config = {**uvicorn_options(settings), **config}
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, **config))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._start_timeout = start_timeout

    def __enter__(self) -> LocalServer:
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServingError(f"the local server did not start within {self._start_timeout:g} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
