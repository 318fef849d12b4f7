"""``ServeSettings``: every knob of the model service in one validated, frozen dataclass."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from aikit.errors import ConfigError

__all__ = ["TOKEN_ENV_VAR", "ServeSettings", "read_token"]

TOKEN_ENV_VAR = "AIKIT_SERVE_TOKEN"
_MIN_TOKEN_CHARS = 16  # shorter tokens are guessable; refuse them rather than give false comfort


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    """How ``aikit serve`` runs a model.

    - ``host`` / ``port``: where to listen. The default host is loopback only; pass
      ``"0.0.0.0"`` explicitly to accept connections from other machines.
    - ``max_batch_size`` / ``max_wait_ms``: the dynamic batcher closes a batch when it holds
      ``max_batch_size`` items or when its oldest item has waited ``max_wait_ms``, whichever is first.
      ``max_batch_size=1`` turns batching off.
    - ``max_queue``: items that may wait for the model; more are refused at once with ``503``.
    - ``timeout_s``: per-request deadline (queue plus inference); past it the client gets ``504``.
      It also bounds admission: a request whose estimated wait (the batches queued ahead of it at
      the recent seconds per batch) exceeds it gets ``503`` with ``Retry-After`` at once.
    - ``max_body_bytes``: larger request bodies get ``413`` before they are read.
    - ``max_inputs``: inputs one request may carry (``/v1/predict`` ``inputs``, ``/v1/embeddings``
      ``input``); more get ``413`` naming the limit. ``None`` means ``max_queue``, and a value above
      ``max_queue`` acts as ``max_queue``: a request the queue can never hold is refused for good
      (``413``), not told to retry (``503``). See ``request_inputs_limit``.
    - ``header_timeout_s``: a connection must deliver a complete request head (request line and
      headers) within this many seconds of opening, or of the end of its previous response;
      otherwise it is closed (after a ``408`` when part of a request had arrived). Bounds clients
      that trickle headers a byte at a time, and idle connections that never send a request.
    - ``body_timeout_s``: once the head has arrived, the whole body must arrive within this many
      seconds; otherwise the request gets ``408`` and the connection is closed. Bounds clients that
      declare a body and stall or trickle it. Neither timeout bounds the response: a client that
      reads an answer slowly, or not at all, keeps its connection while the TCP connection lives
      (a streamed generation still ends, and gives back its queue place, at ``max_tokens``).
    - ``keep_alive_s``: an idle keep-alive connection is closed after this many seconds.
    - ``max_header_bytes``: how much of an unfinished request head (request line plus headers)
      the server buffers; a head not ended within it gets ``400`` and the connection is closed.
      A head that arrives whole in one read is parsed even if larger, so memory per connection is
      bounded by the larger of this and one socket read (256 KiB).
    - ``token``: when set, every route but ``/health`` needs ``Authorization: Bearer <token>``.
    - ``shutdown_deadline_s``: on SIGTERM, how long in-flight requests may take to finish.
    - ``model_name``: the name reported by ``/info`` and the OpenAI-style endpoints, which answer
      ``404`` to a request naming another model.
    - ``embedding_dimensions``: the shorter sizes the served embedding model was trained to be
      cut to (Matryoshka representation learning, e.g. ``(256, 128)``). ``/v1/embeddings`` then
      answers ``dimensions=d`` with the first ``d`` values scaled to unit length; any other size
      but the model's own is ``400``. Empty (the default): only the model's own size, since
      cutting the vector of a model not trained for it loses quality nobody measured.
    - ``warmup``: run one prediction before ``/ready`` says yes.
    - ``model_batch_size``: items per model call within one batch. A batch of up to
      ``max_batch_size`` requests is sorted by length and run in calls of this size, each padded
      only to its own longest input (on a CPU, smaller calls are often faster per item). ``None``:
      the model's own batch size (measured by ``Model.optimize`` and saved with the model, else the
      task's default), or measured at warm-up (see ``measure_batch_size``).
    - ``measure_batch_size``: at warm-up, for a text encoder or classifier whose batch size nobody
      chose (``model_batch_size`` unset, none saved by ``optimize``), time ``max_batch_size``, half
      and a quarter of it per call on real sentences and use the fastest when it beats whole
      batches by 10% (a few seconds before ``/ready``; ``/info`` shows the figures).
    - ``replica_name``: when set, every response carries ``X-Aikit-Replica: <name>``, so a client
      (or a load test) behind a router sees which replica answered. ``aikit serve --engine ray``
      sets it to Ray Serve's replica id; unset otherwise (nothing about the host is disclosed).
    - ``continuous_batching``: for text generation on a backend that can step many sequences at
      once (``Backend.step_decoder``; ONNX Runtime decoders), decode every admitted request in one
      running batch of up to ``max_batch_size`` sequences: a new request joins at the next token
      instead of waiting for the others to finish. ``max_queue`` more may wait for a place.
      Off, or on other backends: requests are decoded in whole batches (non-streamed) or one
      stream at a time.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    timeout_s: float = 30.0
    max_body_bytes: int = 1_000_000
    max_inputs: int | None = None
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    max_header_bytes: int = 16_384
    token: str | None = field(default=None, repr=False)
    shutdown_deadline_s: float = 30.0
    model_name: str = "model"
    embedding_dimensions: tuple[int, ...] = ()
    warmup: bool = True
    model_batch_size: int | None = None
    measure_batch_size: bool = True
    continuous_batching: bool = True
    replica_name: str | None = None

    def __post_init__(self) -> None:
        _positive_int("port", self.port, upper=65535, allow_zero=True)
        _positive_int("max_batch_size", self.max_batch_size)
        _positive_int("max_queue", self.max_queue)
        _positive_int("max_body_bytes", self.max_body_bytes)
        _positive_int("max_header_bytes", self.max_header_bytes)
        if self.max_inputs is not None:
            _positive_int("max_inputs", self.max_inputs)
        if self.model_batch_size is not None:
            _positive_int("model_batch_size", self.model_batch_size)
        if not isinstance(self.max_wait_ms, (int, float)) or self.max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms must be >= 0, got {self.max_wait_ms!r}")
        for name in ("timeout_s", "shutdown_deadline_s", "header_timeout_s", "body_timeout_s", "keep_alive_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{name} must be > 0 seconds, got {value!r}")
        if self.token is not None and len(self.token) < _MIN_TOKEN_CHARS:
            raise ConfigError(
                f"the bearer token must be at least {_MIN_TOKEN_CHARS} characters; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if not isinstance(self.embedding_dimensions, tuple):
            raise ConfigError(f"embedding_dimensions must be a tuple of sizes, got {self.embedding_dimensions!r}")
        for size in self.embedding_dimensions:
            _positive_int("embedding_dimensions", size)
        if not self.host:
            raise ConfigError("host must not be empty (use 127.0.0.1 for loopback only, 0.0.0.0 for every interface)")

    @property
    def batching(self) -> bool:
        """Whether requests are grouped (``max_batch_size > 1``)."""
        return self.max_batch_size > 1

    @property
    def request_inputs_limit(self) -> int:
        """Most inputs one request may carry: ``max_inputs``, never more than ``max_queue``."""
        return min(self.max_inputs or self.max_queue, self.max_queue)


def _positive_int(name: str, value: object, *, upper: int | None = None, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (upper is not None and value > upper):
        bound = f" and <= {upper}" if upper is not None else ""
        raise ConfigError(f"{name} must be an integer >= {low}{bound}, got {value!r}")


def read_token(token_file: str | os.PathLike[str] | None = None) -> str | None:
    """The bearer token from ``token_file`` (first line, stripped) or else ``$AIKIT_SERVE_TOKEN``.

    Tokens are never taken from the command line, where ``ps`` would show them to every user.
    """
    if token_file is not None:
        path = Path(token_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {str(path)!r}: {exc.strerror or exc}") from exc
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not token:
            raise ConfigError(f"the token file {str(path)!r} is empty")
        return token
    value = os.environ.get(TOKEN_ENV_VAR, "").strip()
    return value or None
