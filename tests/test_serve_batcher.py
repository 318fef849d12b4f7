"""``DynamicBatcher`` on its own, driving a real tiny model's ``predict``."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

import aikit
from aikit.errors import InputError
from aikit.serve import DynamicBatcher
from aikit.serve._batcher import OverloadedError


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Any) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("bert-embedding"))


class Recorder:
    """``predict_fn`` that runs the real model and records the size of every call."""

    def __init__(self, model: aikit.Model) -> None:
        self.model = model
        self.sizes: list[int] = []

    def __call__(self, items: list[Any], options: Mapping[str, Any]) -> Sequence[Any]:
        self.sizes.append(len(items))
        result: Sequence[Any] = self.model.predict(items, **options)
        return result


def test_items_queued_together_share_one_call_and_get_their_own_results(embedder: aikit.Model) -> None:
    rec = Recorder(embedder)
    batcher = DynamicBatcher(rec, max_batch_size=4, max_wait_ms=50, max_queue=32)
    texts = ["hello", "the cat", "paris is a city", "dog", "red fish", "one two three"]
    try:
        with embedder._lock:  # the worker is held up, so all six are queued before it runs
            futures = batcher.submit(texts[:3]) + batcher.submit(texts[3:])
            time.sleep(0.1)
        outcomes = [f.result(timeout=30) for f in futures]
    finally:
        batcher.stop(timeout=30)
    assert rec.sizes == [4, 2]  # max_batch_size closes the first batch; the rest follow
    np.testing.assert_allclose(np.stack([o.result.vector for o in outcomes]), embedder.embed(texts), atol=1e-5)
    assert [o.batch_size for o in outcomes] == [4, 4, 4, 4, 2, 2]
    assert all(o.queue_s >= 0 and o.inference_s > 0 for o in outcomes)


def test_max_wait_closes_a_partial_batch(embedder: aikit.Model) -> None:
    """Once requests come together (the last batch held two), a lone item waits up to max_wait_ms
    for company, then runs alone."""
    rec = Recorder(embedder)
    batcher = DynamicBatcher(rec, max_batch_size=64, max_wait_ms=30, max_queue=8)
    try:
        for f in batcher.submit(["two", "together"]):
            f.result(timeout=30)
        t0 = time.monotonic()
        (future,) = batcher.submit(["alone"])
        outcome = future.result(timeout=30)
        waited = time.monotonic() - t0
    finally:
        batcher.stop(timeout=30)
    assert rec.sizes == [2, 1]
    assert outcome.queue_s >= 0.025  # it waited for company, about max_wait_ms
    assert waited < 10


def test_requests_coming_one_at_a_time_do_not_wait_for_company(embedder: aikit.Model) -> None:
    """While every batch holds one item, the next lone item runs at once: waiting max_wait_ms for
    company that is not coming would only add to its latency."""
    rec = Recorder(embedder)
    batcher = DynamicBatcher(rec, max_batch_size=64, max_wait_ms=500, max_queue=8)
    try:
        outcomes = [batcher.submit([text])[0].result(timeout=30) for text in ("one", "at", "a", "time")]
    finally:
        batcher.stop(timeout=30)
    assert rec.sizes == [1, 1, 1, 1]
    assert all(o.queue_s < 0.25 for o in outcomes)  # none waited the 0.5 s max_wait


def test_a_failing_item_fails_alone(embedder: aikit.Model) -> None:
    rec = Recorder(embedder)
    batcher = DynamicBatcher(rec, max_batch_size=8, max_wait_ms=50, max_queue=8)
    try:
        with embedder._lock:
            futures = batcher.submit(["good", 42, "also good"])
            time.sleep(0.1)
        with pytest.raises(InputError, match="expected a string"):
            futures[1].result(timeout=30)
        good = [futures[0].result(timeout=30), futures[2].result(timeout=30)]
    finally:
        batcher.stop(timeout=30)
    assert rec.sizes == [3, 1, 1, 1]  # the batch failed, then each item alone
    np.testing.assert_allclose(
        np.stack([o.result.vector for o in good]), embedder.embed(["good", "also good"]), atol=1e-5
    )


def test_full_queue_refuses_at_once_and_cancelled_items_free_their_place(embedder: aikit.Model) -> None:
    batcher = DynamicBatcher(Recorder(embedder), max_batch_size=1, max_wait_ms=0, max_queue=2)
    try:
        with embedder._lock:
            running = batcher.submit(["taken by the worker"])
            deadline = time.monotonic() + 10
            while batcher.depth and time.monotonic() < deadline:
                time.sleep(0.01)
            queued = batcher.submit(["a", "b"])
            t0 = time.monotonic()
            with pytest.raises(OverloadedError, match="queue is full") as info:
                batcher.submit(["c"])
            assert time.monotonic() - t0 < 0.1
            assert info.value.retry_after_s >= 1
            assert queued[0].cancel()  # a timed-out request gives its place back
            (late,) = batcher.submit(["c"])
        assert late.result(timeout=30).result.vector.shape == running[0].result(timeout=30).result.vector.shape
        assert queued[1].result(timeout=30).batch_size == 1
    finally:
        batcher.stop(timeout=30)


def test_items_with_different_options_are_not_mixed(tiny_model_dir: Any) -> None:
    model = aikit.Model.load(tiny_model_dir("llama-causal-lm"))
    rec = Recorder(model)
    batcher = DynamicBatcher(rec, max_batch_size=8, max_wait_ms=50, max_queue=8)
    try:
        with model._lock:
            short = batcher.submit(["hello", "the cat"], {"max_new_tokens": 2})
            long = batcher.submit(["hello"], {"max_new_tokens": 5})
            time.sleep(0.1)
        results = [f.result(timeout=60).result for f in short + long]
    finally:
        batcher.stop(timeout=30)
    assert sorted(rec.sizes) == [1, 2]
    assert [len(r.token_ids) <= n for r, n in zip(results, (2, 2, 5))] == [True, True, True]
    assert results[2] == model.predict("hello", max_new_tokens=5)


def test_stop_finishes_queued_items_then_refuses(embedder: aikit.Model) -> None:
    batcher = DynamicBatcher(Recorder(embedder), max_batch_size=2, max_wait_ms=1, max_queue=8)
    with embedder._lock:
        futures = batcher.submit(["a", "b", "c"])
        stopper = threading.Thread(target=batcher.stop, kwargs={"timeout": 30})
        stopper.start()
        time.sleep(0.05)
        with pytest.raises(OverloadedError, match="shutting down"):
            batcher.submit(["d"])
    stopper.join(30)
    assert all(f.result(timeout=1).result.vector.size for f in futures)


def test_admission_refuses_at_once_what_would_miss_the_deadline() -> None:
    """Items whose estimated wait exceeds the deadline get OverloadedError in milliseconds, while the
    queue still has places; once the backlog drains, new items are admitted again (recovery)."""
    release = threading.Event()

    def slow(items: list[Any], options: Mapping[str, Any]) -> Sequence[Any]:
        release.wait(5)
        time.sleep(0.1)
        return list(items)

    batcher = DynamicBatcher(slow, max_batch_size=2, max_wait_ms=1, max_queue=100, deadline_s=0.35)
    try:
        release.set()
        for word in ("warm", "up"):  # the second call sets the pace (the first pays one-time costs)
            (first,) = batcher.submit([word])
            first.result(timeout=10)
        assert batcher.estimated_wait_s(2) == pytest.approx(0.1, abs=0.05)
        release.clear()  # hold the worker so the backlog stays
        futures = batcher.submit(["a", "b"]) + batcher.submit(["c", "d"])
        time.sleep(0.05)
        t0 = time.monotonic()
        with pytest.raises(OverloadedError, match="deadline") as info:
            # c, d wait (a, b are in the model): with e..j that is 4 batches at ~0.1 s, over 0.35 s
            batcher.submit(["e", "f", "g", "h", "i", "j"])
        assert time.monotonic() - t0 < 0.05 and info.value.retry_after_s >= 1.0
        assert batcher.depth < 100  # refused by time, not by the item bound
        release.set()
        assert [f.result(timeout=10) for f in futures]
        later = batcher.submit(["k"])
        assert later[0].result(timeout=10).result == "k"
    finally:
        release.set()
        batcher.stop(timeout=10)


def test_the_wait_estimate_counts_the_batch_in_the_model_at_the_slowest_recent_pace() -> None:
    """The estimate is pessimistic on purpose: what is left of the running batch, then every batch
    ahead at the slowest of the recent full batches (an accepted request that then misses its
    deadline is worse than a refusal)."""
    gate = threading.Event()
    delays = iter([0.0, 0.05, 0.2, 0.05])  # warm-up, then one slow full batch among fast ones

    def timed(items: list[Any], options: Mapping[str, Any]) -> Sequence[Any]:
        if items == ["hold"]:
            gate.wait(10)
        else:
            time.sleep(next(delays))
        return list(items)

    batcher = DynamicBatcher(timed, max_batch_size=2, max_wait_ms=1, max_queue=100)
    try:
        assert batcher.estimated_wait_s(1) is None  # no pace yet: only the item bound applies
        for pair in (["w"], ["a", "b"], ["c", "d"], ["e", "f"]):
            for f in batcher.submit(pair):
                f.result(timeout=10)
        assert batcher.estimated_wait_s(1) == pytest.approx(0.2, abs=0.05)  # the slowest, not the mean
        (held,) = batcher.submit(["hold"])
        time.sleep(0.05)  # the worker is now inside the held call, started ~0.05 s ago
        wait = batcher.estimated_wait_s(3)  # ~0.15 s left of the running call + 2 batches of 0.2 s
        assert wait is not None and 0.45 <= wait <= 0.6
        gate.set()
        assert held.result(timeout=10).result == "hold"
    finally:
        gate.set()
        batcher.stop(timeout=10)


def test_run_exclusive_runs_on_the_worker_between_batches_and_reports_errors() -> None:
    seen: list[str] = []

    def record(items: list[Any], options: Mapping[str, Any]) -> Sequence[Any]:
        seen.append(threading.current_thread().name)
        return list(items)

    batcher = DynamicBatcher(record, max_batch_size=4, max_wait_ms=1, max_queue=8, name="the-worker")
    try:
        assert batcher.run_exclusive(lambda: threading.current_thread().name).result(timeout=10) == "the-worker"
        with pytest.raises(ZeroDivisionError):
            batcher.run_exclusive(lambda: 1 / 0).result(timeout=10)
        assert batcher.submit(["still works"])[0].result(timeout=10).result == "still works"
        assert seen == ["the-worker"]
    finally:
        batcher.stop(timeout=10)
    with pytest.raises(OverloadedError):
        batcher.run_exclusive(lambda: None)


def test_a_stall_does_not_refuse_requests_for_good() -> None:
    """A batch that stalled far past the deadline sets the pace, but an idle batcher still admits: only
    a new batch can show that the pace has recovered."""
    gate = threading.Event()

    def paced(items: list[Any], options: Mapping[str, Any]) -> Sequence[Any]:
        if items[0] == "stall":
            gate.wait(10)
        else:
            time.sleep(0.05)
        return list(items)

    batcher = DynamicBatcher(paced, max_batch_size=1, max_wait_ms=0, max_queue=10, deadline_s=0.5)
    try:
        batcher.seed_pace(0.05)  # as the server does from its warm-up measurement
        batcher.submit(["warm"])[0].result(timeout=10)  # the first call is never a pace
        (stalled,) = batcher.submit(["stall"])
        time.sleep(0.6)
        gate.set()
        stalled.result(timeout=10)
        wait = batcher.estimated_wait_s(1)
        assert wait is not None and wait > 0.5  # the stall set the pace ...
        assert batcher.submit(["after"])[0].result(timeout=10).result == "after"  # ... yet an idle batcher admits
    finally:
        gate.set()
        batcher.stop(timeout=10)
