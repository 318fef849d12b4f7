"""Save / load round trips for every task, manifest contents, and the atomic write."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit
from aikit.model.artifact import DIGEST_NAME, FORMAT_VERSION, MANIFEST_NAME, hash_file

TinyDir = Callable[[str], Path]
CASES = [
    ("bert-embedding", "feature-extraction", ["hello world", "good"], {}),
    ("bert-sequence-classification", None, ["good movie", "bad"], {}),
    ("bert-token-classification", None, ["john in paris"], {}),
    ("llama-causal-lm", None, ["hello", "the cat"], {"max_new_tokens": 5}),
    ("t5-seq2seq", None, ["the dog"], {"max_new_tokens": 4}),
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, aikit.Embedding):
        return bool(np.array_equal(a.vector, b.vector))
    return bool(a == b)


@pytest.mark.parametrize(("kind", "task", "inputs", "options"), CASES, ids=[c[0] for c in CASES])
def test_round_trip_is_bit_for_bit(
    tiny_model_dir: TinyDir, tmp_path: Path, kind: str, task: str | None, inputs: list[str], options: dict[str, Any]
) -> None:
    model = aikit.Model.load(tiny_model_dir(kind), task=task)
    before = model.predict(inputs, **options)
    path = model.save(tmp_path / "art")
    again = aikit.Model.load(path)
    assert again.task_name == model.task_name and again.backend_name == model.backend_name
    assert _same(before, again.predict(inputs, **options))


def test_image_round_trip(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    model = aikit.Model.load(tiny_model_dir("vit-image-classification"))
    image = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    model.save(tmp_path / "vit")
    assert aikit.Model.load(tmp_path / "vit").predict(image) == model.predict(image)


def test_manifest_records_everything(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    src = tiny_model_dir("bert-embedding")
    aikit.Model.load(src, task="feature-extraction").save(tmp_path / "a")
    manifest = json.loads((tmp_path / "a" / MANIFEST_NAME).read_text())
    assert manifest["format_version"] == FORMAT_VERSION == 2
    # the manifest's own digest, in the format `sha256sum -c` checks
    digest = (tmp_path / "a" / DIGEST_NAME).read_text()
    assert digest == f"{hash_file(tmp_path / 'a' / MANIFEST_NAME)}  {MANIFEST_NAME}\n"
    assert DIGEST_NAME not in manifest["files"] and MANIFEST_NAME not in manifest["files"]
    assert manifest["task"] == "feature-extraction" and manifest["backend"] == "torch"
    assert manifest["task_state"] == {"pooling": "mean", "normalize": True, "max_seq_length": 48}
    assert manifest["source"]["kind"] == "huggingface"
    assert manifest["source"]["sha256"] == hash_file(src / "model.safetensors")
    assert manifest["transformations"] == []
    assert {"aikit", "torch", "transformers", "python"} <= set(manifest["versions"])
    for name, digest in manifest["files"].items():
        assert hash_file(tmp_path / "a" / name) == digest
    assert "model.safetensors" in manifest["files"]
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in manifest["files"])


def test_plain_module_round_trip_with_image_preprocess(tmp_path: Path) -> None:
    import torch

    from aikit.testing.tiny import TinyCNN

    torch.manual_seed(0)
    model = aikit.Model.from_module(
        TinyCNN(),
        task="image-classification",
        preprocess=aikit.ImagePreprocess(size=(8, 8), grayscale=True),
        labels=list("0123456789"),
    )
    image = np.random.default_rng(0).integers(0, 255, size=(8, 8)).astype(np.uint8)
    model.save(tmp_path / "cnn")
    # the ImagePreprocess and labels are data and come back; the network is code and comes from the caller
    again = aikit.Model.load(tmp_path / "cnn", module=TinyCNN())
    assert again.predict(image) == model.predict(image)
    assert again.labels == list("0123456789")


def test_plain_module_artifact_needs_the_module_argument_even_when_its_class_is_imported(tmp_path: Path) -> None:
    import torch

    from aikit.testing.tiny import TinyCNN

    model = aikit.Model.from_module(
        TinyCNN(), task="image-classification", preprocess=aikit.ImagePreprocess(size=(8, 8), grayscale=True)
    )
    model.save(tmp_path / "cnn")
    manifest = json.loads((tmp_path / "cnn" / MANIFEST_NAME).read_text())
    assert manifest["backend_state"]["module"] == {"kind": "python", "class": "aikit.testing.tiny:TinyCNN"}
    with pytest.raises(aikit.ModelLoadError, match=r"class `aikit\.testing\.tiny:TinyCNN`.*module=YourNet"):
        aikit.Model.load(tmp_path / "cnn")  # TinyCNN is imported here, and still not built from the manifest
    net = TinyCNN()
    loaded = aikit.Model.load(tmp_path / "cnn", module=net)
    assert loaded.backend.torch_module() is net
    assert isinstance(net, torch.nn.Module)


def _scale(image: Any) -> Any:
    return np.asarray(image, dtype=np.float32)[None] / 255.0


def test_a_preprocess_function_is_recorded_by_name_and_must_be_passed_again(tmp_path: Path) -> None:
    from aikit.testing.tiny import TinyCNN

    model = aikit.Model.from_module(TinyCNN(), task="image-classification", preprocess=_scale)
    model.save(tmp_path / "cnn")
    manifest = json.loads((tmp_path / "cnn" / MANIFEST_NAME).read_text())
    assert manifest["task_state"]["preprocess"] == f"{__name__}:_scale"
    with pytest.raises(aikit.ModelLoadError, match=rf"preprocess function `{__name__}:_scale`.*preprocess="):
        aikit.Model.load(tmp_path / "cnn", module=TinyCNN())
    image = np.random.default_rng(0).integers(0, 255, size=(8, 8)).astype(np.uint8)
    again = aikit.Model.load(tmp_path / "cnn", module=TinyCNN(), preprocess=_scale)
    assert again.predict(image).label == again.predict(image).label


def test_save_replaces_an_earlier_artifact_but_never_other_folders(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
    model.save(tmp_path / "out")
    model.save(tmp_path / "out")  # replacing our own artifact is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporaries left behind
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"x")
    with pytest.raises(aikit.ArtifactError, match="not empty and holds no aikit.json"):
        model.save(other)
    assert (other / "cat.jpg").read_bytes() == b"x"


def test_failed_save_leaves_previous_artifact_intact(
    tiny_model_dir: TinyDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
    model.save(tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}

    def explode(directory: Path) -> dict[str, Any]:
        (directory / "model.safetensors").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(model.backend, "save", explode)
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "out")
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_artifacts_do_not_depend_on_earlier_predictions(tiny_model_dir: TinyDir, tmp_path: Path) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
    model.save(tmp_path / "fresh")
    model.predict(["good movie"], max_length=5)  # leaves truncation state in the fast tokenizer
    model.save(tmp_path / "used")
    fresh = json.loads((tmp_path / "fresh" / MANIFEST_NAME).read_text())["files"]
    used = json.loads((tmp_path / "used" / MANIFEST_NAME).read_text())["files"]
    assert fresh == used
