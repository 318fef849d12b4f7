"""How trustworthy is each built-in explanation method? Faithfulness and model-randomisation figures.

A quality measurement, not a speed one: machine load does not change the numbers (only seeds do).
Two small models are trained here, as in the test suite, on data with a known answer:

- ``text``: aikit's tiny BERT (``aikit.testing``) trained for a few seconds to mark sentences that
  contain "cat" or "fire" (tests/test_explain.py's keyword task);
- ``image``: a Keras CNN trained on scikit-learn's 8x8 digits (needs the keras extra).

For each model and method: ``aikit.explain.faithfulness`` (delete the top-k attributed tokens /
pixels vs k random ones; mean probability drops) and ``aikit.explain.model_randomization``
(Spearman of |attributions| against the same method on the model with shuffled weights).

Usage::

    python benchmarks/explain_faithfulness.py --json docs/assets/explain-faithfulness.json
    python benchmarks/explain_faithfulness.py --render docs/assets/explain-faithfulness.json

``--render`` prints the markdown table docs/how-to/explain.md shows (tests/test_explain.py checks
that the page holds exactly that table).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("integrated-gradients", "occlusion")
MARKERS = ("cat", "fire")


def keyword_sentences(seed: int, count: int) -> tuple[list[str], list[int]]:
    """Filler-word sentences; label 1 when one marker word was inserted."""
    from aikit.testing import TINY_WORDS

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


def text_model() -> Any:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    import aikit
    from aikit.testing import tiny_tokenizer

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
    return aikit.Model.from_module(module, task="text-classification", tokenizer=tokenizer, labels=["other", "marked"])


def image_model(folder: Path) -> tuple[Any, Any]:
    from aikit_keras._import import import_keras
    from sklearn.datasets import load_digits

    import aikit

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
    net.save(folder / "digits.keras")
    model = aikit.Model.load(
        folder / "digits.keras",
        task="image-classification",
        preprocess=aikit.ImagePreprocess(size=(8, 8), grayscale=True, scale=1 / 16),
        labels=[str(i) for i in range(10)],
    )
    return model, digits


def measure(model: Any, inputs: list[Any], *, k: int, options: dict[str, Any]) -> list[dict[str, Any]]:
    from aikit.explain import faithfulness, model_randomization

    rows = []
    for method in METHODS:
        start = time.perf_counter()
        explanations = model.explain(inputs, method=method, **options)
        seconds = time.perf_counter() - start
        faith = faithfulness(model, explanations, k=k)
        randomised = model_randomization(model, explanations, **options)
        rows.append(
            {
                "method": method,
                "inputs": len(inputs),
                "k": k,
                "top_k_drop": faith.top_k_drop,
                "random_drop": faith.random_drop,
                "faithful": faith.passed,
                "randomization_similarity": randomised.similarity,
                "randomization_signed_similarity": randomised.signed_similarity,
                "randomization_passed": randomised.passed,
                "seconds_per_input": seconds / len(inputs),
            }
        )
    return rows


def render(results: dict[str, Any]) -> str:
    """The markdown table of docs/how-to/explain.md."""
    lines = [
        "| model | method | inputs | k | top-k drop | random-k drop | faithful | randomised-weights similarity "
        "(abs / signed) | sanity |",
        "|---|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for name, section in results["models"].items():
        for r in section["rows"]:
            lines.append(
                f"| {name} | `{r['method']}` | {r['inputs']} | {r['k']} | {r['top_k_drop']:.3f} | "
                f"{r['random_drop']:.3f} | {'yes' if r['faithful'] else 'no'} | "
                f"{r['randomization_similarity']:.2f} / {r['randomization_signed_similarity']:+.2f} | "
                f"{'passed' if r['randomization_passed'] else 'failed'} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40, help="inputs per model")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--render", type=Path, help="print the markdown of a --json result and exit")
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return
    import tempfile

    import aikit

    results: dict[str, Any] = {"aikit": aikit.__version__, "models": {}}
    texts, labels = keyword_sentences(2, 4 * args.n)
    marked = [t for t, label in zip(texts, labels) if label][: args.n]
    text = text_model()
    results["models"]["keyword BERT (text)"] = {
        "description": "tiny BERT trained to mark sentences containing 'cat' or 'fire'; marked test sentences",
        "rows": measure(text, marked, k=1, options={"steps": 32}),
    }
    with tempfile.TemporaryDirectory() as folder:
        os.environ.setdefault("KERAS_BACKEND", "torch")
        image, digits = image_model(Path(folder))
        images = list(digits.images[1500 : 1500 + args.n])
        results["models"]["digits CNN (image)"] = {
            "description": "Keras CNN trained on sklearn digits[:1500]; held-out digits",
            "rows": measure(image, images, k=8, options={"steps": 32, "patch": 2}),
        }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(render(results))


if __name__ == "__main__":
    main()
