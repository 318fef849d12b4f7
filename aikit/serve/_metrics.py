"""Prometheus metrics of one service instance (its own registry, so several apps can coexist)."""

from __future__ import annotations

__all__ = ["ServeMetrics"]

# Buckets from 1 ms to 30 s: loopback embeddings take milliseconds, generation takes seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    """Request counts, errors, latency, queue time apart from inference time, batch sizes."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "aikit_requests", "HTTP requests answered, by route and status code", ["route", "status"], registry=r
        )
        self.errors = Counter(
            "aikit_request_errors",
            "Requests answered with a 4xx/5xx status, by route and status code",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "aikit_request_latency_seconds",
            "Time from request start to response start, by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "aikit_queue_time_seconds", "Time an item waited in the batch queue", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.inference_time = Histogram(
            "aikit_inference_time_seconds", "Time of each model call (one batch)", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram("aikit_batch_size", "Items per model call", buckets=_BATCH_BUCKETS, registry=r)
        self.queue_depth = Gauge("aikit_queue_depth", "Items waiting for the model", registry=r)
        self.streams = Gauge(
            "aikit_streams_active", "Streamed generations holding a place in the queue bound", registry=r
        )
        self.in_flight = Gauge("aikit_requests_in_flight", "Requests being handled now", registry=r)
        self.ready = Gauge("aikit_ready", "1 when the model is loaded and warmed up", registry=r)

    def observe_batch(self, size: int, seconds: float) -> None:
        """Record one model call (the batcher's observer)."""
        self.batch_size.observe(size)
        self.inference_time.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
