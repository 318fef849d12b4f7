"""Parity of the onnxruntime backend with the torch backend on tiny models of every task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit
from aikit.contracts.options import GenerationOptions
from aikit.errors import BackendError

pytest.importorskip("onnxruntime")

TEXTS = ["hello world", "the cat is on the mat with the dog and a fish", "paris is a city"]
TASKS = {
    "bert-embedding": "feature-extraction",
    "bert-sequence-classification": "text-classification",
    "bert-token-classification": "token-classification",
    "vit-image-classification": "image-classification",
    "t5-seq2seq": "text2text-generation",
    "llama-causal-lm": "text-generation",
}


@pytest.fixture(scope="module", autouse=True)
def ort_cache(private_aikit_cache: Path) -> Path:
    """Exports go to a private cache: one export per tiny model per test module."""
    return private_aikit_cache


@pytest.fixture(scope="module")
def pairs(tiny_model_dir: Any) -> dict[str, tuple[aikit.Model, aikit.Model]]:
    out = {}
    for kind, task in TASKS.items():
        torch_model = aikit.Model.load(tiny_model_dir(kind), task=task, threads=1)
        out[kind] = (torch_model, torch_model.to("onnxruntime", threads=1))
    return out


def _inputs(kind: str) -> list[Any]:
    if kind.startswith("vit"):
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (32 + 8 * i, 40, 3), dtype=np.uint8) for i in range(3)]
    return TEXTS


@pytest.mark.parametrize("kind", list(TASKS))
def test_predictions_match_torch(pairs: dict[str, tuple[aikit.Model, aikit.Model]], kind: str) -> None:
    torch_model, ort_model = pairs[kind]
    assert ort_model.backend_name == "onnxruntime" and torch_model.backend_name == "torch"
    options = {"max_new_tokens": 8} if TASKS[kind].endswith("generation") else {}
    expected = torch_model.predict(_inputs(kind), **options)
    got = ort_model.predict(_inputs(kind), **options)
    for a, b in zip(expected, got):
        if kind == "bert-embedding":
            np.testing.assert_allclose(a.vector, b.vector, atol=1e-5)
        elif TASKS[kind].endswith("generation"):
            assert a.token_ids == b.token_ids
        elif kind == "bert-token-classification":
            assert [(e.label, e.start, e.end) for e in a.entities] == [(e.label, e.start, e.end) for e in b.entities]
            np.testing.assert_allclose([e.score for e in a.entities], [e.score for e in b.entities], atol=1e-5)
        else:
            assert a.label == b.label
            np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), atol=1e-5)


def test_every_export_was_validated_and_encoders_fused(pairs: dict[str, tuple[aikit.Model, aikit.Model]]) -> None:
    for kind, (_, ort_model) in pairs.items():
        validation = ort_model.backend.facts["validation"]
        assert validation, kind
        assert (
            max(v for step in validation.values() for v in (step.values() if isinstance(step, dict) else [step])) < 1e-3
        )
    fusions = pairs["bert-embedding"][1].backend.describe()["fusions"]
    assert fusions.get("Attention") == 2 and fusions.get("SkipLayerNormalization") == 4


def test_decoder_steps_match_torch_on_a_left_padded_batch(pairs: dict[str, tuple[aikit.Model, aikit.Model]]) -> None:
    torch_model, ort_model = pairs["llama-causal-lm"]
    ids = np.array([[0, 0, 0, 30, 31, 32], [40, 41, 42, 43, 44, 45]], dtype=np.int64)
    mask = (np.arange(6)[None] >= np.array([[3], [0]])).astype(np.int64)
    # Logits first (tokens of a random tiny model are often one repeated id): the cache must carry them.
    np.testing.assert_allclose(
        torch_model.backend.forward({"input_ids": ids, "attention_mask": mask})["logits"][mask.astype(bool)],
        ort_model.backend.forward({"input_ids": ids, "attention_mask": mask})["logits"][mask.astype(bool)],
        atol=1e-4,
    )
    for options in (GenerationOptions(max_new_tokens=10), GenerationOptions(max_new_tokens=10, repetition_penalty=1.5)):
        a = np.stack(list(torch_model.backend.generate({"input_ids": ids, "attention_mask": mask}, options)))
        b = np.stack(list(ort_model.backend.generate({"input_ids": ids, "attention_mask": mask}, options)))
        np.testing.assert_array_equal(a, b)
    sampled = [
        np.stack(
            list(
                ort_model.backend.generate(
                    {"input_ids": ids, "attention_mask": mask},
                    GenerationOptions(max_new_tokens=6, do_sample=True, seed=3),
                )
            )
        )
        for _ in range(2)
    ]
    np.testing.assert_array_equal(sampled[0], sampled[1])  # seeded sampling is reproducible


def test_plain_cnn_parity() -> None:
    import torch

    from aikit.testing.tiny import TinyCNN  # type: ignore[attr-defined]

    torch.manual_seed(0)
    labels = [str(i) for i in range(10)]
    pre = aikit.ImagePreprocess(size=(8, 8), grayscale=True)
    torch_model = aikit.Model.from_module(TinyCNN(), task="image-classification", preprocess=pre, labels=labels)
    ort_model = torch_model.to("onnxruntime")
    images = [np.random.default_rng(i).integers(0, 256, (8, 8), dtype=np.uint8) for i in range(4)]
    for a, b in zip(torch_model.predict(images), ort_model.predict(images)):
        assert a.label == b.label
        assert abs(a.score - b.score) < 1e-5


def test_second_load_reuses_the_cached_export(
    tiny_model_dir: Any, ort_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tiny_model_dir("bert-sequence-classification")
    first = aikit.Model.load(path, backend="onnxruntime")
    entries = sorted(p.name for p in (ort_cache / "onnx").iterdir() if not p.name.startswith("."))
    import aikit_onnxruntime.export.build as build

    def no_export(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("exported again instead of using the cache")

    monkeypatch.setattr(build, "build_export", no_export)
    second = aikit.Model.load(path, backend="onnxruntime")
    assert second.backend.folder == first.backend.folder
    assert sorted(p.name for p in (ort_cache / "onnx").iterdir() if not p.name.startswith(".")) == entries
    assert second.predict("hello world").label == first.predict("hello world").label


def test_auto_keeps_torch_for_torch_models(tiny_model_dir: Any) -> None:
    assert aikit.Model.load(tiny_model_dir("bert-sequence-classification")).backend_name == "torch"


def test_export_that_does_not_reproduce_torch_names_the_output() -> None:
    import torch

    class Noisy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1) + torch.rand_like(x.flatten(1))

    model = aikit.Model.from_module(
        Noisy(), task="image-classification", preprocess=aikit.ImagePreprocess(size=(4, 4), grayscale=True)
    )
    with pytest.raises(BackendError, match=r"output 'logits' differs from torch by up to"):
        model.to("onnxruntime", backend_options={"cache": False})


def test_bad_backend_options_are_config_errors(tiny_model_dir: Any) -> None:
    from aikit.errors import ConfigError

    with pytest.raises(ConfigError, match="valid"):
        aikit.Model.load(
            tiny_model_dir("bert-sequence-classification"), backend="onnxruntime", backend_options={"provider": "x"}
        )
    with pytest.raises(ConfigError, match="not available"):
        aikit.Model.load(
            tiny_model_dir("bert-sequence-classification"),
            backend="onnxruntime",
            backend_options={"providers": ["NoSuchExecutionProvider"]},
        )


def test_threads_and_providers_reach_the_session(pairs: dict[str, tuple[aikit.Model, aikit.Model]]) -> None:
    ort_model = pairs["bert-sequence-classification"][1]
    info = ort_model.describe()
    assert info["threads"] == 1 and info["providers"] == ["CPUExecutionProvider"]
    assert ort_model.backend.sessions["model"].get_session_options().intra_op_num_threads == 1


def test_cuda_without_onnxruntime_gpu_is_a_clear_error(tiny_model_dir: Any) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA: see test_cuda_provider_runs")
    with pytest.raises(BackendError, match="onnxruntime-gpu"):
        aikit.Model.load(tiny_model_dir("bert-sequence-classification"), backend="onnxruntime", device="cuda")


@pytest.mark.gpu
def test_cuda_provider_runs(tiny_model_dir: Any) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("needs onnxruntime-gpu and an NVIDIA GPU")
    path = tiny_model_dir("bert-sequence-classification")
    gpu = aikit.Model.load(path, backend="onnxruntime", device="cuda")
    cpu = aikit.Model.load(path, backend="onnxruntime")
    assert "CUDAExecutionProvider" in gpu.describe()["providers"]
    np.testing.assert_allclose(
        list(gpu.predict("hello world").scores.values()), list(cpu.predict("hello world").scores.values()), atol=1e-4
    )
