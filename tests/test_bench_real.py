"""Benchmark and evaluate on the packaged real models (slow: they load real weights)."""

from __future__ import annotations

from typing import Any

import pytest

import aikit
from aikit.measure.eval_data import Dataset
from benchmarks.corpus import load_sentences

pytestmark = pytest.mark.slow


def test_minilm_bf16_against_fp32(minilm: aikit.Model, minilm_path: Any) -> None:
    sentences = load_sentences(16)
    bf16 = aikit.Model.load(minilm_path, task="feature-extraction", dtype="bfloat16")
    report = aikit.compare(
        [minilm, bf16], sentences, names=["fp32", "bf16"], batch_sizes=[8], repeats=1, measure_size=False
    )
    fp32_row, bf16_row = report.rows()
    assert fp32_row["quality"] == pytest.approx(1.0)
    assert 0.99 < bf16_row["quality"] < 1.0  # bf16 rounding moves embeddings a little, not a lot
    scores = bf16.evaluate(Dataset.from_lists(sentences), reference=minilm).scores["cosine_agreement"]
    assert scores["mean"] == pytest.approx(bf16_row["quality"], abs=1e-6)


def test_smollm2_streaming_latency(smollm2: aikit.Model) -> None:
    report = smollm2.benchmark(
        ["What is the capital of France?"],
        batch_sizes=[1],
        warmup=0,
        repeats=1,
        stream_runs=1,
        measure_size=False,
        max_new_tokens=4,
    )
    assert report.batches[0].tokens is not None and 0 < report.batches[0].tokens <= 4
    streaming = report.streaming
    assert streaming is not None and streaming.output_tokens > 0
    assert streaming.time_to_first_token.p50_s > 0
    if streaming.output_tokens > 1:
        assert streaming.time_per_output_token is not None and streaming.time_per_output_token.p50_s > 0
