"""The CUDA backend on a real NVIDIA GPU: parity with the CPU backend, generation, GPU strategies.

Run with ``pytest -m gpu tests/test_cuda_gpu.py`` on a machine with a GPU; everything here is
skipped (with the reason) elsewhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aikit_cuda import CudaBackend

import aikit
from aikit.errors import CompressionError, PerformanceWarning

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        CudaBackend.unavailable_reason() is not None, reason=f"no usable GPU: {CudaBackend.unavailable_reason()}"
    ),
]

PROMPTS = ["The capital of France is", "Write one sentence about the sea.", "List three colours:"]


def _cosines(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    from benchmarks.corpus import load_sentences

    return load_sentences(64)


@pytest.mark.parametrize("kind", ["bert-embedding", "bert-sequence-classification", "bert-token-classification"])
def test_tiny_models_match_the_cpu_backend_in_float32(kind: str, tiny_model_dir: Callable[[str], Path]) -> None:
    folder = tiny_model_dir(kind)
    task = "feature-extraction" if kind == "bert-embedding" else None
    cpu = aikit.Model.load(folder, task=task, backend="torch")
    gpu = aikit.Model.load(folder, task=task, backend="cuda", dtype="float32")
    batch = cpu.task.collate(cpu.task.preprocess(["good movie", "the cat is on the river"], max_length=None))
    for key, value in cpu.backend.forward(batch).items():
        np.testing.assert_allclose(gpu.backend.forward(batch)[key], value, atol=1e-4, rtol=1e-4)


def test_minilm_embeddings_match_the_cpu_backend(minilm: Any, minilm_path: Any, sentences: list[str]) -> None:
    reference = minilm.embed(sentences)
    fp32 = aikit.Model.load(minilm_path, task="feature-extraction", backend="cuda", dtype="float32")
    np.testing.assert_allclose(fp32.embed(sentences), reference, atol=1e-4)
    half = aikit.Model.load(minilm_path, task="feature-extraction", backend="cuda")
    assert half.describe()["dtype"] in ("bfloat16", "float16")
    assert _cosines(half.embed(sentences), reference).min() > 0.995
    compiled = aikit.Model.load(
        minilm_path, task="feature-extraction", backend="cuda", backend_options={"compile": True}
    )
    assert _cosines(compiled.embed(sentences), reference).min() > 0.995


def test_auto_picks_cuda_and_describes_the_gpu(minilm_path: Any) -> None:
    model = aikit.Model.load(minilm_path, task="feature-extraction")
    facts = model.describe()
    assert model.backend_name == "cuda" and facts["device"] == "cuda:0" and facts["gpu"]
    assert facts["attn_implementation"] == "sdpa"


# Model.to hands the same torch module to the new backend, which moves it in place: these tests load
# GPU models from the file instead, so that the session's CPU models stay on the CPU.
@pytest.mark.slow
def test_smollm2_greedy_generation_equals_cpu_in_float32(smollm2: Any, smollm2_path: Any) -> None:
    expected = [r.token_ids for r in smollm2.predict(PROMPTS, max_new_tokens=24)]
    eager = aikit.Model.load(smollm2_path, backend="cuda", dtype="float32")
    compiled = eager.to("cuda", dtype="float32", backend_options={"compile": True})  # same device and dtype
    for gpu in (eager, compiled):
        assert [r.token_ids for r in gpu.predict(PROMPTS, max_new_tokens=24, batch_size=3)] == expected
        assert [gpu.predict(p, max_new_tokens=24).token_ids for p in PROMPTS] == expected


@pytest.mark.slow
def test_smollm2_half_precision_streams_and_batches(smollm2_path: Any) -> None:
    gpu = aikit.Model.load(smollm2_path, backend="cuda")
    assert gpu.describe()["dtype"] in ("bfloat16", "float16")
    text = "".join(gpu.stream(PROMPTS[0], max_new_tokens=16))
    assert text == gpu.predict(PROMPTS[0], max_new_tokens=16).text and text.strip()
    results = gpu.predict(PROMPTS * 11, max_new_tokens=16, batch_size=32)
    assert len(results) == 33 and all(r.token_ids for r in results)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["cuda-int8-weight-only", "cuda-int4-weight-only", "cuda-fp8"])
def test_each_gpu_strategy_compresses_reports_speed_and_round_trips(
    strategy: str, minilm_path: Any, sentences: list[str], tmp_path: Path
) -> None:
    import torch
    from aikit_cuda.probe import compute_capability

    model = aikit.Model.load(minilm_path, task="feature-extraction", backend="cuda")
    if strategy == "cuda-fp8" and compute_capability(0) < (8, 9):
        with pytest.raises(CompressionError, match=r"compute capability 8\.9"):
            model.compress(strategy, calibration=sentences)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PerformanceWarning)  # a slowdown is reported, not an error, here
        small = model.compress(strategy, calibration=sentences)
    report = small.compression_report
    assert report.backend == "cuda" and report.speedup > 0 and report.throughput_after > 0
    assert report.size_after_bytes < report.size_before_bytes
    assert _cosines(small.embed(sentences), model.embed(sentences)).min() > 0.95
    small.save(tmp_path / "q")
    again = aikit.Model.load(tmp_path / "q")
    assert again.backend_name == "cuda"
    np.testing.assert_allclose(again.embed(sentences), small.embed(sentences), atol=1e-3)
    torch.cuda.empty_cache()
