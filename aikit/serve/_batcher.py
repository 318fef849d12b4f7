"""``DynamicBatcher``: group concurrent requests into one ``predict`` call, answer each alone.

One worker thread owns the model. Requests put items on a bounded queue and get a
``concurrent.futures.Future`` per item. The worker closes a batch when it holds
``max_batch_size`` items that share the same task options, or when the oldest waiting item has
waited ``max_wait_ms``, whichever comes first; but while requests come one at a time (the last
batch held one item and one item is waiting), it closes the batch at once: waiting for company
that is not coming only adds ``max_wait_ms`` to every request (measured: one closed-loop client
got 71 answers/s with the wait, 115 without). If a whole batch fails, every item is run again on
its own, so a bad item fails only its own request.

Work that runs outside the worker (a streamed generation in its own thread) takes a place in
the same bound with ``hold``, so one limit, ``max_queue``, covers everything admitted and not
yet finished that is not in a batch.

Admission is also bounded in time: with ``deadline_s``, items whose estimated wait (what is left
of the batch in the model, the batches ahead of them and their own, each at the slowest of the
recent full batches) exceeds 80% of the deadline are refused at once, since they would only time out
after holding a place. Refusing at admission is what keeps the 503 fast and the accepted
requests' latency bounded under overload. The estimate is deliberately pessimistic (the slowest
recent batch, not the average): under overload an accepted request that then misses its
deadline (504) costs the client more than a refusal it can retry elsewhere.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from aikit.errors import ServingError

__all__ = ["BatchOutcome", "DynamicBatcher", "Hold", "OverloadedError", "RequestTooLargeError"]
logger = logging.getLogger("aikit.serve")

# How many recent model calls the admission estimate looks back on (it takes the slowest).
_PACE_WINDOW = 8
# Admit only when the estimated wait fits this share of the deadline: the rest covers what the
# estimate cannot see (the event loop answering, a batch slower than any recent one). At 4x
# overload with the whole deadline admitted, 13 of 927 accepted requests still missed it.
ADMISSION_HEADROOM = 0.8

PredictFn = Callable[[list[Any], Mapping[str, Any]], Sequence[Any]]
BatchObserver = Callable[[int, float], None]


class OverloadedError(ServingError):
    """The queue is full (or the batcher is stopping): the caller should retry later (HTTP 503)."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class RequestTooLargeError(ServingError):
    """A request carries more items than ``limit``: it can never be admitted (HTTP 413, not 503)."""

    def __init__(self, count: int, limit: int) -> None:
        self.count = count
        self.limit = limit
        super().__init__(f"the request carries {count} inputs; one request may carry at most {limit}")


class Hold:
    """One place in the batcher's bound, taken by work that runs outside its worker.

    ``release`` gives the place back; it is idempotent and thread-safe, so the thread that did
    the work and the code that gave up on it may both call it.
    """

    def __init__(self, give_back: Callable[[], None]) -> None:
        self._give_back: Callable[[], None] | None = give_back

    def release(self) -> None:
        give_back, self._give_back = self._give_back, None  # one assignment: a second caller sees None
        if give_back is not None:
            give_back()

    @property
    def released(self) -> bool:
        return self._give_back is None


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """One item's result with its timings: seconds queued, seconds in the model, batch size."""

    result: Any
    queue_s: float
    inference_s: float
    batch_size: int


@dataclass(slots=True)
class _Pending:
    item: Any
    options: Mapping[str, Any]
    key: Hashable
    future: Future[BatchOutcome]
    enqueued: float


def options_key(options: Mapping[str, Any]) -> Hashable:
    """A hashable key: only items with equal options can share one ``predict`` call."""
    return json.dumps(options, sort_keys=True, default=str) if options else ""


