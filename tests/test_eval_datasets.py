"""Reading evaluation data (JSONL, CSV, TSV, text, plugin formats) and ``Model.evaluate`` end to end."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
from sklearn import metrics as skm

import aikit
from aikit.measure.eval_data import Dataset, load_dataset
from aikit.testing import fresh_host

ROWS = [
    ("the movie was good", "positive"),
    ("a terrible film", "negative"),
    ("happy dog", "positive"),
    ("sad cat in the river", "negative"),
    ("great book", "positive"),
    ("bad slow model", "negative"),
]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def data_files(tmp_path: Path) -> dict[str, Path]:
    jsonl = _write_jsonl(tmp_path / "d.jsonl", [{"text": t, "label": lab} for t, lab in ROWS])
    csv = tmp_path / "d.csv"
    csv.write_text("sentence,target\n" + "".join(f'"{t}",{lab}\n' for t, lab in ROWS), encoding="utf-8")
    tsv = tmp_path / "d.tsv"
    tsv.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in ROWS), encoding="utf-8")
    txt = tmp_path / "d.txt"
    txt.write_text("".join(f"{t}\n\n" for t, _ in ROWS), encoding="utf-8")
    return {"jsonl": jsonl, "csv": csv, "tsv": tsv, "txt": txt}


@pytest.mark.parametrize("kind", ["jsonl", "csv", "tsv"])
def test_labelled_files_load_alike(data_files: dict[str, Path], kind: str) -> None:
    data = load_dataset(data_files[kind])
    assert data.inputs == [t for t, _ in ROWS]
    assert data.references == [lab for _, lab in ROWS]
    assert len(data) == len(ROWS)


def test_text_files_give_inputs_only_and_limit_cuts(data_files: dict[str, Path]) -> None:
    data = load_dataset(data_files["txt"], limit=2)
    assert data.inputs == [ROWS[0][0], ROWS[1][0]] and data.references is None


def test_named_columns(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "q.jsonl", [{"q": "what", "a": "x", "text": "ignored"}])
    data = load_dataset(path, input_field="q", reference_field="a")
    assert (data.inputs, data.references) == (["what"], ["x"])
    with pytest.raises(aikit.InputError, match="no input column 'nope'; its columns are q, a, text"):
        load_dataset(path, input_field="nope")


def test_bad_files_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(aikit.InputError, match="line 2: not valid JSON"):
        load_dataset(bad)
    with pytest.raises(aikit.InputError, match="does not exist"):
        load_dataset(tmp_path / "missing.csv")
    with pytest.raises(aikit.ConfigError, match=r"cannot tell the format.*jsonl"):
        load_dataset(tmp_path / "data.parquet")
    nocol = _write_jsonl(tmp_path / "nocol.jsonl", [{"body": "x"}])
    with pytest.raises(aikit.InputError, match="pass input_field"):
        load_dataset(nocol)
    ragged = _write_jsonl(tmp_path / "ragged.jsonl", [{"text": "a", "label": "x"}, {"text": "b"}])
    with pytest.raises(aikit.InputError, match="record 2: no 'label' field"):
        load_dataset(ragged)


class _UpperFormat:
    """A third-party plugin registering a dataset format through the hook."""

    @aikit.hookimpl
    def aikit_register_dataset_formats(self, register: Callable[..., None]) -> None:
        def read(location: str, *, split: str | None = None) -> list[dict[str, Any]]:
            return [{"text": w.upper(), "label": w} for w in location.split(",")]

        register("words", read)


def test_plugins_register_dataset_formats() -> None:
    with fresh_host(_UpperFormat()) as host:
        assert host.owners[("dataset_formats", "words")] == "test-plugin-0"
        data = load_dataset("words:cat,dog")
        assert data.inputs == ["CAT", "DOG"] and data.references == ["cat", "dog"]
        clash = host.add_plugin(_UpperFormat(), name="again")
        assert clash.error is not None and "already registered" in clash.error


@pytest.fixture(scope="module")
def classifier(tiny_model_dir: Callable[[str], Path]) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("bert-sequence-classification"))


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_evaluate_scores_match_scikit_learn(classifier: aikit.Model, data_files: dict[str, Path], kind: str) -> None:
    report = classifier.evaluate(data_files[kind])
    predicted = [r.label for r in classifier.predict([t for t, _ in ROWS])]
    truth = [lab for _, lab in ROWS]
    assert report.items == len(ROWS) and not report.interrupted
    assert report.scores["accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted))
    assert report.score("f1") == pytest.approx(skm.f1_score(truth, predicted, average="macro", zero_division=0))
    assert (
        report.scores["confusion_matrix"]["matrix"]
        == skm.confusion_matrix(truth, predicted, labels=report.scores["confusion_matrix"]["labels"]).tolist()
    )
    text = report.render()
    assert "f1 (macro)" in text and "confusion_matrix" in text
    assert json.loads(report.to_json())["scores"]["accuracy"] == report.scores["accuracy"]


def test_evaluate_maps_class_ids_to_label_names(classifier: aikit.Model, tmp_path: Path) -> None:
    ids = {"negative": 0, "positive": 1}
    path = _write_jsonl(tmp_path / "ids.jsonl", [{"text": t, "label": ids[lab]} for t, lab in ROWS])
    by_id = classifier.evaluate(path, metrics="accuracy,f1")
    by_name = classifier.evaluate(
        Dataset.from_lists([t for t, _ in ROWS], [lab for _, lab in ROWS]), metrics=["accuracy"]
    )
    assert by_id.scores["accuracy"] == by_name.scores["accuracy"]
    assert set(by_id.scores) == {"accuracy", "f1"}


def test_evaluate_errors_name_what_is_missing(classifier: aikit.Model, data_files: dict[str, Path]) -> None:
    with pytest.raises(aikit.ConfigError, match="no reference column"):
        classifier.evaluate(data_files["txt"])
    with pytest.raises(aikit.UnknownNameError, match="accuracy"):
        classifier.evaluate(data_files["jsonl"], metrics=["acuracy"])


class _InterruptSecondCall:
    """Middleware that presses Ctrl-C on the second predict call."""

    def __init__(self) -> None:
        self.calls = 0

    @aikit.hookimpl(wrapper=True)
    def aikit_predict(self, call: Any) -> Generator[None, list[Any], list[Any]]:
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return (yield)


def test_ctrl_c_scores_the_items_finished(tiny_model_dir: Callable[[str], Path]) -> None:
    texts = [t for t, _ in ROWS] * 20  # 120 items: two chunks of 64
    labels = [lab for _, lab in ROWS] * 20
    with fresh_host(_InterruptSecondCall()):
        model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
        report = model.evaluate(Dataset.from_lists(texts, labels), metrics=["accuracy"])
    assert report.interrupted and report.items == 64
    predicted = [r.label for r in model.predict(texts[:64])]
    assert report.scores["accuracy"] == pytest.approx(skm.accuracy_score(labels[:64], predicted))


def test_embedding_agreement_with_a_reference_model(tiny_model_dir: Callable[[str], Path]) -> None:
    path = tiny_model_dir("bert-embedding")
    fp32 = aikit.Model.load(path, task="feature-extraction")
    bf16 = aikit.Model.load(path, task="feature-extraction", dtype="bfloat16")
    data = Dataset.from_lists([t for t, _ in ROWS])
    assert fp32.evaluate(data, reference=fp32).score("cosine_agreement") == pytest.approx(1.0)
    low = bf16.evaluate(data, reference=fp32).scores["cosine_agreement"]
    assert 0.95 < low["mean"] < 1.0 and low["min"] <= low["mean"]
    with pytest.raises(aikit.ConfigError, match="reference="):
        bf16.evaluate(data)


def test_generation_defaults(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    model = aikit.Model.load(tiny_model_dir("llama-causal-lm"))
    texts = Dataset.from_lists(["hello world", "the cat is happy"])
    report = model.evaluate(texts)  # no references: perplexity
    assert set(report.scores) == {"perplexity"} and report.scores["perplexity"] > 1
    outputs = [g.text for g in model.predict(["hello world", "paris"], max_new_tokens=3)]
    path = _write_jsonl(
        tmp_path / "g.jsonl",
        [{"prompt": "hello world", "answer": outputs[0]}, {"prompt": "paris", "answer": outputs[1] + " not it"}],
    )
    assert model.evaluate(path, max_new_tokens=3).scores == {"exact_match": 0.5}
