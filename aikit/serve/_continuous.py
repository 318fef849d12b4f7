"""``ContinuousBatcher``: many generations decoded at once, new requests joining between steps.

One worker thread owns the backend's ``StepDecoder`` (``Backend.step_decoder``). Between two
decoding steps it lets waiting sequences join (each prompt is prefilled on its own, then rides
along in every later step) and lets finished ones leave, so a request that arrives while others
are being decoded starts at the next step instead of waiting for them all to end, and the
model runs one batched step for all of them instead of one step each.

Each request still goes through the model's ``aikit_predict`` middleware: it is run as a
``Model.stream`` call with this batcher as its ``runner``, in the request's own thread, and the
innermost implementation hands the prompt (as the middleware left it) to ``run``. Tokenizer work
(the chat template, decoding pieces) happens on the worker thread, under the model's lock, so
other users of the model are never interleaved with it.
"""

from __future__ import annotations

import collections
import heapq
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aikit.serve._batcher import ADMISSION_HEADROOM, Hold, OverloadedError

if TYPE_CHECKING:
    from collections.abc import Generator

    from aikit.contracts.backend import StepDecoder
    from aikit.contracts.predict_call import PredictCall
    from aikit.contracts.results import Generation
    from aikit.contracts.task import TokenSequence
    from aikit.model.model import Model

__all__ = ["ContinuousBatcher"]
logger = logging.getLogger("aikit.serve")

# How many recent decoding steps the admission estimate looks back on (it takes the slowest).
_PACE_WINDOW = 16


@dataclass
class _Finished:
    result: Any


class _Job:
    """One request's sequence and the queue its pieces travel through to the request's thread."""

    def __init__(self, sequence: TokenSequence) -> None:
        self.sequence = sequence
        self.out: queue.SimpleQueue[str | _Finished | BaseException] = queue.SimpleQueue()
        self.cancelled = False  # set by the request's thread: leave at the next step
        self.budget = int(getattr(sequence.options, "max_new_tokens", 0) or 0)  # most tokens it may take
        self.fed = 0  # tokens decoded so far


