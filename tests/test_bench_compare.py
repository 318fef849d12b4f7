"""``aikit.compare``: ratios against the baseline, quality, the Pareto front and the plot."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import aikit
from aikit.contracts.results import Classification, Embedding
from aikit.measure.comparison import agreement, pareto_front

SENTENCES = ["the cat is happy", "a dog", "paris is a big city on a river", "hello world", "red fish blue fish"]


def test_pareto_front_of_known_points() -> None:
    points = [(10.0, 0.99), (20.0, 0.95), (15.0, 0.90), (20.0, 0.96), (5.0, 1.0), (30.0, None)]
    assert pareto_front(points) == [True, False, False, True, True, True]
    assert pareto_front([(1.0, 0.5), (1.0, 0.5)]) == [True, True]  # ties dominate neither


def test_agreement_of_results() -> None:
    a = [
        Embedding(vector=np.array([1.0, 0.0], dtype=np.float32)),
        Embedding(vector=np.array([0.0, 2.0], dtype=np.float32)),
    ]
    b = [
        Embedding(vector=np.array([2.0, 0.0], dtype=np.float32)),
        Embedding(vector=np.array([1.0, 1.0], dtype=np.float32)),
    ]
    assert agreement(a, b) == pytest.approx((1.0 + np.sqrt(0.5)) / 2)
    labels = [Classification(label=x, score=1.0) for x in "aab"]
    assert agreement(labels, [Classification(label=x, score=0.5) for x in "abb"]) == pytest.approx(2 / 3)
    with pytest.raises(aikit.InputError, match="equally long"):
        agreement(a, b[:1])


@pytest.fixture(scope="module")
def variants(tiny_model_dir: Callable[[str], Path]) -> list[aikit.Model]:
    path = tiny_model_dir("bert-embedding")
    return [
        aikit.Model.load(path, task="feature-extraction"),
        aikit.Model.load(path, task="feature-extraction", dtype="bfloat16"),
    ]


def test_compare_reports_ratios_against_the_first_model(variants: list[aikit.Model], tmp_path: Path) -> None:
    report = aikit.compare(
        variants, SENTENCES, names=["fp32", "bf16"], batch_sizes=[1, 4], repeats=2, plot=tmp_path / "cmp.png"
    )
    rows = report.rows()
    assert [(r["name"], r["batch_size"]) for r in rows] == [("fp32", 1), ("bf16", 1), ("fp32", 4), ("bf16", 4)]
    for base, other in (rows[0], rows[1]), (rows[2], rows[3]):
        assert base["speedup"] == pytest.approx(1.0) and base["size_ratio"] == pytest.approx(1.0)
        assert other["speedup"] == pytest.approx(other["items_per_s"] / base["items_per_s"])
        assert other["size_ratio"] is not None and 0.4 < other["size_ratio"] < 0.8  # bf16 weights are half the bytes
        assert base["quality"] == pytest.approx(1.0) and 0.95 < other["quality"] < 1.0
        assert base["pareto"] or other["pareto"]
    assert report.quality_metric == "cosine vs baseline"
    assert (tmp_path / "cmp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = report.plot(tmp_path / "cmp.svg", batch_size=1)
    assert b"<svg" in svg.read_bytes()[:500]
    text = report.render()
    assert "fp32" in text and "bf16" in text and "1.00x" in text and "machine" in text
    data = json.loads(report.to_json())
    assert len(data["reports"]) == 2 and data["rows"][1]["name"] == "bf16"
    with pytest.raises(aikit.ConfigError, match="batch size 8 was not measured"):
        report.plot(tmp_path / "x.png", batch_size=8)


def test_compare_quality_on_a_labelled_dataset(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    path = tiny_model_dir("bert-sequence-classification")
    models = [aikit.Model.load(path), aikit.Model.load(path, dtype="bfloat16")]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"text": s, "label": "positive"}) for s in SENTENCES), encoding="utf-8")
    report = aikit.compare(
        models, SENTENCES, batch_sizes=[2], repeats=1, data=data, metric="accuracy", measure_size=False
    )
    expected = [models[0].evaluate(data, metrics=["accuracy"]).scores["accuracy"]]
    assert report.quality_metric == "accuracy" and report.quality[0] == pytest.approx(expected[0])
    assert report.rows()[0]["size_bytes"] is None


def test_compare_refuses_mixed_tasks(variants: list[aikit.Model], tiny_model_dir: Callable[[str], Path]) -> None:
    classifier = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
    with pytest.raises(aikit.ConfigError, match="one task"):
        aikit.compare([variants[0], classifier], SENTENCES)
    with pytest.raises(aikit.ConfigError, match="2 names for 1 models"):
        aikit.compare(variants[:1], SENTENCES, names=["a", "b"])


def test_the_minilm_comparison_script_runs(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    # benchmarks/compare_minilm.py made the table and plot in docs/how-to/benchmark.md; run it on a tiny model.
    from benchmarks.compare_minilm import run

    with pytest.warns(aikit.TruncationWarning):  # the tiny model reads 48 tokens; real sentences run longer
        report = run(tiny_model_dir("bert-embedding"), tmp_path, sentences=4, repeats=1)
    assert [r.name for r in report.reports][:2] == ["fp32 (torch)", "bf16 (torch)"]
    assert {"minilm-compare.png", "minilm-compare.json", "minilm-compare.txt"} <= {p.name for p in tmp_path.iterdir()}
    assert json.loads((tmp_path / "minilm-compare.json").read_text())["rows"][0]["speedup"] == pytest.approx(1.0)
