"""``ModelService``: one model behind a ``DynamicBatcher``, with readiness and error mapping.

The HTTP layer (``app.py``, ``openai_routes.py``) only validates and formats; everything that
touches the model goes through here, so the embedded server and a Ray Serve replica behave alike.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import io
import logging
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from aikit.contracts.task import CHARS_PER_TOKEN_BOUND
from aikit.errors import AikitError, ConfigError, InputError
from aikit.serve._batcher import BatchOutcome, DynamicBatcher, Hold, OverloadedError, RequestTooLargeError
from aikit.serve._continuous import ContinuousBatcher
from aikit.serve._metrics import ServeMetrics
from aikit.serve.settings import ServeSettings

if TYPE_CHECKING:
    from aikit.model.model import Model

__all__ = ["ItemError", "ModelService", "RequestTimeoutError", "Timings"]
logger = logging.getLogger("aikit.serve")

_UNBOUNDED_LIMIT = 1_000_000
# Smaller calls per batch are used only when measured at least this much faster than whole batches.
_SMALLER_CALLS_GAIN = 1.1  # transformers' model_max_length for "no limit" is a huge int


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
        # Text generation decoded continuously (when the backend can); None: whole batches.
        self.generator: ContinuousBatcher | None = None
        self._generation_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.ready = False
        self.not_ready_reason = "starting: warm-up has not run yet"
        self.draining = False
        # A private tokenizer copy for usage counts: HF fast tokenizers are not safe to call from
        # the event loop while the model worker thread uses the original.
        tok = model.parts.tokenizer
        self.count_tokenizer: Any = copy.deepcopy(tok) if tok is not None else None
        # Counts run in worker threads; one Rust tokenizer must not be entered by two at once.
        self._count_lock = threading.Lock()
        self.token_limit = _token_limit(tok, model.parts.config)
        # Items per model call inside one batch (``predict`` sorts a batch by length and runs it in
        # calls of this size). None: the model's own batch size. ``warm_up`` may measure it.
        self.model_batch_size: int | None = settings.model_batch_size
        self.batch_rates: dict[int, float] = {}  # items/s per size, when measured at warm-up

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        s = self.settings
        self.batcher = DynamicBatcher(
            self._predict,
            max_batch_size=s.max_batch_size,
            max_wait_ms=s.max_wait_ms,
            max_queue=s.max_queue,
            observe_batch=self.metrics.observe_batch,
            deadline_s=s.timeout_s,
        )
        decoder = self.model.backend.step_decoder() if s.continuous_batching and self.model.task.generative else None
        if decoder is not None:
            self.generator = ContinuousBatcher(
                self.model, decoder, max_active=s.max_batch_size, max_waiting=s.max_queue, deadline_s=s.timeout_s
            )
            # One thread per request admitted (each runs the model's middleware chain, then waits
            # for its pieces); the pool never holds more than the generator admits.
            self._generation_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.generator.max_places, thread_name_prefix="aikit-generation"
            )

    def stop(self, timeout: float | None = None) -> None:
        self.ready = False
        self.metrics.ready.set(0)
        if self.batcher is not None:
            self.batcher.stop(timeout)
        if self.generator is not None:
            self.generator.stop(timeout)
        if self._generation_pool is not None:
            self._generation_pool.shutdown(wait=False, cancel_futures=True)

    def mark_draining(self) -> None:
        """Called on SIGTERM: ``/ready`` answers 503 so load balancers stop sending work."""
        self.draining = True
        self.not_ready_reason = "shutting down"
        self.metrics.ready.set(0)

    def _predict(self, items: list[Any], options: Mapping[str, Any]) -> Sequence[Any]:
        result: Sequence[Any] = self.model.predict(
            items, batch_size=self.model_batch_size or len(items), progress=False, **options
        )
        return result

    async def warm_up(self) -> None:
        """Run one prediction through the batcher; ``/ready`` turns true only if it succeeds."""
        item, options = warmup_input(self.model)
        try:
            await self.run([item], options, timeout_s=max(self.settings.timeout_s, 600.0))
            if self._should_measure():
                assert self.batcher is not None
                await asyncio.wrap_future(self.batcher.run_exclusive(self._measure_batch_size))
        except Exception as exc:
            cause = exc.error if isinstance(exc, ItemError) else exc
            self.not_ready_reason = f"warm-up prediction failed: {type(cause).__name__}: {cause}"
            logger.error("%s", self.not_ready_reason)
            return
        if not self.draining:
            self.ready = True
            self.not_ready_reason = ""
            self.metrics.ready.set(1)

    def _should_measure(self) -> bool:
        """Measure the per-call size only for text encoders/classifiers served with batching, whose
        size nobody chose: not set in the settings, not measured by ``optimize`` (saved with the model)."""
        task = self.model.task
        return (
            self.settings.measure_batch_size
            and self.settings.batching
            and self.model_batch_size is None
            and "batch_size" not in self.model.parts.task_state
            and task.input_kind == "text"
            and not task.generative
        )

    def _measure_batch_size(self) -> None:
        """Time the model at ``max_batch_size``, half and a quarter of it per call on real sentences
        (Python's own docs) and keep the fastest, if it beats whole batches by ``_SMALLER_CALLS_GAIN``
        (a smaller call that is only as fast is noise, and costs more calls). Runs on the batcher's
        worker, between batches."""
        from aikit.measure.batch_size import candidate_sizes, fastest_batch_size
        from aikit.sample_text import load_sentences

        largest = self.settings.max_batch_size
        measured = fastest_batch_size(self.model, load_sentences(2 * largest), candidate_sizes(largest), rounds=3)
        if measured is None:
            return
        best, self.batch_rates = measured
        if self.batch_rates[best] >= _SMALLER_CALLS_GAIN * self.batch_rates[largest]:
            self.model_batch_size = best
        if self.batcher is not None:  # admission by time holds from the first request on
            self.batcher.seed_pace(largest / self.batch_rates[self.model_batch_size or largest])
        logger.info(
            "items per model call: %s (measured at warm-up: %s)",
            self.model_batch_size or largest,
            ", ".join(f"{bs}: {rate:.0f}/s" for bs, rate in sorted(self.batch_rates.items())),
        )

    # ------------------------------------------------------------------ requests
    async def run(
        self, items: Sequence[Any], options: Mapping[str, Any], *, timeout_s: float | None = None
    ) -> tuple[list[Any], Timings]:
        """Results for ``items`` (one each, in order) and their timings.

        Raises ``RequestTooLargeError`` (more than ``settings.request_inputs_limit`` items, 413),
        ``OverloadedError`` (queue full, 503), ``RequestTimeoutError`` (504) or ``ItemError``.
        """
        assert self.batcher is not None, "ModelService.start() was not called"
        limit = self.settings.request_inputs_limit
        if len(items) > limit:
            raise RequestTooLargeError(len(items), limit)
        if self.generator is not None:
            return await self._generate(items, options, timeout_s or self.settings.timeout_s)
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

    async def _generate(
        self, items: Sequence[Any], options: Mapping[str, Any], timeout_s: float
    ) -> tuple[list[Any], Timings]:
        """``run`` for text generation decoded continuously: each item joins the running decode."""
        assert self.generator is not None and self._generation_pool is not None
        holds: list[Hold] = []
        try:
            for _ in items:
                holds.append(self.hold_stream())  # all or none, before any work starts
        except Exception:
            for hold in holds:
                self.release_stream(hold)
            raise
        stop = threading.Event()
        started = time.monotonic()
        futures = [
            self._generation_pool.submit(self._generate_one, item, options, hold, stop)
            for item, hold in zip(items, holds, strict=True)
        ]
        try:
            settled = await asyncio.wait_for(
                asyncio.gather(*(asyncio.wrap_future(f) for f in futures), return_exceptions=True), timeout_s
            )
        except TimeoutError:
            stop.set()  # every generation of this request leaves the decode at its next token
            raise RequestTimeoutError(f"the request did not finish within {timeout_s:g} s") from None
        except BaseException:
            stop.set()
            raise
        for index, value in enumerate(settled):
            if isinstance(value, BaseException):
                raise ItemError(index, value)
        elapsed = time.monotonic() - started
        return list(settled), Timings(queue_ms=0.0, inference_ms=elapsed * 1000.0, batch_size=len(items))

    def _generate_one(self, item: Any, options: Mapping[str, Any], hold: Hold, stop: threading.Event) -> Any:
        try:
            stream = self.stream(item, options)
            try:
                while not stop.is_set():
                    try:
                        next(stream)
                    except StopIteration as finished:
                        return finished.value
                raise RequestTimeoutError("the request passed its deadline")
            finally:
                stream.close()
        finally:
            self.release_stream(hold)

    def stream(self, prompt: Any, options: Mapping[str, Any]) -> Generator[str, None, Any]:
        """``model.stream(prompt, **options)``, decoded together with other requests when the
        service batches generation continuously."""
        if self.generator is not None:
            return self.generator.stream(prompt, **options)
        return self.model.stream(prompt, **options)

    def admission_error(self) -> OverloadedError | None:
        """Whether a one-input request would be refused now (``OverloadedError``) or not (None): the
        continuous batcher decides for a model that has one, else the batcher. Admits nothing."""
        if self.generator is not None:
            return self.generator.admission_error()
        return None if self.batcher is None else self.batcher.admission_error(1)

    def hold_stream(self) -> Hold:
        """A place in the admission bound for one generation (``OverloadedError`` if none).

        The caller releases it when the generating thread ends, however it ends.
        """
        assert self.batcher is not None, "ModelService.start() was not called"
        owner: DynamicBatcher | ContinuousBatcher = self.generator or self.batcher
        hold = owner.hold()
        self.metrics.streams.set(owner.held)
        return hold

    def release_stream(self, hold: Hold) -> None:
        """Give back a place taken by ``hold_stream`` (idempotent, any thread)."""
        hold.release()
        owner = self.generator or self.batcher
        if owner is not None:
            self.metrics.streams.set(owner.held)

    def count_tokens(
        self, text: str | list[dict[str, str]], *, special: bool = True, keep: Literal["head", "tail"] = "head"
    ) -> int:
        """Tokens of ``text`` (or of a chat rendered with its template) the model can read; 0 without a tokenizer.

        Text is cut to ``CHARS_PER_TOKEN_BOUND`` characters per token of the model's limit first, from
        the end the model keeps (``keep="tail"`` for prompts, whose last tokens are kept; a chat
        keeps its last messages, up to that many characters in all and at most as many messages
        as the limit has tokens), and the count is capped at the limit: time is bounded by the
        model's context, not by the input.
        ``special=False`` leaves out the special tokens (to count generated text). Blocking (it
        tokenizes): call ``usage_tokens`` from the event loop.
        """
        tok = self.count_tokenizer
        if tok is None:
            return 0
        limit = self.token_limit
        if limit is not None:
            bound = limit * CHARS_PER_TOKEN_BOUND
            text = _last_messages(text, bound, limit) if isinstance(text, list) else _cut(text, bound, keep)
        with self._count_lock:
            if isinstance(text, list):
                if getattr(tok, "chat_template", None):
                    ids = tok.apply_chat_template(text, add_generation_prompt=True, tokenize=True)
                    count = len(ids["input_ids"] if isinstance(ids, Mapping) else ids)
                    return count if limit is None else min(count, limit)
                text = "\n".join(m["content"] for m in text)
            count = len(tok(text, add_special_tokens=special)["input_ids"])
        return count if limit is None else min(count, limit)

    def _decode(self, token_lists: Sequence[Sequence[int]]) -> list[str]:
        tok = self.count_tokenizer
        if tok is None:
            raise ValueError("this model has no tokenizer, so it cannot take token ids; send text")
        size = len(tok)
        for i, ids in enumerate(token_lists):
            bad = next((t for t in ids if not 0 <= t < size), None)
            if bad is not None:
                raise ValueError(
                    f"token list {i} holds {bad}, not an id of this model's tokenizer (0 to {size - 1}); "
                    "token ids must come from the served model's own tokenizer"
                )
        with self._count_lock:
            return [str(tok.decode(list(ids), skip_special_tokens=True)) for ids in token_lists]

    async def decode_tokens(self, token_lists: Sequence[Sequence[int]]) -> list[str]:
        """The texts that ``token_lists`` (ids of this model's tokenizer) stand for, decoded in a
        worker thread without special tokens (the task adds its own when it encodes them again).

        Raises ``ValueError`` for an id outside the vocabulary or a model without a tokenizer.
        """
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self._decode, token_lists)

    async def usage_tokens(
        self,
        texts: Sequence[str | list[dict[str, str]]],
        *,
        special: bool = True,
        keep: Literal["head", "tail"] = "head",
    ) -> int:
        """The sum of ``count_tokens`` over ``texts``, counted in a worker thread.

        Off the event loop so that no request, however large, delays others (``/health``
        included) while it is counted.
        """
        from starlette.concurrency import run_in_threadpool

        def count_all() -> int:
            return sum(self.count_tokens(t, special=special, keep=keep) for t in texts)

        return await run_in_threadpool(count_all)


def _cut(text: str, bound: int, keep: Literal["head", "tail"]) -> str:
    if len(text) <= bound:
        return text
    return text[:bound] if keep == "head" else text[-bound:]


def _last_messages(messages: list[dict[str, str]], bound: int, limit: int) -> list[dict[str, str]]:
    """The last messages holding at most ``bound`` characters of content (the first kept one cut),
    and at most ``limit`` of them: each adds template tokens, so more could not fit the context."""
    kept: list[dict[str, str]] = []
    room = bound
    for message in reversed(messages):
        if room <= 0 or len(kept) >= limit:
            break
        content = message["content"][-room:]
        kept.append({**message, "content": content})
        room -= len(content)
    return kept[::-1]


def _token_limit(tokenizer: Any, config: Any) -> int | None:
    """The model's token limit: the tokenizer's maximum, else the config's positions, else None."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < _UNBOUNDED_LIMIT:
        return limit
    positions = getattr(config, "max_position_embeddings", None)
    return positions if isinstance(positions, int) and positions > 0 else None


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
