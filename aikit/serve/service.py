"""``ModelService``: one model behind a ``DynamicBatcher``, with readiness and error mapping.

The HTTP layer (``app.py``, ``openai_routes.py``) only validates and formats; everything that
touches the model goes through here, so the embedded server and a Ray Serve replica behave alike.
"""

from __future__ import annotations

import asyncio
import copy
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import AikitError, ConfigError, InputError
from .batcher import BatchOutcome, DynamicBatcher
from .metrics import ServeMetrics
from .settings import ServeSettings

if TYPE_CHECKING:
    from ..model import Model

__all__ = ["ItemError", "ModelService", "RequestTimeoutError", "Timings"]
logger = logging.getLogger("aikit.serve")


class RequestTimeoutError(Exception):
    """The request passed its deadline (HTTP 504)."""


class ItemError(Exception):
    """Item ``index`` of a request failed; ``error`` is why (InputError/ConfigError → 422, else 500)."""

    def __init__(self, index: int, error: BaseException) -> None:
        self.index = index
        self.error = error
        super().__init__(f"input {index}: {error}")

    @property
    def client_fault(self) -> bool:
        return isinstance(self.error, (InputError, ConfigError))


@dataclass(frozen=True, slots=True)
class Timings:
    """Worst item's queue and inference milliseconds, and the largest batch it rode in."""

    queue_ms: float
    inference_ms: float
    batch_size: int

    @staticmethod
    def of(outcomes: Sequence[BatchOutcome]) -> Timings:
        return Timings(
            queue_ms=max(o.queue_s for o in outcomes) * 1000.0,
            inference_ms=max(o.inference_s for o in outcomes) * 1000.0,
            batch_size=max(o.batch_size for o in outcomes),
        )


class ModelService:
    """Owns the model, its batcher and metrics; ``start`` / ``stop`` bracket the app's life."""

    def __init__(self, model: Model, settings: ServeSettings, metrics: ServeMetrics | None = None) -> None:
        self.model = model
        self.settings = settings
        self.metrics = metrics or ServeMetrics()
        self.batcher: DynamicBatcher | None = None
        self.ready = False
        self.not_ready_reason = "starting: warm-up has not run yet"
        self.draining = False
        # A private tokenizer copy for usage counts: HF fast tokenizers are not safe to call from
        # the event loop while the model worker thread uses the original.
        tok = model.parts.tokenizer
        self.count_tokenizer: Any = copy.deepcopy(tok) if tok is not None else None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        s = self.settings
        self.batcher = DynamicBatcher(
            self._predict,
            max_batch_size=s.max_batch_size,
            max_wait_ms=s.max_wait_ms,
            max_queue=s.max_queue,
            observe_batch=self.metrics.observe_batch,
        )

    def stop(self, timeout: float | None = None) -> None:
        self.ready = False
        self.metrics.ready.set(0)
        if self.batcher is not None:
            self.batcher.stop(timeout)

    def mark_draining(self) -> None:
        """Called on SIGTERM: ``/ready`` answers 503 so load balancers stop sending work."""
        self.draining = True
        self.not_ready_reason = "shutting down"
        self.metrics.ready.set(0)

    def _predict(self, items: list[Any], options: Mapping[str, Any]) -> Sequence[Any]:
        result: Sequence[Any] = self.model.predict(items, batch_size=len(items), progress=False, **options)
        return result

    async def warm_up(self) -> None:
        """Run one prediction through the batcher; ``/ready`` turns true only if it succeeds."""
        item, options = warmup_input(self.model)
        try:
            await self.run([item], options, timeout_s=max(self.settings.timeout_s, 600.0))
        except Exception as exc:
            cause = exc.error if isinstance(exc, ItemError) else exc
            self.not_ready_reason = f"warm-up prediction failed: {type(cause).__name__}: {cause}"
            logger.error("%s", self.not_ready_reason)
            return
        if not self.draining:
            self.ready = True
            self.not_ready_reason = ""
            self.metrics.ready.set(1)

    # ------------------------------------------------------------------ requests
    async def run(
        self, items: Sequence[Any], options: Mapping[str, Any], *, timeout_s: float | None = None
    ) -> tuple[list[Any], Timings]:
        """Results for ``items`` (one each, in order) and their timings.

        Raises ``OverloadedError`` (queue full, 503), ``RequestTimeoutError`` (504) or ``ItemError``.
        """
        assert self.batcher is not None, "ModelService.start() was not called"
        futures = self.batcher.submit(items, options)
        self.metrics.queue_depth.set(self.batcher.depth)
        waiting = [asyncio.wrap_future(f) for f in futures]
        try:
            settled = await asyncio.wait_for(
                asyncio.gather(*waiting, return_exceptions=True), timeout_s or self.settings.timeout_s
            )
        except TimeoutError:
            for f in futures:
                f.cancel()  # an item still queued never reaches the model
            raise RequestTimeoutError(
                f"the request did not finish within {timeout_s or self.settings.timeout_s:g} s"
            ) from None
        finally:
            self.metrics.queue_depth.set(self.batcher.depth)
        outcomes: list[BatchOutcome] = []
        for index, value in enumerate(settled):
            if isinstance(value, BaseException):
                raise ItemError(index, value)
            outcomes.append(value)
        for o in outcomes:
            self.metrics.queue_time.observe(o.queue_s)
        return [o.result for o in outcomes], Timings.of(outcomes)

    def count_tokens(self, text: str | list[dict[str, str]], *, special: bool = True) -> int:
        """Tokens in ``text`` (or in a chat rendered with the template); 0 without a tokenizer.

        ``special=False`` leaves out the special tokens (to count generated text).
        """
        tok = self.count_tokenizer
        if tok is None:
            return 0
        if isinstance(text, list):
            if getattr(tok, "chat_template", None):
                ids = tok.apply_chat_template(text, add_generation_prompt=True, tokenize=True)
                return len(ids["input_ids"] if isinstance(ids, Mapping) else ids)
            text = "\n".join(m["content"] for m in text)
        return len(tok(text, add_special_tokens=special)["input_ids"])


def warmup_input(model: Model) -> tuple[Any, dict[str, Any]]:
    """A small, valid input for ``model``'s task (and options that keep it short)."""
    if model.task.input_kind == "image":
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), (127, 127, 127)).save(buffer, format="PNG")
        return buffer.getvalue(), {}
    if model.task.generative:
        return "Hello", {"max_new_tokens": 1}
    return "warm-up", {}


def describe_error(error: BaseException) -> str:
    """One line for a client: aikit errors as they are, others with their type name."""
    if isinstance(error, AikitError):
        return str(error)
    return f"{type(error).__name__}: {error}"
