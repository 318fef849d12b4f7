"""Safe loading: no pickle without an opt-in (and then weights only), no remote code, validated headers.

The attack files are real: a pickle whose ``__reduce__`` runs ``os.system`` to create a marker
file, and a model folder whose ``configuration_*.py`` creates a marker when imported. Each test
checks both the error and that the marker was never created.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aikit
from aikit.testing import save_tiny_model

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


class _Payload:
    """Unpickling this runs a shell command: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def write_malicious(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"weight": _Payload(marker)}, protocol=2))
    return path


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "code inside a model file ran"


@pytest.fixture
def cnn() -> Any:
    import torch

    from aikit.testing.tiny import TinyCNN

    torch.manual_seed(0)
    return TinyCNN()


def test_the_attack_file_is_real(tmp_path: Path) -> None:
    """Guard for the tests below: plain unpickling of the file does run the command."""
    marker = tmp_path / "ran"
    with write_malicious(tmp_path / "evil.pt", marker).open("rb") as f:
        pickle.load(f)
    assert marker.exists()


# ------------------------------------------------------------------ single pickle-based weight files


@pytest.mark.parametrize("suffix", PICKLE_SUFFIXES)
def test_pickle_files_are_refused_without_opt_in(tmp_path: Path, marker: Path, cnn: Any, suffix: str) -> None:
    path = write_malicious(tmp_path / f"weights{suffix}", marker)
    with pytest.raises(aikit.UnsafeModelError, match="unpickling can run arbitrary code.*allow_pickle=True") as info:
        aikit.Model.load(path, task="image-classification", module=cnn)
    assert info.value.source == path.resolve()


@pytest.mark.parametrize("suffix", PICKLE_SUFFIXES)
def test_with_opt_in_only_tensors_are_unpickled(tmp_path: Path, marker: Path, cnn: Any, suffix: str) -> None:
    path = write_malicious(tmp_path / f"weights{suffix}", marker)
    with pytest.raises(aikit.UnsafeModelError, match=r"holds more than tensors.*GLOBAL posix\.system"):
        aikit.Model.load(path, task="image-classification", module=cnn, allow_pickle=True)


def test_with_opt_in_a_state_dict_loads_into_the_given_module(tmp_path: Path, cnn: Any) -> None:
    import torch

    from aikit.testing.tiny import TinyCNN

    path = tmp_path / "cnn.pt"
    torch.save(cnn.state_dict(), path)
    preprocess = aikit.ImagePreprocess(size=(8, 8), grayscale=True)
    image = np.random.default_rng(0).integers(0, 255, (8, 8)).astype(np.uint8)
    expected = aikit.Model.from_module(cnn, task="image-classification", preprocess=preprocess).predict(image)
    fresh = TinyCNN()  # different random weights until the file is loaded into it
    model = aikit.Model.load(path, task="image-classification", module=fresh, preprocess=preprocess, allow_pickle=True)
    assert model.backend.torch_module() is fresh
    assert model.predict(image) == expected
    assert model.describe()["source"]["kind"] == "pickle-weights"


def test_a_lightning_style_checkpoint_is_unwrapped(tmp_path: Path, cnn: Any) -> None:
    import torch

    from aikit.testing.tiny import TinyCNN

    path = tmp_path / "epoch=3.ckpt"
    torch.save({"epoch": 3, "state_dict": cnn.state_dict(), "optimizer_states": []}, path)
    model = aikit.Model.load(path, task="image-classification", module=TinyCNN(), allow_pickle=True)
    loaded = model.backend.torch_module().state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in cnn.state_dict().items())


def test_a_state_dict_needs_a_module_and_must_fit_it(tmp_path: Path, cnn: Any) -> None:
    import torch

    path = tmp_path / "cnn.pth"
    torch.save(cnn.state_dict(), path)
    with pytest.raises(aikit.ModelLoadError, match="holds only weights.*pass module=YourNet"):
        aikit.Model.load(path, task="image-classification", allow_pickle=True)
    with pytest.raises(aikit.ModelLoadError, match="do not fit the given module"):
        aikit.Model.load(path, task="image-classification", module=torch.nn.Linear(3, 2), allow_pickle=True)


def test_a_pickled_whole_module_is_refused_even_with_opt_in(tmp_path: Path, cnn: Any) -> None:
    """``torch.save(model)`` pickles the class by reference: weights_only refuses it."""
    import torch

    from aikit.testing.tiny import TinyCNN

    path = tmp_path / "whole.pt"
    torch.save(cnn, path)
    with pytest.raises(aikit.UnsafeModelError, match="holds more than tensors"):
        aikit.Model.load(path, task="image-classification", module=TinyCNN(), allow_pickle=True)


# ------------------------------------------------------------------ Hugging Face folders


@pytest.fixture
def pickled_folder(tmp_path: Path) -> Path:
    """A tiny classifier folder whose weights are only ``pytorch_model.bin``."""
    import torch
    from safetensors.torch import load_file

    folder = save_tiny_model(tmp_path / "bin_only", "bert-sequence-classification")
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    return folder


def test_a_folder_with_only_pickled_weights_is_refused(pickled_folder: Path) -> None:
    with pytest.raises(aikit.UnsafeModelError, match=r"only pickle-based weights \(pytorch_model\.bin\)"):
        aikit.Model.load(pickled_folder)


