"""Every strategy on tiny real models: it compresses, and the saved artifact reloads to identical outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit

TEXTS = [f"sentence {i}: the {'quick ' * (i % 5)}brown fox jumps over {i} lazy dogs" for i in range(24)]

ENCODER_STRATEGIES = [
    "int8-dynamic",
    "int8-dynamic:per_token=false,per_channel=false,weight_bits=7",
    "int8-dynamic:smoothquant=0.5",
    "int8-static",
    "int8-static:smoothquant=none,percentile=100",
    "int8-weight-only",
    "int4-weight-only:group_size=32,method=hqq",
    "fp16",
    "bf16",
    "prune-magnitude:sparsity=0.5",
    "prune-2:4",
    "prune-structured:heads=0.25,ffn=0.5,layers=1,recovery_seconds=1",
]
DECODER_STRATEGIES = [
    "int8-dynamic",
    "int8-weight-only",
    "int4-weight-only:group_size=32,method=rtn",
    "bf16",
    "prune-structured:ffn=0.5,layers=1,recovery_seconds=1",
]


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Any) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction")


@pytest.fixture(scope="module")
def decoder(tiny_model_dir: Any) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("llama-causal-lm"))


def _forward(model: aikit.Model, batch: dict[str, Any]) -> dict[str, Any]:
    return model.backend.forward(batch)


@pytest.mark.parametrize("spec", ENCODER_STRATEGIES)
def test_encoder_strategy_round_trip(embedder: aikit.Model, spec: str, tmp_path: Path) -> None:
    small = embedder.compress(spec, calibration=TEXTS, measure_speed=False)
    report = small.compression_report
    assert report.quality["cosine_min"] > 0.9, report
    back = aikit.Model.load(small.save(tmp_path / "m"))
    np.testing.assert_array_equal(back.embed(TEXTS), small.embed(TEXTS))
    assert back.transformations == small.transformations


@pytest.mark.parametrize("spec", DECODER_STRATEGIES)
def test_decoder_strategy_round_trip(decoder: aikit.Model, spec: str, tmp_path: Path) -> None:
    small = decoder.compress(spec, calibration=TEXTS, measure_speed=False)
    assert {"perplexity_before", "perplexity_after", "next_token_agreement"} <= set(small.compression_report.quality)
    back = aikit.Model.load(small.save(tmp_path / "m"))
    batch = {"input_ids": np.array([[3, 17, 42, 9, 11]]), "attention_mask": np.ones((1, 5), dtype=np.int64)}
    np.testing.assert_array_equal(_forward(back, batch)["logits"], _forward(small, batch)["logits"])
    assert back.predict("hello", max_new_tokens=6).token_ids == small.predict("hello", max_new_tokens=6).token_ids


def test_classifier_keeps_labels_after_int8(tiny_model_dir: Any, tmp_path: Path) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
    small = model.compress("int8-dynamic", "int4-weight-only:group_size=32", calibration=TEXTS, measure_speed=False)
    assert "label_agreement" in small.compression_report.quality
    back = aikit.Model.load(small.save(tmp_path / "c"))
    assert [r.scores for r in back.predict(TEXTS[:5])] == [r.scores for r in small.predict(TEXTS[:5])]
