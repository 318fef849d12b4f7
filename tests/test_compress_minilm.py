"""int8-dynamic on the packaged all-MiniLM-L6-v2 with real English sentences (slow)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from corpus import load_sentences

    return list(load_sentences())


def test_int8_dynamic_keeps_minilm_embeddings(minilm: Any, sentences: list[str], tmp_path: Path) -> None:
    evaluation, calibration = sentences[:300], sentences[-64:]
    small = minilm.compress("int8-dynamic", calibration=calibration, measure_speed=False)
    reference, vectors = minilm.embed(evaluation), small.embed(evaluation)
    cos = (reference * vectors).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(vectors, axis=1)
    assert cos.min() >= 0.99 and cos.mean() >= 0.997, (cos.min(), cos.mean())  # the bar
    report = small.compression_report
    assert report.size_ratio <= 0.30  # word embeddings are int8 too
    back = aikit.Model.load(small.save(tmp_path / "minilm-int8"))
    np.testing.assert_array_equal(back.embed(evaluation[:32]), small.embed(evaluation[:32]))
    # per-token activation ranges: a sentence's embedding barely depends on what it is batched with
    # (measured: min cosine 0.9978 between two batchings, from int8 rounding of rows padded differently)
    alone, batched = small.embed(evaluation[:32]), vectors[:32]
    agreement = (alone * batched).sum(1) / np.linalg.norm(alone, axis=1) / np.linalg.norm(batched, axis=1)
    assert agreement.min() > 0.995
    assert (tmp_path / "minilm-int8" / "aikit-weights.safetensors").stat().st_size <= 0.30 * 90_900_000


def test_transformers_refuses_a_compressed_artifact_instead_of_loading_random_weights(
    minilm: Any, sentences: list[str], tmp_path: Path
) -> None:
    """transformers rebuilds the model from config.json and would fill the int8 layers it cannot read with
    fresh random values, reporting success; aikit saves such weights under another name so it refuses."""
    import transformers

    small = minilm.compress("int8-dynamic", calibration=sentences[-32:], measure_speed=False)
    folder = small.save(tmp_path / "int8")
    assert not (folder / "model.safetensors").exists()
    with pytest.raises(OSError, match="model.safetensors|pytorch_model.bin"):
        transformers.AutoModel.from_pretrained(folder)
    # an fp32 artifact, and one whose layers stay plain (magnitude pruning), load correctly in transformers
    pruned = minilm.compress("prune-magnitude:sparsity=0.3", calibration=sentences[-32:], measure_speed=False)
    plain = pruned.save(tmp_path / "pruned")
    other = transformers.AutoModel.from_pretrained(plain)
    ours = pruned.backend.torch_module()
    for name, tensor in ours.state_dict().items():
        assert torch_equal(other.state_dict()[name], tensor), name


def torch_equal(a: Any, b: Any) -> bool:
    import torch

    return bool(torch.equal(a, b))
