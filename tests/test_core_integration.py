"""The packaged real models against their reference implementations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit

pytestmark = pytest.mark.slow


def test_minilm_matches_sentence_transformers_encode(minilm: aikit.Model, minilm_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    import benchmarks.corpus as corpus

    sentences = corpus.load_sentences(200)
    reference = SentenceTransformer(str(minilm_path), device="cpu").encode(sentences, batch_size=32)
    ours = minilm.embed(sentences)
    cosine = (ours * reference).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))
    assert float(1 - cosine.min()) < 1e-5
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_minilm_round_trip(minilm: aikit.Model, tmp_path: Path) -> None:
    texts = ["The capital of France is Paris.", "Unrelated sentence about cooking pasta."]
    minilm.save(tmp_path / "minilm")
    again = aikit.Model.load(tmp_path / "minilm")
    assert np.array_equal(again.embed(texts), minilm.embed(texts))


def test_smollm2_greedy_equals_transformers_generate(smollm2: aikit.Model) -> None:
    import torch

    module: Any = smollm2.backend.torch_module()
    tokenizer = smollm2.parts.tokenizer
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        reference = module.generate(**ids, max_new_tokens=24, do_sample=False)[0, ids["input_ids"].shape[1] :].tolist()
    ours = smollm2.predict(messages, max_new_tokens=24)
    eos = set(smollm2.task.eos)  # type: ignore[attr-defined]
    expected = [t for t in reference if t not in eos]
    cut = next((i for i, t in enumerate(reference) if t in eos), len(reference))
    assert list(ours.token_ids) == expected[:cut]
    assert "Paris" in ours.text


def test_smollm2_streams_the_same_text(smollm2: aikit.Model) -> None:
    full = smollm2.predict("Name one primary colour.", max_new_tokens=12)
    assert "".join(smollm2.stream("Name one primary colour.", max_new_tokens=12)) == full.text


def test_smollm2_round_trip(smollm2: aikit.Model, tmp_path: Path) -> None:
    smollm2.save(tmp_path / "smol")
    again = aikit.Model.load(tmp_path / "smol")
    prompt = "Say hello."
    assert again.predict(prompt, max_new_tokens=8) == smollm2.predict(prompt, max_new_tokens=8)