def test_a_folder_with_pickled_weights_loads_with_opt_in(
    pickled_folder: Path, tiny_model_dir: Callable[[str], Path]
) -> None:
    model = aikit.Model.load(pickled_folder, allow_pickle=True)
    reference = aikit.Model.load(tiny_model_dir("bert-sequence-classification"))
    assert model.predict("good movie") == reference.predict("good movie")


def test_a_malicious_folder_is_refused_even_with_opt_in(pickled_folder: Path, marker: Path) -> None:
    write_malicious(pickled_folder / "pytorch_model.bin", marker)
    with pytest.raises(aikit.UnsafeModelError, match=r"hold more than tensors.*posix\.system"):
        aikit.Model.load(pickled_folder, allow_pickle=True)


def test_safetensors_win_over_pickled_files_in_the_same_folder(
    tmp_path: Path, marker: Path, tiny_model_dir: Callable[[str], Path]
) -> None:
    folder = Path(shutil.copytree(tiny_model_dir("bert-sequence-classification"), tmp_path / "both"))
    write_malicious(folder / "pytorch_model.bin", marker)
    assert aikit.Model.load(folder).predict("good").label in ("negative", "positive")


# ------------------------------------------------------------------ remote code


@pytest.fixture
def remote_code_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A folder whose config maps to Python files shipped next to it; importing them leaves a marker."""
    from safetensors.numpy import save_file

    folder = tmp_path / "custom"
    folder.mkdir()
    ran = tmp_path / "REMOTE_CODE_RAN"
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "aikit-test-custom",
                "architectures": ["CustomForSequenceClassification"],
                "auto_map": {
                    "AutoConfig": "configuration_custom.CustomConfig",
                    "AutoModelForSequenceClassification": "modeling_custom.CustomForSequenceClassification",
                },
            }
        ),
        encoding="utf-8",
    )
    (folder / "configuration_custom.py").write_text(
        f"import pathlib\npathlib.Path({str(ran)!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig\n\n\nclass CustomConfig(PretrainedConfig):\n"
        "    model_type = 'aikit-test-custom'\n",
        encoding="utf-8",
    )
    save_file({"w": np.zeros(2, np.float32)}, str(folder / "model.safetensors"))
    return folder, ran


def test_remote_code_is_refused_by_default(remote_code_folder: tuple[Path, Path]) -> None:
    folder, ran = remote_code_folder
    with pytest.raises(
        aikit.UnsafeModelError, match=r"custom Python code.*configuration_custom\.py.*trust_remote_code=True"
    ):
        aikit.Model.load(folder)
    assert not ran.exists()


def test_trust_remote_code_really_runs_it(remote_code_folder: tuple[Path, Path]) -> None:
    """Guard for the test above: the folder does need remote code, and the opt-in runs it."""
    folder, ran = remote_code_folder
    try:
        with pytest.raises(aikit.ModelLoadError):  # modeling_custom.py is absent: the import stops there
            aikit.Model.load(folder, trust_remote_code=True)
        assert ran.exists()
    finally:
        for name in [m for m in sys.modules if "configuration_custom" in m]:
            del sys.modules[name]


# ------------------------------------------------------------------ GGUF header validation


def _gguf(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a GGUF file"),
        (b"GGU", "not a GGUF file"),
        (b"PK\x03\x04" + b"\0" * 60, "not a GGUF file"),  # a zip (or a pickle, or anything) renamed .gguf
        (b"GGUF" + struct.pack("<I", 1) + b"\0" * 16, "unsupported GGUF version 1"),
        (b"GGUF" + struct.pack("<I", 99) + b"\0" * 16, "unsupported GGUF version 99"),
    ],
    ids=["empty", "short", "zip", "version-1", "version-99"],
)
def test_gguf_headers_are_validated_before_parsing(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(aikit.ModelLoadError, match=message):
        aikit.Model.load(_gguf(tmp_path, data))


def test_a_truncated_gguf_body_is_a_load_error(tmp_path: Path) -> None:
    header = b"GGUF" + struct.pack("<IQQ", 3, 10**6, 10**6)  # claims a million tensors, then ends
    with pytest.raises(aikit.ModelLoadError, match="cannot read"):
        aikit.Model.load(_gguf(tmp_path, header))


def test_a_gguf_cut_inside_its_metadata_is_a_load_error(tmp_path: Path) -> None:
    """Plausible counts, but the file ends inside a metadata string: the parser's error is wrapped."""
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + struct.pack("<Q", 1000) + b"general.arch"
    with pytest.raises(aikit.ModelLoadError, match="cannot read"):
        aikit.Model.load(_gguf(tmp_path, data))


def test_the_packaged_gguf_passes_the_header_check(smollm2_path: Path) -> None:
    from aikit_formats.gguf import check_gguf

    check_gguf(Path(smollm2_path))  # a real file is not refused by the plausibility bound


def test_a_corrupt_safetensors_file_is_a_load_error(tmp_path: Path, tiny_model_dir: Callable[[str], Path]) -> None:
    folder = Path(shutil.copytree(tiny_model_dir("bert-sequence-classification"), tmp_path / "corrupt"))
    (folder / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(aikit.ModelLoadError, match="cannot read the weights"):
        aikit.Model.load(folder)
