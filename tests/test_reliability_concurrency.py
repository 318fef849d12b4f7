"""One ``Model`` shared by 8 threads gives exactly the results of sequential calls.

``Model`` serialises ``predict`` and ``stream`` per instance (``Model._lock``): tokenizers are not
re-entrant (a fast tokenizer's truncation settings are shared state; concurrent calls with
different ``max_length`` raise "Already borrowed" or tokenize with the wrong limit). The calls
below deliberately mix ``max_length`` values and batch sizes so that any interleaving shows:
with ``Model._lock`` replaced by a no-op, the 8-thread test fails on this machine.

Models use ``threads=1``: one torch thread per model is the recommended setup for thread-level
parallelism, and it keeps the test fast on an oversubscribed CI machine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit

THREADS = 8
CALLS_PER_THREAD = 24
SENTENCES = [
    "good movie",
    "the bad film in paris was slow",
    "john and mary went to london on monday",
    "the cat is happy and the dog is sad " * 6,  # long enough for every max_length to matter
]


def _job(thread: int, call: int) -> tuple[list[str], dict[str, Any]]:
    """A different, deterministic (inputs, settings) pair per thread and call."""
    k = thread * CALLS_PER_THREAD + call
    inputs = [SENTENCES[(k + i) % len(SENTENCES)] for i in range(1 + k % 3)]
    return inputs, {"max_length": (8, 16, None, 12, 24)[(thread + call) % 5], "batch_size": 1 + k % 2}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, aikit.Embedding):
        return bool(np.array_equal(a.vector, b.vector))
    return bool(a == b)


def _run_concurrently(model: aikit.Model, extra: dict[str, Any], calls: int = CALLS_PER_THREAD) -> None:
    jobs = [[_job(t, c) for c in range(calls)] for t in range(THREADS)]
    expected = [[model.predict(inputs, **settings, **extra) for inputs, settings in thread] for thread in jobs]
    start = threading.Barrier(THREADS)

    def worker(t: int) -> list[Any]:
        start.wait()  # all threads hit the model at the same moment
        return [model.predict(inputs, **settings, **extra) for inputs, settings in jobs[t]]

    with ThreadPoolExecutor(THREADS) as pool:
        got = list(pool.map(worker, range(THREADS)))
    for t in range(THREADS):
        for c in range(calls):
            assert _same(got[t][c], expected[t][c]), f"thread {t}, call {c} differs from the sequential result"


@pytest.mark.parametrize(
    ("kind", "task", "extra"),
    [
        ("bert-embedding", "feature-extraction", {}),
        ("bert-token-classification", None, {}),
        ("llama-causal-lm", None, {"max_new_tokens": 2}),
    ],
)
def test_eight_threads_match_sequential_calls(
    tiny_model_dir: Callable[[str], Path], kind: str, task: str | None, extra: dict[str, Any]
) -> None:
    model = aikit.Model.load(tiny_model_dir(kind), task=task, threads=1)
    with pytest.warns(aikit.TruncationWarning):  # the long sentence at max_length=8 (warned once per model)
        _run_concurrently(model, extra, calls=CALLS_PER_THREAD if "generation" not in model.task_name else 4)


def test_calls_are_serialised_per_model(tiny_model_dir: Callable[[str], Path]) -> None:
    """The documented rule itself: while one call runs, another thread's call on the same model waits."""
    model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"), threads=1)
    other = aikit.Model.load(tiny_model_dir("bert-sequence-classification"), threads=1)
    entered: list[threading.Event] = [threading.Event(), threading.Event()]
    release = threading.Event()
    real_forward = model.backend.forward

    def blocking_forward(arrays: Any) -> Any:
        entered[1 if entered[0].is_set() else 0].set()
        assert release.wait(30)
        return real_forward(arrays)

    setattr(model.backend, "forward", blocking_forward)  # noqa: B010 - an instance attribute shadows the method
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(model.predict, "good")
        assert entered[0].wait(30)
        second = pool.submit(model.predict, "bad")
        assert other.predict("fine").label  # a different model is not blocked
        assert not entered[1].wait(0.5), "a second call entered the model while the first was running"
        release.set()
        assert first.result(30).label and second.result(30).label
    assert entered[1].is_set()


def test_stream_holds_the_model_until_exhausted_or_closed(tiny_model_dir: Callable[[str], Path]) -> None:
    model = aikit.Model.load(tiny_model_dir("llama-causal-lm"), threads=1)
    expected = model.predict("the cat", max_new_tokens=6).text
    pieces = model.stream("the cat", max_new_tokens=6)
    first = next(pieces, "")
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(model.predict, "the dog", max_new_tokens=2)
        assert not waiting.done()
        rest = "".join(pieces)  # exhausting the stream releases the model
        assert waiting.result(30).finish_reason in ("stop", "length")
    assert first + rest == expected
