"""A third-party task, backend, loader, device kind and strategy (tests/third_party/hashed_vectors.py)
get what the built-ins get, because the core asks the contracts' capabilities, never names:
``Model.embed``, ``/v1/embeddings`` through the real ``openai`` client, ``evaluate``'s default
metrics, the accuracy guard's cosine, ``explain`` of a pair, the CLI's choice of backend for a
strategy, a device kind aikit does not know, and a payload kind of the plugin's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest

import aikit
from aikit.compress.chain import backend_for
from aikit.errors import BackendError, ConfigError
from aikit.measure.eval_data import Dataset
from aikit.measure.evaluate import evaluate
from aikit.serve import ServeSettings, create_app
from aikit.serve.local import LocalServer
from aikit.testing import fresh_host
from tests.third_party import hashed_vectors

TEXTS = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "models turn words into vectors",
    "the quick brown fox jumps over the lazy dog",
    "embeddings of similar texts point the same way",
    "a hashed bag of words is a small model",
    "every word lands in one bucket",
    "servers answer many clients at once",
]


@pytest.fixture
def host() -> Iterator[object]:
    with fresh_host(hashed_vectors) as h:
        yield h


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "words.hvec.json"
    path.write_text(json.dumps({"dim": 16, "buckets": 64, "seed": 0}))
    return path


def test_load_picks_the_plugins_loader_payload_kind_backend_and_task(host: object, spec_file: Path) -> None:
    model = aikit.Model.load(spec_file)
    assert (model.parts.payload, model.backend.name, model.task.name) == ("hvec", "hvec-cpu", "hashed-embeddings")
    vectors = model.embed(TEXTS[:3])
    assert vectors.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_a_device_kind_only_the_plugin_knows(host: object, spec_file: Path) -> None:
    assert aikit.Model.load(spec_file, device="toy").backend.describe()["device"] == "toy"
    with pytest.raises(BackendError, match=r"backend 'hvec-cpu' does not run on device 'npu' \(it runs on cpu, toy\)"):
        aikit.Model.load(spec_file, backend="hvec-cpu", device="npu")
    with pytest.raises(BackendError, match=r"no available backend can run a 'hvec' model .* on device 'npu'"):
        aikit.Model.load(spec_file, device="npu")
    with pytest.raises(ConfigError, match="device must be a device kind"):
        aikit.Model.load(spec_file, device="Toy Device")


def test_embeddings_route_serves_it_and_chat_refuses_it(host: object, spec_file: Path) -> None:
    model = aikit.Model.load(spec_file)
    app = create_app(model, ServeSettings(model_name="hashed", warmup=False))
    with LocalServer(app) as server, openai.OpenAI(base_url=server.url + "/v1", api_key="-") as client:
        got = client.embeddings.create(model="hashed", input=TEXTS[:2], encoding_format="float")
        np.testing.assert_allclose(np.array([d.embedding for d in got.data]), model.embed(TEXTS[:2]), atol=1e-6)
        with pytest.raises(openai.BadRequestError, match="needs a chat model"):
            client.chat.completions.create(model="hashed", messages=[{"role": "user", "content": "hi"}])


def test_evaluate_uses_the_tasks_default_metrics(host: object, spec_file: Path, tmp_path: Path) -> None:
    model = aikit.Model.load(spec_file)
    other_spec = tmp_path / "other.hvec.json"
    other_spec.write_text(json.dumps({"dim": 16, "buckets": 64, "seed": 1}))
    report = evaluate(model, Dataset.from_lists(TEXTS), reference=aikit.Model.load(other_spec), progress=False)
    assert list(report.scores) == ["cosine_agreement"]
    same = evaluate(model, Dataset.from_lists(TEXTS), reference=model, progress=False)
    assert same.score("cosine_agreement") == pytest.approx(1.0, abs=1e-6)


def test_the_guard_compares_the_tasks_embeddings(host: object, spec_file: Path) -> None:
    assert backend_for(["hvec-float16"]) == "hvec-cpu"
    model = aikit.Model.load(spec_file)
    small = model.compress("hvec-float16", calibration=TEXTS, max_quality_drop=0.01, measure_speed=False)
    report = small.compression_report
    assert report is not None and report.size_after_bytes * 2 == report.size_before_bytes
    assert report.quality_drop is not None and 0.0 <= report.quality_drop < 1e-3  # float16 moves cosines little
    assert report.quality_metric is not None and "cosine" in report.quality_metric


def test_explain_attributes_a_pair_by_occlusion(host: object, spec_file: Path) -> None:
    model = aikit.Model.load(spec_file)
    explanation = model.explain(("the cat sat on the mat", "a cat on a mat"), method="occlusion")
    assert explanation.kind == "pair"
    assert explanation.tokens == ("the", "cat", "sat", "on", "the", "mat")
    assert explanation.tokens_b == ("a", "cat", "on", "a", "mat")
    assert explanation.attributions.shape == (6, 5)
