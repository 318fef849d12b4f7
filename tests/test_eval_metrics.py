"""The built-in metrics against scikit-learn's on the same predictions, and perplexity against torch."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

import aikit
import aikit.plugins._core
from aikit.measure.evaluate import token_losses

LABELS = ["cat", "dog", "bird", "fish"]


def _labels(seed: int, n: int, choices: list[str]) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(choices) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_label_metrics_match_scikit_learn(seed: int) -> None:
    references = _labels(seed, 60, LABELS)
    predictions = _labels(seed + 100, 60, [*LABELS[:3], "whale"])  # one class never predicted, one never present
    assert aikit.get_metric("accuracy")(predictions, references) == pytest.approx(
        skm.accuracy_score(references, predictions)
    )
    for name, sk in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        ours = aikit.get_metric(name)(predictions, references)
        assert ours["macro"] == pytest.approx(sk(references, predictions, average="macro", zero_division=0))
        labels = sorted(set(references) | set(predictions))
        per_class = sk(references, predictions, average=None, labels=labels, zero_division=0)
        assert [ours["per_class"][label] for label in labels] == pytest.approx(list(per_class))
    matrix = aikit.get_metric("confusion_matrix")(predictions, references)
    assert matrix["labels"] == sorted(set(references) | set(predictions))
    assert matrix["matrix"] == skm.confusion_matrix(references, predictions, labels=matrix["labels"]).tolist()


def test_integer_labels_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    references, predictions = rng.integers(0, 3, 40).tolist(), rng.integers(0, 3, 40).tolist()
    ours = aikit.get_metric("f1")(predictions, references)
    assert ours["macro"] == pytest.approx(skm.f1_score(references, predictions, average="macro"))
    assert list(ours["per_class"]) == ["0", "1", "2"]


def test_label_metrics_reject_mismatched_lengths() -> None:
    with pytest.raises(aikit.InputError, match="3 predictions but 2 references"):
        aikit.get_metric("accuracy")(["a", "b", "c"], ["a", "b"])
    with pytest.raises(aikit.InputError, match="empty"):
        aikit.get_metric("f1")([], [])


def test_exact_match_ignores_surrounding_whitespace() -> None:
    assert aikit.get_metric("exact_match")(["Paris ", "london", "x"], ["Paris", "London", "x"]) == pytest.approx(2 / 3)


def test_cosine_agreement_matches_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 8)), rng.normal(size=(20, 8))
    ours = aikit.get_metric("cosine_agreement")(a, b)
    expected = np.diag(skm.pairwise.cosine_similarity(a, b))
    assert ours["mean"] == pytest.approx(expected.mean()) and ours["min"] == pytest.approx(expected.min())
    assert aikit.get_metric("cosine_agreement")(a, 3 * a)["min"] == pytest.approx(1.0)
    with pytest.raises(aikit.InputError, match="equally shaped"):
        aikit.get_metric("cosine_agreement")(a, b[:5])


def test_perplexity_matches_the_models_own_loss(tiny_model_dir: Callable[[str], Path]) -> None:
    import torch

    model = aikit.Model.load(tiny_model_dir("llama-causal-lm"))
    texts = ["hello world the cat is happy", "paris is a city", "red fish"]
    losses = token_losses(model, texts, batch_size=2)  # padded batches must not change anything
    module = model.backend.torch_module()
    tokenizer = model.parts.tokenizer
    total, count = 0.0, 0
    for text, loss in zip(texts, losses, strict=True):
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        with torch.inference_mode():
            mean = float(module(input_ids=ids, labels=ids).loss)  # transformers' shifted cross-entropy
        assert float(np.mean(loss)) == pytest.approx(mean, rel=1e-4)
        total += mean * (ids.shape[1] - 1)
        count += ids.shape[1] - 1
    assert aikit.get_metric("perplexity")(losses, None) == pytest.approx(math.exp(total / count), rel=1e-4)


def test_perplexity_needs_a_causal_lm(tiny_model_dir: Callable[[str], Path]) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
    with pytest.raises(aikit.ConfigError, match="causal language model"):
        token_losses(model, ["hello"])


def test_the_scored_texts_go_through_the_middleware(tiny_model_dir: Callable[[str], Path], aikit_redact: Any) -> None:
    """Perplexity scores what input middleware leaves: with the redaction plugin, the text scored is
    the masked one (as many losses as its tokens, less one), as for predict and stream."""
    from aikit.testing import fresh_host

    secret = "write to bob@example.com or call +44 20 7946 0958 today"
    masked = "write to [EMAIL] or call [PHONE] today"
    with fresh_host(aikit_redact):
        model = aikit.Model.load(tiny_model_dir("llama-causal-lm"))
        (losses,) = token_losses(model, [secret])
        tokenizer = model.parts.tokenizer
        assert len(losses) == len(tokenizer(masked)["input_ids"]) - 1
        assert len(tokenizer(masked)["input_ids"]) != len(tokenizer(secret)["input_ids"])  # the check can tell
        np.testing.assert_allclose(losses, aikit.plugins._core.score_tokens(model, [masked])[0])
