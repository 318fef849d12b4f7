"""``aikit serve --engine ray``: the same FastAPI app as a Ray Serve deployment.

Each replica loads the model once and builds the app with ``create_app``, so every replica
has its own dynamic batcher, limits, auth and metrics (per-replica batching). Ray Serve adds
replicas, routing between them, ``max_ongoing_requests`` per replica and ``max_queued_requests``
in front of them (beyond it Ray answers 503), and a graceful per-replica shutdown deadline.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, replace
from typing import Any

from aikit.errors import MissingDependencyError, ServingError
from aikit.serve.settings import ServeSettings

__all__ = ["RayServeOptions", "build_app", "run_ray_serve", "start_ray_serve"]
logger = logging.getLogger("aikit.serve")
APP_NAME = "aikit"


@dataclass(frozen=True, kw_only=True)
class RayServeOptions:
    """Ray-specific knobs: replicas, CPUs per replica, Ray Serve's own request limits.

    ``max_ongoing_requests`` defaults to the batcher's queue plus one batch (the replica's own
    backpressure answers beyond that); ``max_queued_requests`` to ``settings.max_queue``.
    """

    replicas: int = 1
    cpus_per_replica: float = 1.0
    max_ongoing_requests: int | None = None
    max_queued_requests: int | None = None


class AikitReplica:
    """One Ray Serve replica: loads the model; ``__serve_build_asgi_app__`` gives the app."""

    def __init__(self, source: str, settings: ServeSettings, task: str | None, backend: str, threads: int) -> None:
        from aikit.model.model import Model

        self.settings = replace(settings, replica_name=settings.replica_name or _replica_id())
        self.model = Model.load(source, task=task, backend=backend, threads=threads)

    def __serve_build_asgi_app__(self) -> Any:
        from aikit.serve._app import create_app

        return create_app(self.model, self.settings)


def _replica_id() -> str | None:
    """Ray Serve's id of the replica running this code (``X-Aikit-Replica``), None outside one."""
    _, serve = _ray()
    try:
        context = serve.get_replica_context()
    except Exception:  # not inside a replica (Ray raises its own error type for that)
        return None
    replica = getattr(context, "replica_id", None)
    unique = getattr(replica, "unique_id", None)
    return str(unique or replica) if replica is not None else None


def _ray() -> tuple[Any, Any]:
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise MissingDependencyError(
            "ray", feature="aikit serve --engine ray", install="pip install 'aikit[ray]'"
        ) from exc
    return ray, serve


def build_app(
    source: str, settings: ServeSettings, options: RayServeOptions, *, task: str | None = None, backend: str = "auto"
) -> Any:
    """The bound Ray Serve application (``serve.run`` it)."""
    _, serve = _ray()
    deployment = serve.deployment(
        serve.ingress()(AikitReplica),
        name="AikitModel",
        num_replicas=options.replicas,
        max_ongoing_requests=options.max_ongoing_requests or settings.max_queue + settings.max_batch_size,
        max_queued_requests=options.max_queued_requests or settings.max_queue,
        graceful_shutdown_timeout_s=settings.shutdown_deadline_s,
        ray_actor_options={"num_cpus": options.cpus_per_replica},
    )
    threads = max(1, int(options.cpus_per_replica))
    # The replica binds nothing itself: the Ray Serve proxy owns host and port.
    return deployment.bind(str(source), replace(settings, host="127.0.0.1", port=0), task, backend, threads)


def start_ray_serve(
    source: str,
    settings: ServeSettings,
    options: RayServeOptions,
    *,
    task: str | None = None,
    backend: str = "auto",
    address: str | None = None,
) -> Any:
    """Start (or join) Ray, start Serve's HTTP proxy on ``settings.host:port`` and deploy the model.

    Returns the deployment handle once every replica is up. ``serve.shutdown()`` undoes it.
    """
    ray, serve = _ray()
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    app = build_app(source, settings, options, task=task, backend=backend)
    return serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)


def run_ray_serve(
    source: str,
    settings: ServeSettings,
    *,
    replicas: int = 1,
    task: str | None = None,
    backend: str = "auto",
    address: str | None = None,
) -> None:
    """Blocking ``aikit serve --engine ray``: deploy, then wait for SIGTERM / SIGINT and shut down."""
    if replicas < 1:
        raise ServingError(f"--replicas must be >= 1, got {replicas}")
    ray, serve = _ray()
    start_ray_serve(source, settings, RayServeOptions(replicas=replicas), task=task, backend=backend, address=address)
    logger.warning("Ray Serve is serving %s on http://%s:%d", source, settings.host, settings.port)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        serve.shutdown()  # replicas drain in-flight requests up to graceful_shutdown_timeout_s
        ray.shutdown()
