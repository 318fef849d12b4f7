"""``create_app``: the FastAPI application serving one model.

Routes: ``POST /v1/predict`` (any task), ``POST /v1/embeddings``, ``POST /v1/chat/completions``,
``POST /v1/completions``, ``GET /v1/models`` and ``GET /v1/models/{id}`` (OpenAI-compatible, with
OpenAI's error shape), ``GET /health``, ``GET /ready``, ``GET /metrics``, ``GET /info``, and the
OpenAPI schema at ``/openapi.json`` (``/docs`` renders it). Inputs are data only: no route takes a
path to load, and nothing is unpickled.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import platform
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from aikit import __version__
from aikit.contracts.options import options_from_kwargs
from aikit.errors import ConfigError
from aikit.serve._http_errors import field_error, raise_http
from aikit.serve._info import hide_paths
from aikit.serve._metrics import ServeMetrics
from aikit.serve._middleware import ServiceMiddleware
from aikit.serve._openai_errors import error_body, install_error_handlers, is_openai_path
from aikit.serve._openai_routes import add_openai_routes
from aikit.serve._schemas import ChatMessage, ImageInput, PredictRequest
from aikit.serve._service import ModelService
from aikit.serve.settings import ServeSettings

if TYPE_CHECKING:
    from aikit.model.model import Model

__all__ = ["create_app"]

ROUTES = frozenset(
    {
        "/v1/predict",
        "/v1/embeddings",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
        "/health",
        "/ready",
        "/metrics",
        "/info",
        "/openapi.json",
        "/docs",
    }
)
# Routes that run the model: refused at the door (before their body is read) under overload.
_MODEL_ROUTES = frozenset({"/v1/predict", "/v1/embeddings", "/v1/chat/completions", "/v1/completions"})
_VERSIONED = ("torch", "transformers", "onnxruntime", "fastapi", "uvicorn", "pydantic", "ray")


def create_app(model: Model, settings: ServeSettings | None = None) -> FastAPI:
    """A FastAPI app serving ``model`` with dynamic batching, limits, auth and metrics.

    The batcher starts with the app's lifespan and a warm-up prediction runs in the background;
    ``/ready`` answers 200 once it succeeded. ``app.state.service`` is the ``ModelService``.
    """
    settings = settings or ServeSettings()
    metrics = ServeMetrics()
    service = ModelService(model, settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        warm = asyncio.create_task(service.warm_up()) if settings.warmup else None
        if warm is None:
            service.ready, service.not_ready_reason = True, ""
            metrics.ready.set(1)
        try:
            yield
        finally:
            if warm is not None and not warm.done():
                warm.cancel()
            # Connections have drained by now (uvicorn waits up to the deadline); let queued work finish.
            await asyncio.to_thread(service.stop, settings.shutdown_deadline_s)

    app = FastAPI(
        title="aikit model service",
        version=__version__,
        description=f"Serves one {model.task_name!r} model ({settings.model_name}) with dynamic batching.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(
        ServiceMiddleware,
        token=settings.token,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        max_inputs=settings.request_inputs_limit,
        metrics=metrics,
        routes=ROUTES,
        error_body=_refusal_body,
        replica=settings.replica_name,
        admission=lambda path: service.admission_error() if path in _MODEL_ROUTES else None,
    )
    install_error_handlers(app)

    @app.get("/health", tags=["operations"], summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"], summary="Readiness: model loaded and warm-up prediction succeeded")
    async def ready() -> JSONResponse:
        if service.ready and not service.draining:
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False, "reason": service.not_ready_reason}, status_code=503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def prometheus_metrics() -> Response:
        if service.batcher is not None:
            metrics.queue_depth.set(service.batcher.depth)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/info", tags=["operations"], summary="The model, its backend, the settings and versions")
    async def info(request: Request) -> dict[str, Any]:
        # Local paths only for a request that presented the token (see aikit.serve._info).
        show = hide_paths if not getattr(request.state, "authenticated", False) else _as_is
        return {
            "model": settings.model_name,
            "task": model.task_name,
            "backend": model.backend_name,
            "labels": model.labels,
            "describe": show(model.describe()),
            "manifest": show(model.parts.manifest),
            "settings": {
                "max_batch_size": settings.max_batch_size,
                "max_wait_ms": settings.max_wait_ms,
                "model_batch_size": service.model_batch_size,
                "model_batch_rates": {str(k): round(v, 1) for k, v in service.batch_rates.items()},
                "continuous_batching": service.generator is not None,
                "max_queue": settings.max_queue,
                "max_inputs": settings.request_inputs_limit,
                "timeout_s": settings.timeout_s,
                "max_body_bytes": settings.max_body_bytes,
                "embedding_dimensions": list(settings.embedding_dimensions),
                "header_timeout_s": settings.header_timeout_s,
                "body_timeout_s": settings.body_timeout_s,
                "auth": settings.token is not None,
            },
            "versions": _versions(),
        }

    @app.post("/v1/predict", tags=["inference"], summary="Run the model on a list of inputs (any task)")
    async def predict(body: PredictRequest, request: Request) -> dict[str, Any]:
        items = [_to_model_input(model, item, i) for i, item in enumerate(body.inputs)]
        options = _check_options(model, body.options)
        try:
            results, timings = await service.run(items, options)
        except Exception as exc:
            raise_http(exc)
        request.state.queue_ms, request.state.inference_ms = timings.queue_ms, timings.inference_ms
        return {
            "model": settings.model_name,
            "task": model.task_name,
            "outputs": [r.to_dict() for r in results],
        }

    add_openai_routes(app, service)
    return app


def _to_model_input(model: Model, item: Any, index: int) -> Any:
    """Check one request item against the task and turn it into what ``predict`` takes."""
    loc = ("inputs", index)
    if model.task.input_kind == "image":
        if not isinstance(item, ImageInput):
            raise field_error(loc, f"this model does {model.task_name!r}: send {{'image_base64': '...'}} items")
        try:
            return base64.b64decode(item.image_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise field_error((*loc, "image_base64"), f"not valid base64: {exc}") from exc
    if isinstance(item, list):
        if not model.task.chat:
            raise field_error(
                loc, f"chat messages need a chat model (text-generation); this one does {model.task_name!r}"
            )
        return [m.model_dump() for m in item if isinstance(m, ChatMessage)]
    if isinstance(item, ImageInput):
        raise field_error(loc, f"this model does {model.task_name!r}, which takes text, not images")
    return item


def _check_options(model: Model, options: dict[str, Any]) -> dict[str, Any]:
    """Validate task options now (422 naming ``options``) rather than inside a batch."""
    if not options:
        return {}
    options_cls = model.task.options_class
    if options_cls is None:
        raise field_error(("options",), f"task {model.task_name!r} takes no options; got {', '.join(sorted(options))}")
    clean = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    try:
        options_from_kwargs(options_cls, clean, what=model.task_name)
    except ConfigError as exc:
        raise field_error(("options",), str(exc)) from exc
    return clean


def _refusal_body(path: str, status: int, message: str) -> dict[str, Any]:
    """A refusal sent by the middleware, in the shape the route's clients read."""
    return error_body(status, message) if is_openai_path(path) else {"detail": message}


def _as_is(value: Any) -> Any:
    return value


def _versions() -> dict[str, str]:
    found = {"aikit": __version__, "python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
