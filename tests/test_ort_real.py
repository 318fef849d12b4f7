"""The onnxruntime backend on the packaged real models (slow: MiniLM export, SmolLM2 genai build)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow

PROMPT = "Explain in a few sentences why the sky is blue."


@contextmanager
def private_cache(path: Path) -> Iterator[None]:
    """Exports go to a temporary cache (set only around the export: the GGUF loader shares the variable)."""
    before = os.environ.get("AIKIT_CACHE_DIR")
    os.environ["AIKIT_CACHE_DIR"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("AIKIT_CACHE_DIR", None)
        else:
            os.environ["AIKIT_CACHE_DIR"] = before


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ort_real_cache")


@pytest.fixture(scope="module")
def minilm_ort(minilm: aikit.Model, cache: Path) -> aikit.Model:
    with private_cache(cache):
        return minilm.to("onnxruntime")


@pytest.fixture(scope="module")
def smollm2_ort(smollm2: aikit.Model, cache: Path) -> aikit.Model:
    with private_cache(cache):
        return smollm2.to("onnxruntime")


def test_minilm_fp32_matches_torch(minilm: aikit.Model, minilm_ort: aikit.Model) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from corpus import load_sentences

    sentences = load_sentences(300)
    a, b = minilm.embed(sentences), minilm_ort.embed(sentences)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() >= 0.9999
    assert minilm_ort.backend.describe()["fusions"]["Attention"] == 6  # BERT fusions found every layer


def test_smollm2_greedy_tokens_equal_torch(smollm2: aikit.Model, smollm2_ort: aikit.Model) -> None:
    assert smollm2_ort.backend.facts["exporter"] == "onnxruntime-genai"
    expected = smollm2.predict(PROMPT, max_new_tokens=24)
    got = smollm2_ort.predict(PROMPT, max_new_tokens=24)
    assert got.token_ids == expected.token_ids and got.text == expected.text
    streamed = "".join(smollm2_ort.stream(PROMPT, max_new_tokens=24))
    assert streamed == expected.text


def test_smollm2_left_padded_batch_equals_single_prompts(smollm2_ort: aikit.Model) -> None:
    prompts = [PROMPT, "Name three colours."]
    batch = smollm2_ort.predict(prompts, max_new_tokens=8)
    singles = [smollm2_ort.predict(p, max_new_tokens=8) for p in prompts]
    assert [r.token_ids for r in batch] == [r.token_ids for r in singles]


def test_smollm2_artifact_reloads_without_rebuilding(
    smollm2_ort: aikit.Model, tmp_path: Path, monkeypatch: Any
) -> None:
    import aikit_onnxruntime.export.build as build

    saved = smollm2_ort.save(tmp_path / "smol")
    assert (saved / "model.onnx").is_file() and (saved / "model.onnx.data").is_file()
    monkeypatch.setattr(build, "build_export", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rebuilt")))
    again = aikit.Model.load(saved)
    assert again.predict(PROMPT, max_new_tokens=8).token_ids == smollm2_ort.predict(PROMPT, max_new_tokens=8).token_ids
