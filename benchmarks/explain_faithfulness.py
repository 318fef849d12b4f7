"""How trustworthy is each built-in explanation method? Faithfulness and model-randomisation figures.

A quality measurement, not a speed one: machine load does not change the numbers (only seeds do).
Two small models are trained here, as in the test suite, on data with a known answer:

- ``text``: aikit's tiny BERT trained for a few seconds to mark sentences that contain "cat" or
  "fire" (``aikit.testing.trained.keyword_classifier``, tests/test_explain.py's model too);
- ``image``: a Keras CNN trained on scikit-learn's 8x8 digits (``aikit.testing.trained.digits_cnn``;
  needs the keras extra).

For each model and method: ``aikit.measure.explain.faithfulness`` (delete the top-k attributed tokens /
pixels vs k random ones; mean probability drops) and ``aikit.measure.explain.model_randomization``
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

METHODS = ("integrated-gradients", "occlusion")


def measure(model: Any, inputs: list[Any], *, k: int, options: dict[str, Any]) -> list[dict[str, Any]]:
    from aikit.measure.explain import faithfulness, model_randomization

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
    from aikit.testing.trained import digits_cnn, keyword_classifier, keyword_sentences

    results: dict[str, Any] = {"aikit": aikit.__version__, "models": {}}
    texts, labels = keyword_sentences(2, 4 * args.n)
    marked = [t for t, label in zip(texts, labels) if label][: args.n]
    text = keyword_classifier()
    results["models"]["keyword BERT (text)"] = {
        "description": "tiny BERT trained to mark sentences containing 'cat' or 'fire'; marked test sentences",
        "rows": measure(text, marked, k=1, options={"steps": 32}),
    }
    with tempfile.TemporaryDirectory() as folder:
        os.environ.setdefault("KERAS_BACKEND", "torch")
        image, digits = digits_cnn(Path(folder))
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
