"""Small models trained in seconds on data with a known answer: what explanations are checked on.

The test suite (tests/test_explain.py) and the faithfulness figures in the docs
(benchmarks/explain_faithfulness.py) use the same models, built here once:

- ``keyword_classifier()``: aikit's tiny BERT trained to mark sentences that contain one of
  ``MARKERS`` (a right answer for text explanations: the marker word);
- ``digits_cnn(folder)``: a Keras CNN trained on scikit-learn's 8x8 digits, saved as
  ``folder/digits.keras`` and loaded by aikit (needs the keras extra).

Seeds are fixed, so every caller gets the same weights on the same machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aikit.testing.tiny import TINY_WORDS, tiny_tokenizer

if TYPE_CHECKING:
    from aikit.model.model import Model

__all__ = ["KEYWORD_LABELS", "MARKERS", "digits_cnn", "keyword_classifier", "keyword_sentences"]

MARKERS = ("cat", "fire")
KEYWORD_LABELS = ["other", "marked"]


def keyword_sentences(seed: int, count: int) -> tuple[list[str], list[int]]:
    """``count`` filler-word sentences and their labels: 1 when one marker word was inserted."""
    rng = np.random.default_rng(seed)
    filler = [w for w in TINY_WORDS[:40] if w not in MARKERS]
    texts, labels = [], []
    for _ in range(count):
        words = list(rng.choice(filler, size=int(rng.integers(5, 10))))
        label = int(rng.integers(0, 2))
        if label:
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(MARKERS)))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def keyword_classifier() -> Model:
    """The tiny BERT trained (3 epochs, 1024 sentences, seed 0) on ``keyword_sentences``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from aikit.model.model import Model

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    config = BertConfig(  # type: ignore[call-arg]  # num_labels goes through **kwargs
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    module = BertForSequenceClassification(config)
    texts, labels = keyword_sentences(0, 1024)
    optimizer = torch.optim.AdamW(module.parameters(), lr=2e-3)
    module.train()
    for _epoch in range(3):
        for start in range(0, len(texts), 32):
            batch = tokenizer(texts[start : start + 32], padding=True, return_tensors="pt")
            loss = module(**batch, labels=torch.tensor(labels[start : start + 32])).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    module.eval()  # type: ignore[no-untyped-call]
    return Model.from_module(module, task="text-classification", tokenizer=tokenizer, labels=KEYWORD_LABELS)


def digits_cnn(folder: Path) -> tuple[Model, Any]:
    """A Keras CNN trained (6 epochs, seed 0) on the first 1500 of scikit-learn's digits, saved in
    ``folder`` and loaded by aikit; also the digits (``.images[1500:]`` were never trained on)."""
    from aikit_keras._import import import_keras
    from sklearn.datasets import load_digits

    from aikit.contracts.preprocess import ImagePreprocess
    from aikit.model.model import Model

    keras = import_keras()
    digits = load_digits()
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    net.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit((digits.images[:1500] / 16.0)[..., None], digits.target[:1500], epochs=6, batch_size=32, verbose=0)
    net.save(Path(folder) / "digits.keras")
    model = Model.load(
        Path(folder) / "digits.keras",
        task="image-classification",
        preprocess=ImagePreprocess(size=(8, 8), grayscale=True, scale=1 / 16),
        labels=[str(i) for i in range(10)],
    )
    return model, digits
