"""Compare variants of the packaged all-MiniLM-L6-v2 in one process: fp32 (baseline), bf16, and
whatever compression strategies work here. Writes the table, JSON and the quality-vs-speed
plot used by docs/how-to/benchmark.md.

    python -m benchmarks.compare_minilm [--out docs/assets] [--sentences 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import aikit
from aikit.defaults import default_model_path
from benchmarks.corpus import load_sentences


# --8<-- [start:variants]
def variants(path: Path) -> tuple[list[aikit.Model], list[str]]:
    base = aikit.Model.load(path, task="feature-extraction")
    models = [base, aikit.Model.load(path, task="feature-extraction", dtype="bfloat16")]
    names = ["fp32 (torch)", "bf16 (torch)"]
    for strategy in ("int8-dynamic", "int8-weight-only"):
        try:
            models.append(base.compress(strategy, measure_speed=False))
            names.append(f"{strategy} (torch)")
        except aikit.AikitError as exc:  # a strategy that cannot run here is reported, not fatal
            logging.warning("skipping %s: %s", strategy, exc)
    return models, names


# --8<-- [end:variants]


def run(path: Path, out: Path, *, sentences: int, repeats: int) -> aikit.ComparisonReport:
    """Compare the variants of the model at ``path``; write the plot, JSON and table into ``out``."""
    models, names = variants(path)
    sentences_used = load_sentences(sentences)
    # --8<-- [start:compare]
    report = aikit.compare(models, sentences_used, names=names, batch_sizes=[1, 16], repeats=repeats, progress=True)
    print(report)
    out.mkdir(parents=True, exist_ok=True)
    report.plot(out / "minilm-compare.png")
    # --8<-- [end:compare]
    (out / "minilm-compare.json").write_text(report.to_json(), encoding="utf-8")
    (out / "minilm-compare.txt").write_text(report.render(), encoding="utf-8")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/assets"))
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run(default_model_path("minilm"), args.out, sentences=args.sentences, repeats=args.repeats)


if __name__ == "__main__":
    main()
