"""Benchmark statistics and runs, timed with an injected clock so every figure is known exactly."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit
from aikit.measure.benchmark import benchmark
from aikit.measure.benchmark_report import LatencyStats, percentile
from aikit.testing import MockBackend, fresh_host

SENTENCES = ["the cat is happy", "a dog", "paris is a big city on a river", "hello world", "red fish blue fish"]


class StepClock:
    """A fake ``perf_counter``: call ``i`` returns the sum of the first ``i`` steps."""

    def __init__(self, steps: list[float]) -> None:
        self.now = 0.0
        self._steps: Iterator[float] = iter(steps)
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        self.now += next(self._steps, 0.0)
        return self.now


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 100])
def test_percentile_matches_numpy(q: float) -> None:
    rng = random.Random(q)
    for size in (1, 2, 7, 100):
        values = [rng.uniform(0, 5) for _ in range(size)]
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_a_fixed_list() -> None:
    timings = [0.010, 0.020, 0.030, 0.040, 0.100]
    assert percentile(timings, 50) == pytest.approx(0.030)
    assert percentile(timings, 90) == pytest.approx(0.040 + 0.6 * 0.060)  # rank 3.6
    assert percentile(timings, 99) == pytest.approx(0.040 + 0.96 * 0.060)


def test_percentile_rejects_bad_arguments() -> None:
    with pytest.raises(aikit.ConfigError, match="no values"):
        percentile([], 50)
    with pytest.raises(aikit.ConfigError, match=r"\[0, 100\]"):
        percentile([1.0], 101)


def test_latency_stats_from_known_samples() -> None:
    stats = LatencyStats.from_samples([4.0, 1.0, 3.0, 2.0])
    assert (stats.count, stats.min_s, stats.max_s, stats.mean_s) == (4, 1.0, 4.0, 2.5)
    assert stats.p50_s == pytest.approx(2.5)
    assert stats.stdev_s == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert LatencyStats.from_samples([0.5]).stdev_s == 0.0


@pytest.fixture(scope="module")
def tiny_embedder(tiny_model_dir: Callable[[str], Path]) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction")


def test_benchmark_timings_come_from_the_clock(tiny_embedder: aikit.Model) -> None:
    # One warm-up call and three timed calls per batch size; each call reads the clock twice.
    durations = {1: [0.1, 0.3, 0.2], 2: [0.4, 0.4, 1.0]}
    steps: list[float] = []
    for size in (1, 2):
        steps += [0.0, 9.9]  # warm-up: not timed, must not count
        for d in durations[size]:
            steps += [0.0, d]
    clock = StepClock(steps)
    report = benchmark(
        tiny_embedder, SENTENCES, batch_sizes=[1, 2], warmup=1, repeats=3, timer=clock, measure_size=False
    )
    assert clock.calls == 2 * 4 * 2  # warm-up calls read the clock too; their 9.9 s must be discarded
    one, two = report.batches
    assert one.latency.p50_s == pytest.approx(0.2) and one.latency.max_s == pytest.approx(0.3)
    assert two.latency.p50_s == pytest.approx(0.4) and two.latency.p90_s == pytest.approx(0.4 + 0.8 * 0.6)
    assert one.items == 3 and two.items == 6
    assert one.items_per_s == pytest.approx(3 / 0.6) and two.items_per_s == pytest.approx(6 / 1.8)
    # Tokens are the inputs' real token counts (with [CLS]/[SEP]), over consecutive slices of the inputs.
    tokenizer = tiny_embedder.parts.tokenizer
    counts = [len(tokenizer(s)["input_ids"]) for s in SENTENCES]
    assert one.tokens == sum(counts[1:4])  # the warm-up used input 0
    assert two.tokens == sum(counts[(i % 5)] for i in range(6, 12))
    assert one.tokens_per_s == pytest.approx(one.tokens / 0.6)


def test_benchmark_records_model_machine_memory_and_size(tiny_embedder: aikit.Model) -> None:
    report = tiny_embedder.benchmark(SENTENCES, batch_sizes=[2], repeats=2)
    assert report.task == "feature-extraction" and report.model["backend"] == "torch"
    assert report.model["threads"] >= 1 and report.model["device"] == "cpu"
    assert report.machine["cores"] >= 1 and report.versions["torch"]
    assert report.peak_rss_bytes is not None and report.rss_before_bytes is not None
    assert report.peak_rss_bytes >= report.rss_before_bytes > 10_000_000
    weights = sum(p.numel() * 4 for p in tiny_embedder.backend.torch_module().parameters())
    assert report.size_method == "saved artifact"
    assert report.model_size_bytes is not None and weights < report.model_size_bytes < weights + 1_000_000
    assert not report.interrupted


def test_ctrl_c_returns_the_runs_measured_so_far(tiny_embedder: aikit.Model) -> None:
    calls = 0

    def clock() -> float:
        nonlocal calls
        calls += 1
        if calls == 9:  # batch size 1 done (3 runs = 6 reads); one run of batch size 2, then Ctrl-C
            raise KeyboardInterrupt
        return float(calls)

    report = benchmark(tiny_embedder, SENTENCES, batch_sizes=[1, 2, 4], warmup=0, repeats=3, timer=clock)
    assert report.interrupted
    assert [b.batch_size for b in report.batches] == [1, 2]
    assert report.batches[0].latency.count == 3 and report.batches[1].latency.count == 1
    assert report.model_size_bytes is None  # no slow extra work after Ctrl-C
    assert "interrupted" in report.render()


def test_report_formats(tiny_embedder: aikit.Model, tmp_path: Path) -> None:
    report = benchmark(tiny_embedder, SENTENCES, batch_sizes=[1, 2], repeats=2, measure_size=False)
    data = json.loads(report.to_json())
    assert [b["batch_size"] for b in data["batches"]] == [1, 2]
    assert data["batches"][0]["latency"]["p99_s"] > 0 and data["machine"]["cores"] >= 1
    text = report.render()
    for header in ("batch", "p50 ms", "p90 ms", "p99 ms", "items/s", "tokens/s", "peak RSS", "machine"):
        assert header in text
    png = report.plot(tmp_path / "bench.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = report.plot(tmp_path / "bench.svg")
    assert b"<svg" in svg.read_bytes()[:500]
    with pytest.raises(aikit.ConfigError, match=r"\.png"):
        report.plot(tmp_path / "bench.gif")


def test_bad_settings_are_named(tiny_embedder: aikit.Model) -> None:
    with pytest.raises(aikit.ConfigError, match="batch_sizes"):
        benchmark(tiny_embedder, SENTENCES, batch_sizes=[0])
    with pytest.raises(aikit.ConfigError, match="repeats"):
        benchmark(tiny_embedder, SENTENCES, repeats=0)
    with pytest.raises(aikit.InputError, match="at least one input"):
        benchmark(tiny_embedder, [])


class _MockPlugin:
    @aikit.hookimpl
    def aikit_register_backends(self, register: Callable[[Any], None]) -> None:
        register(MockBackend)


def test_generation_streaming_time_to_first_token(tiny_model_dir: Callable[[str], Path]) -> None:
    # The mock backend emits a known token sequence, so the clock alone sets every figure:
    # each streamed prompt reads the clock at start, first piece and end, one second apart.
    with fresh_host(_MockPlugin()):
        model = aikit.Model.load(tiny_model_dir("llama-causal-lm"), backend="mock")
        clock = StepClock([1.0] * 1000)
        report = benchmark(
            model,
            ["hello world", "the red fish"],
            batch_sizes=[2],
            warmup=0,
            repeats=1,
            stream_runs=2,
            timer=clock,
            measure_size=False,
            max_new_tokens=3,
            chat_template=False,
        )
    assert report.batches[0].tokens == 6  # two prompts x three generated tokens
    streaming = report.streaming
    assert streaming is not None and streaming.output_tokens == 6
    assert streaming.time_to_first_token.p50_s == pytest.approx(1.0)
    assert streaming.time_per_output_token is not None
    assert streaming.time_per_output_token.p50_s == pytest.approx(1.0 / 2)  # 1 s for the 2 tokens after the first
    assert "time to first token" in report.render()
