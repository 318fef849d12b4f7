"""Model as a service: ``aikit serve`` (FastAPI + uvicorn) and scale-out on Ray.

- ``create_app(model, settings)``: the FastAPI app (dynamic batching, limits, auth, metrics).
- ``serve(model, settings)``: run it under uvicorn with a graceful SIGTERM shutdown.
- ``ServeSettings``: every knob, validated. ``DynamicBatcher``: the batcher on its own.
  ``ContinuousBatcher``: continuous (in-flight) batching of text generation.
- ``aikit.serve.ray_serve`` / ``aikit.serve.ray_batch``: Ray Serve deployment and Ray Data batch
  inference (need ``pip install 'aikit[ray]'``). ``aikit.serve.batch_job``: in-process batch job.

Needs ``pip install 'aikit[serve]'`` (fastapi, uvicorn, prometheus-client).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aikit.serve.settings import TOKEN_ENV_VAR, ServeSettings, read_token

if TYPE_CHECKING:
    from aikit.serve._app import create_app
    from aikit.serve._batcher import DynamicBatcher, OverloadedError
    from aikit.serve._continuous import ContinuousBatcher
    from aikit.serve.runner import serve

__all__ = [
    "TOKEN_ENV_VAR",
    "ContinuousBatcher",
    "DynamicBatcher",
    "OverloadedError",
    "ServeSettings",
    "create_app",
    "read_token",
    "serve",
]

_LAZY = {
    "create_app": "._app",
    "ContinuousBatcher": "._continuous",
    "DynamicBatcher": "._batcher",
    "OverloadedError": "._batcher",
    "serve": ".runner",
}


def __getattr__(name: str) -> Any:
    # fastapi / uvicorn are an optional extra: import them only when used, with a clear message.
    if name in _LAZY:
        import importlib

        from aikit.errors import MissingDependencyError

        try:
            module = importlib.import_module(_LAZY[name], __name__)
        except ModuleNotFoundError as exc:
            raise MissingDependencyError(
                exc.name or "fastapi", feature="aikit.serve", install="pip install 'aikit[serve]'"
            ) from exc
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
