"""``aikit bench`` and ``aikit eval`` on tiny models and data files written in tmp_path."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from pathlib import Path

import pytest
from sklearn import metrics as skm
from typer.testing import CliRunner

import aikit
from aikit.cli import app
from aikit.testing import fresh_host

runner = CliRunner()
ROWS = [
    ("the movie was good", "positive"),
    ("a terrible film", "negative"),
    ("happy dog", "positive"),
    ("sad cat", "negative"),
]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    txt = tmp_path / "in.txt"
    txt.write_text("\n".join(t for t, _ in ROWS), encoding="utf-8")
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "label": lab}) for t, lab in ROWS), encoding="utf-8")
    return {"txt": txt, "jsonl": jsonl}


def test_bench_one_model_json_and_plot(
    tiny_model_dir: Callable[[str], Path], files: dict[str, Path], tmp_path: Path
) -> None:
    model = str(tiny_model_dir("bert-sequence-classification"))
    plot = tmp_path / "bench.svg"
    result = runner.invoke(
        app,
        [
            "bench",
            model,
            "--input",
            str(files["txt"]),
            "-b",
            "1,2",
            "--repeats",
            "2",
            "--json",
            "--plot",
            str(plot),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [b["batch_size"] for b in data["batches"]] == [1, 2]
    assert data["batches"][1]["runs"] == 2 and data["settings"]["inputs"] == len(ROWS)
    assert b"<svg" in plot.read_bytes()[:500]


def test_bench_several_models_prints_one_table(tiny_model_dir: Callable[[str], Path], files: dict[str, Path]) -> None:
    model = str(tiny_model_dir("bert-embedding"))
    result = runner.invoke(
        app,
        [
            "bench",
            model,
            model,
            "--input",
            str(files["txt"]),
            "-b",
            "2",
            "--repeats",
            "1",
            "--task",
            "feature-extraction",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "baseline" in result.stdout and "1.00x" in result.stdout and "cosine vs baseline" in result.stdout


def test_bench_rejects_bad_settings_before_loading(files: dict[str, Path]) -> None:
    result = runner.invoke(app, ["bench", "nowhere", "--input", str(files["txt"]), "-b", "1,x"])
    assert isinstance(result.exception, aikit.ConfigError) and "--batch-size" in str(result.exception)
    result = runner.invoke(app, ["bench", "nowhere", "--input", str(files["txt"]), "--plot", "out.gif"])
    assert isinstance(result.exception, aikit.ConfigError) and ".png" in str(result.exception)


def test_eval_matches_scikit_learn(tiny_model_dir: Callable[[str], Path], files: dict[str, Path]) -> None:
    path = tiny_model_dir("bert-sequence-classification")
    result = runner.invoke(
        app, ["eval", str(path), str(files["jsonl"]), "--metric", "accuracy,f1", "--json", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    predicted = [r.label for r in aikit.Model.load(path).predict([t for t, _ in ROWS])]
    truth = [lab for _, lab in ROWS]
    assert data["scores"]["accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted))
    assert data["scores"]["f1"]["macro"] == pytest.approx(
        skm.f1_score(truth, predicted, average="macro", zero_division=0)
    )
    text = runner.invoke(app, ["eval", str(path), str(files["jsonl"]), "--metric", "f1", "--no-progress"])
    assert text.exit_code == 0 and "f1 (macro)" in text.stdout and "f1 [positive]" in text.stdout


class _CtrlCOnCall:
    """Middleware that presses Ctrl-C on the n-th predict call."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    @aikit.hookimpl(wrapper=True)
    def aikit_predict(self, call: object) -> Generator[None, list[object], list[object]]:
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return (yield)


def test_bench_ctrl_c_prints_what_was_measured(tiny_model_dir: Callable[[str], Path], files: dict[str, Path]) -> None:
    model = str(tiny_model_dir("bert-sequence-classification"))
    with fresh_host(_CtrlCOnCall(3)):  # batch size 1 finishes its two runs; batch size 2 is cut off
        result = runner.invoke(app, ["bench", model, "--input", str(files["txt"]), "-b", "1,2", "--repeats", "2",
                                     "--warmup", "0", "--json", "--no-progress"])  # fmt: skip
    assert result.exit_code == 130
    data = json.loads(result.stdout)
    assert data["interrupted"] is True and [b["batch_size"] for b in data["batches"]] == [1]
