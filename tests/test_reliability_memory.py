"""The memory guard: a model that clearly cannot fit fails before loading, with the numbers.

The oversized models are real files: sparse files (their size is real to ``stat`` and to any reader,
but they take no disk space) larger than this machine's available memory.
"""

from __future__ import annotations

import json
import shutil
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import aikit
from aikit.model._resources import AVAILABLE_FRACTION, check_memory, estimate_load_bytes
from aikit.sysinfo import memory_available_bytes

AVAILABLE = memory_available_bytes()
pytestmark = pytest.mark.skipif(AVAILABLE is None, reason="the OS does not report available memory")


def sparse(path: Path, size: int, head: bytes = b"") -> Path:
    with path.open("wb") as f:
        f.write(head)
        f.truncate(size)
    return path


@pytest.fixture
def huge_folder(tmp_path: Path, tiny_model_dir: Callable[[str], Path]) -> Path:
    """A real tiny classifier folder whose weight file claims twice the available memory."""
    assert AVAILABLE is not None
    folder = Path(shutil.copytree(tiny_model_dir("bert-sequence-classification"), tmp_path / "huge"))
    sparse(folder / "model.safetensors", 2 * AVAILABLE)
    return folder


def test_an_oversized_folder_fails_early_with_the_numbers(huge_folder: Path) -> None:
    assert AVAILABLE is not None
    started = time.perf_counter()
    with pytest.raises(
        aikit.ResourceError, match=r"needs at least [\d.]+ GiB of memory .* only [\d.]+ GiB is available"
    ) as info:
        aikit.Model.load(huge_folder)
    assert time.perf_counter() - started < 30  # it did not read terabytes first
    error = info.value
    assert error.needed_bytes == 2 * AVAILABLE
    assert 0 < error.available_bytes < error.needed_bytes
    assert "model.safetensors" in str(error) and "AIKIT_SKIP_MEMORY_CHECK=1" in str(error)
    assert isinstance(error, aikit.ModelLoadError)  # callers catching load errors catch this too


def test_the_override_skips_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert AVAILABLE is not None
    path = sparse(tmp_path / "weights.pt", 2 * AVAILABLE)
    with pytest.raises(aikit.ResourceError):
        aikit.Model.load(path, task="image-classification")
    monkeypatch.setenv("AIKIT_SKIP_MEMORY_CHECK", "1")
    # Past the guard, the next check in line (no pickle without opt-in) is the one that refuses.
    with pytest.raises(aikit.UnsafeModelError):
        aikit.Model.load(path, task="image-classification")


def test_gguf_counts_the_dequantised_size(tmp_path: Path) -> None:
    """A quantised GGUF grows about 4x or more once de-quantised: a file of a third of the memory is too big."""
    assert AVAILABLE is not None
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 0)
    path = sparse(tmp_path / "model.gguf", AVAILABLE // 3, header)
    with pytest.raises(aikit.ResourceError, match="model.gguf"):
        aikit.Model.load(path)
    estimate = estimate_load_bytes(path)
    assert estimate is not None and estimate.needed == 4 * (AVAILABLE // 3)


def test_models_that_fit_load(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    folder = tiny_model_dir("bert-sequence-classification")
    model = aikit.Model.load(folder)
    artifact = model.save(tmp_path / "artifact")
    assert aikit.Model.load(artifact).predict("good") == model.predict("good")


def test_estimates_count_the_weights_a_loader_would_read(tmp_path: Path, tiny_model_dir: Callable[[str], Path]) -> None:
    folder = Path(shutil.copytree(tiny_model_dir("bert-sequence-classification"), tmp_path / "m"))
    weights = (folder / "model.safetensors").stat().st_size
    estimate = estimate_load_bytes(folder)
    assert estimate is not None and estimate.needed == weights
    assert [p.name for p in estimate.files] == ["model.safetensors"]
    (folder / "pytorch_model.bin").write_bytes(b"x" * 1000)  # ignored: safetensors win, as in the loader
    assert estimate_load_bytes(folder) == estimate
    (folder / "model.safetensors").unlink()
    only_bin = estimate_load_bytes(folder)
    assert only_bin is not None and only_bin.needed == 1000
    # not model folders or not paths: nothing to estimate, so nothing is refused
    plain = tmp_path / "plain"
    plain.mkdir()
    sparse(plain / "big.safetensors", 10 * (AVAILABLE or 1))
    assert estimate_load_bytes(plain) is not None and estimate_load_bytes(plain).needed == 0  # type: ignore[union-attr]
    assert estimate_load_bytes("org/name-in-hub-cache") is None
    assert estimate_load_bytes(object()) is None


def test_the_threshold(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({}), encoding="utf-8")
    sparse(folder / "model.safetensors", 900)
    check_memory(folder, available=1000)  # 90 %: allowed
    assert AVAILABLE_FRACTION == 0.9
    with pytest.raises(aikit.ResourceError) as info:
        check_memory(folder, available=999)
    assert (info.value.needed_bytes, info.value.available_bytes) == (900, 999)


def test_artifacts_are_checked_too(tmp_path: Path, tiny_model_dir: Callable[[str], Path]) -> None:
    artifact = aikit.Model.load(tiny_model_dir("bert-sequence-classification")).save(tmp_path / "a")
    size = (artifact / "model.safetensors").stat().st_size
    with pytest.raises(aikit.ResourceError):
        check_memory(artifact, available=size)
    check_memory(artifact, available=2 * size)