class DynamicBatcher:
    """Bounded-queue dynamic batcher in front of a thread-unsafe ``predict_fn``.

    ``predict_fn(items, options)`` must return one result per item, in order. ``observe_batch``
    (optional) is told the size and seconds of every model call. Thread-safe; ``submit`` never blocks.
    """

    def __init__(
        self,
        predict_fn: PredictFn,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        observe_batch: BatchObserver | None = None,
        name: str = "aikit-batcher",
        deadline_s: float | None = None,
    ) -> None:
        self._predict = predict_fn
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._observe = observe_batch
        self._queue: collections.deque[_Pending] = collections.deque()
        self._held = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._last_batch_s = 0.05  # seeds Retry-After until a real batch has been timed
        self.deadline_s = deadline_s
        # Seconds of the recent model calls that set the pace (see ``_note``); empty until two ran.
        self._paces: collections.deque[float] = collections.deque(maxlen=_PACE_WINDOW)
        self._calls = 0
        self._busy_since: float | None = None  # when the batch now in the model started
        self._last_size = 0  # items in the last model call (1: requests are coming one at a time)
        self._exclusive: collections.deque[tuple[Callable[[], Any], Future[Any]]] = collections.deque()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ producer side
    @property
    def depth(self) -> int:
        """Items waiting (not yet handed to the model)."""
        return len(self._queue)

    @property
    def busy(self) -> bool:
        """Whether a batch is in the model now (taken from the queue and not yet answered)."""
        return self._busy_since is not None

    @property
    def held(self) -> int:
        """Places taken with ``hold`` and not yet released."""
        return self._held

    def submit(self, items: Sequence[Any], options: Mapping[str, Any] | None = None) -> list[Future[BatchOutcome]]:
        """Queue ``items`` (all or none) and return one future per item.

        Raises ``RequestTooLargeError`` when ``items`` alone exceed ``max_queue`` (it could never
        fit), and ``OverloadedError`` at once when the queue cannot take them all now; never waits
        for room. Cancel a future to drop its item if it has not reached the model yet.
        """
        if len(items) > self.max_queue:
            raise RequestTooLargeError(len(items), self.max_queue)
        opts = dict(options or {})
        key = options_key(opts)
        now = time.monotonic()
        with self._cond:
            self._admit(len(items))
            futures: list[Future[BatchOutcome]] = []
            for item in items:
                fut: Future[BatchOutcome] = Future()
                self._queue.append(_Pending(item, opts, key, fut, now))
                futures.append(fut)
            self._cond.notify()
        return futures

    def hold(self) -> Hold:
        """Take one place for work done outside the worker (a streamed generation).

        The place counts against ``max_queue`` like a waiting item until ``Hold.release``. Raises
        ``OverloadedError`` at once when no place is free (or the batcher is stopping).
        """
        with self._cond:
            self._admit(1)
            self._held += 1
        return Hold(self._release_hold)

    def _release_hold(self) -> None:
        with self._cond:
            self._held -= 1

    def seed_pace(self, seconds: float) -> None:
        """Record ``seconds`` per full batch as measured outside the worker's own calls (at warm-up),
        so time-based admission holds from the first request, not from the second batch on."""
        with self._cond:
            self._paces.append(seconds)

    def admission_error(self, count: int = 1) -> OverloadedError | None:
        """The ``OverloadedError`` that ``submit`` of ``count`` items would raise now, or None.

        Admits nothing: the server asks before it reads a request's body, to refuse at the door."""
        with self._cond:
            try:
                self._admit(count)
            except OverloadedError as exc:
                return exc
        return None

    def _admit(self, count: int) -> None:
        """Raise ``OverloadedError`` unless ``count`` more places are free (caller holds the lock)."""
        if self._stopping:
            raise OverloadedError("the server is shutting down", retry_after_s=1.0)
        if len(self._queue) + self._held + count > self.max_queue:
            # Timed-out requests leave cancelled items behind: they must not hold places.
            self._queue = collections.deque(p for p in self._queue if not p.future.cancelled())
        if len(self._queue) + self._held + count > self.max_queue:
            raise OverloadedError(
                f"the queue is full ({len(self._queue)} items waiting and {self._held} streams running, "
                f"of {self.max_queue} places); retry later",
                retry_after_s=self.retry_after_s(),
            )
        wait = self.estimated_wait_s(count)
        if self.deadline_s is not None and wait is not None and wait > ADMISSION_HEADROOM * self.deadline_s:
            # Timed-out requests leave cancelled items behind: they hold no work.
            self._queue = collections.deque(p for p in self._queue if not p.future.cancelled())
            wait = self.estimated_wait_s(count)
            # With nothing queued and the model idle, nothing stands ahead: admit whatever the recent
            # pace says, or one slow batch (a stall) would refuse every request after it for good,
            # since only a new batch can show that the pace has recovered.
            idle = not self._queue and self._busy_since is None
            if not idle and wait is not None and wait > ADMISSION_HEADROOM * self.deadline_s:
                raise OverloadedError(
                    f"the server is overloaded: {len(self._queue)} items are waiting, an estimated {wait:.1f} s "
                    f"of work ahead of this request, more than its {self.deadline_s:g} s deadline allows; "
                    "retry later",
                    retry_after_s=self.retry_after_s(),
                )

    def estimated_wait_s(self, count: int) -> float | None:
        """Seconds until ``count`` new items would be answered: the rest of the batch in the model,
        the batches ahead of them and their own, at the slowest recent pace (streams running outside
        the worker are not counted). None until two batches have been timed (the first one's time
        is not a pace)."""
        if not self._paces:
            return None
        pace = max(self._paces)
        batches = -(-(len(self._queue) + count) // self.max_batch_size)  # ceiling division
        busy_since = self._busy_since
        in_model = 0.0 if busy_since is None else max(0.0, pace - (time.monotonic() - busy_since))
        return in_model + batches * pace

    def retry_after_s(self) -> float:
        """A hint for clients: about how long until the current queue has drained (>= 1 s)."""
        batches = max(1, len(self._queue) // self.max_batch_size)
        return max(1.0, batches * self._last_batch_s)

    def run_exclusive(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn()`` on the worker thread between batches (the model is then used by nothing else),
        ahead of queued items; the future holds its result or exception. For work that needs the
        model alone, such as measuring it at warm-up."""
        fut: Future[Any] = Future()
        with self._cond:
            if self._stopping:
                raise OverloadedError("the server is shutting down", retry_after_s=1.0)
            self._exclusive.append((fn, fut))
            self._cond.notify()
        return fut

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new items, finish the queued ones, and join the worker (up to ``timeout`` s)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ worker side
    def _run(self) -> None:
        while True:
            self._run_exclusive()
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._execute(batch)

    def _run_exclusive(self) -> None:
        while self._exclusive:
            fn, fut = self._exclusive.popleft()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def _next_batch(self) -> list[_Pending] | None:
        with self._cond:
            while not self._queue:
                if self._exclusive:
                    return []  # back to _run, which runs it first
                if self._stopping:
                    return None
                self._cond.wait()
            head = self._queue[0]
            if self._last_size <= 1 and self._count_like(head.key) == 1:
                return self._take(head.key)  # one at a time: no company is coming, do not wait for it
            deadline = head.enqueued + self.max_wait_s
            while self._count_like(head.key) < self.max_batch_size and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._take(head.key)

    def _count_like(self, key: Hashable) -> int:
        n = 0
        for p in self._queue:
            if p.key == key:
                n += 1
                if n >= self.max_batch_size:
                    break
        return n

    def _take(self, key: Hashable) -> list[_Pending]:
        """Remove up to ``max_batch_size`` live items with ``key``; drop cancelled ones on the way."""
        taken: list[_Pending] = []
        kept: collections.deque[_Pending] = collections.deque()
        while self._queue:
            p = self._queue.popleft()
            if p.future.cancelled():
                continue
            if p.key == key and len(taken) < self.max_batch_size:
                # A future cancelled between the check above and here returns False: skip it.
                if p.future.set_running_or_notify_cancel():
                    taken.append(p)
            else:
                kept.append(p)
        self._queue = kept
        return taken

    def _execute(self, batch: list[_Pending]) -> None:
        start = time.monotonic()
        self._busy_since = start
        try:
            self._execute_batch(batch, start)
        finally:
            self._busy_since = None

    def _execute_batch(self, batch: list[_Pending], start: float) -> None:
        try:
            results = self._predict([p.item for p in batch], batch[0].options)
            if len(results) != len(batch):
                raise ServingError(f"predict returned {len(results)} results for {len(batch)} items")
        except BaseException as exc:
            self._note(len(batch), time.monotonic() - start)
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            # Find the culprit(s): each item alone, so one bad item fails only its own request.
            logger.info("a batch of %d failed (%s); retrying its items one by one", len(batch), exc)
            for p in batch:
                self._execute_alone(p, start)
            return
        elapsed = time.monotonic() - start
        self._note(len(batch), elapsed)
        for p, result in zip(batch, results, strict=True):
            p.future.set_result(BatchOutcome(result, start - p.enqueued, elapsed, len(batch)))

    def _execute_alone(self, p: _Pending, batch_start: float) -> None:
        t0 = time.monotonic()
        try:
            (result,) = self._predict([p.item], p.options)
        except BaseException as exc:
            p.future.set_exception(exc)
        else:
            p.future.set_result(BatchOutcome(result, batch_start - p.enqueued, time.monotonic() - batch_start, 1))
        finally:
            self._note(1, time.monotonic() - t0)

    def _note(self, size: int, seconds: float) -> None:
        self._last_batch_s = seconds
        self._last_size = size
        # The first call pays one-time costs (lazy initialisation, allocator warm-up): not a pace.
        # Full-size batches set the pace the estimate assumes; a lone item is cheaper than a full
        # batch, so a smaller one counts only when it was slower than every pace on record.
        self._calls += 1
        if self._calls > 1 and (size >= self.max_batch_size or not self._paces or seconds > max(self._paces)):
            self._paces.append(seconds)
        if self._observe is not None:
            try:
                self._observe(size, seconds)
            except Exception:  # metrics must never take the model worker down
                logger.exception("batch observer failed")