class ContinuousBatcher:
    """Continuous (in-flight) batching of text generation over one model (a ``SequenceRunner``).

    At most ``max_active`` sequences decode together; ``hold`` admits at most ``max_active +
    max_waiting`` requests at a time (``OverloadedError`` beyond, at once). With ``deadline_s``,
    ``hold`` also refuses at once a request that would not get its first token within 80% of it: the
    estimate plays the queue forward, each waiting sequence taking the first place that frees,
    with every sequence running to its ``max_new_tokens`` at the slowest recent seconds per step
    (pessimistic on purpose, as ``DynamicBatcher``'s). Thread-safe.
    """

    def __init__(
        self,
        model: Model,
        decoder: StepDecoder,
        *,
        max_active: int,
        max_waiting: int,
        deadline_s: float | None = None,
        name: str = "aikit-decoder",
    ) -> None:
        self.model = model
        self.max_active = max_active
        self.max_places = max_active + max_waiting
        self.deadline_s = deadline_s
        self._paces: collections.deque[float] = collections.deque(maxlen=_PACE_WINDOW)
        self._decoder = decoder
        self._waiting: collections.deque[_Job] = collections.deque()
        self._active: dict[int, _Job] = {}
        self._held = 0
        self._cond = threading.Condition()
        self._stopping = False
        self.steps = 0  # decoding steps run (each advances every active sequence by one token)
        self.tokens = 0  # tokens decoded by those steps
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ admission
    @property
    def held(self) -> int:
        """Places taken with ``hold`` and not yet released (requests admitted and not finished)."""
        return self._held

    @property
    def active(self) -> int:
        """Sequences decoding now."""
        return len(self._active)

    def admission_error(self) -> OverloadedError | None:
        """The ``OverloadedError`` that ``hold`` would raise now, or None (admits nothing)."""
        try:
            self.hold().release()
        except OverloadedError as exc:
            return exc
        return None

    def hold(self) -> Hold:
        """Take one place for a request; ``OverloadedError`` at once when none is free."""
        with self._cond:
            if self._stopping:
                raise OverloadedError("the server is shutting down", retry_after_s=1.0)
            if self._held >= self.max_places:
                raise OverloadedError(
                    f"the server is busy: {len(self._active)} generations are running and {len(self._waiting)} "
                    f"waiting, of {self.max_places} places; retry later",
                    retry_after_s=1.0,
                )
            wait = self.estimated_wait_s()
            if self.deadline_s is not None and wait is not None and wait > ADMISSION_HEADROOM * self.deadline_s:
                raise OverloadedError(
                    f"the server is busy: {len(self._active)} generations are running and {len(self._waiting)} "
                    f"waiting; a new one would start in an estimated {wait:.1f} s, after its "
                    f"{self.deadline_s:g} s deadline; retry later",
                    retry_after_s=max(1.0, wait - self.deadline_s),
                )
            self._held += 1
        return Hold(self._release_hold)

    def estimated_wait_s(self) -> float | None:
        """Seconds until a request admitted now would start decoding (0 while a place is free), or
        None until a step has been timed. Every running and waiting sequence is assumed to use its
        whole ``max_new_tokens``, at the slowest of the recent steps."""
        # list() copies the worker's dict in one step (no Python code runs while it iterates).
        running = [max(0, job.budget - job.fed) for job in list(self._active.values())]
        waiting = [job.budget for job in self._waiting]
        if len(running) + len(waiting) < self.max_active:
            return 0.0
        if not self._paces:
            return None
        ends = running + [0] * (self.max_active - len(running))  # steps until each place frees
        heapq.heapify(ends)
        for budget in waiting:  # first come, first served: each takes the first place to free
            heapq.heappush(ends, heapq.heappop(ends) + budget)
        return ends[0] * max(self._paces)

    def _release_hold(self) -> None:
        with self._cond:
            self._held -= 1

    # ------------------------------------------------------------------ request side
    def stream(self, prompt: Any, **options: Any) -> Generator[str, None, Any]:
        """``model.stream(prompt, **options)`` decoded together with the other requests."""
        return self.model.stream(prompt, runner=self, **options)

    def run(self, call: PredictCall) -> Generation:
        """Decode the call's one prompt with the others; send pieces to ``call.on_text`` (from the
        caller's thread) and return the ``Generation``. ``SequenceRunner.run``."""
        assert call.on_text is not None
        task = call.model.task
        example = task.preprocess(call.inputs, max_length=call.max_length)[0]
        job = _Job(task.open_sequence(example, call.options))
        with self._cond:
            if self._stopping:
                raise OverloadedError("the server is shutting down", retry_after_s=1.0)
            self._waiting.append(job)
            self._cond.notify()
        try:
            while True:
                item = job.out.get()
                if isinstance(item, _Finished):
                    result: Generation = item.result
                    return result
                if isinstance(item, BaseException):
                    raise item
                call.on_text(item)  # raises StreamClosed once the reader has gone
        finally:
            job.cancelled = True  # no-op after a finish; otherwise the worker drops it at the next step

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new requests, finish the admitted ones, and join the worker (up to ``timeout`` s)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ worker side
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._active:
                    if self._stopping:
                        return
                    self._cond.wait()
                joining: list[_Job] = []
                while self._waiting and len(self._active) + len(joining) < self.max_active:
                    joining.append(self._waiting.popleft())
            with self.model._lock:  # the tokenizer and the runtime are the model's: one user at a time
                for job in joining:
                    self._join(job)
                if self._active:
                    self._step()

    def _join(self, job: _Job) -> None:
        if job.cancelled:
            job.out.put(_Finished(job.sequence.result()))
            return
        try:
            slot, first = self._decoder.join(job.sequence.prompt_ids(), job.sequence.options)
        except Exception as exc:  # this prompt's fault (too long, no tokens): only its request fails
            job.out.put(exc)
            return
        self._active[slot] = job
        self._deliver(slot, job, first)

    def _step(self) -> None:
        started = time.monotonic()
        try:
            tokens = self._decoder.step()
        except Exception as exc:  # the runtime failed: every sequence in the step fails with it
            logger.exception("a decoding step failed; %d generations end with it", len(self._active))
            for slot, job in list(self._active.items()):
                self._decoder.leave(slot)
                job.out.put(exc)
            self._active.clear()
            return
        self.steps += 1
        self.tokens += len(tokens)
        self._paces.append(time.monotonic() - started)
        for slot, token in tokens.items():
            self._deliver(slot, self._active[slot], token)

    def _deliver(self, slot: int, job: _Job, token: int) -> None:
        if job.cancelled:
            self._leave(slot)
            job.out.put(_Finished(job.sequence.result()))
            return
        job.fed += 1
        try:
            piece, done = job.sequence.feed(token)
        except Exception as exc:
            self._leave(slot)
            job.out.put(exc)
            return
        if piece:
            job.out.put(piece)
        if done:
            self._leave(slot)
            job.out.put(_Finished(job.sequence.result()))

    def _leave(self, slot: int) -> None:
        self._decoder.leave(slot)
        self._active.pop(slot, None)
