"""Shared fixtures: aikit.testing's fixtures plus session-wide loads of the packaged real models."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["aikit.testing.fixtures"]

# Nothing in the suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@contextlib.contextmanager
def _aikit_cache_at(path: Path) -> Iterator[Path]:
    """``AIKIT_CACHE_DIR`` set to ``path`` inside the block, restored after it."""
    before = os.environ.get("AIKIT_CACHE_DIR")
    os.environ["AIKIT_CACHE_DIR"] = str(path)
    try:
        yield path
    finally:
        if before is None:
            os.environ.pop("AIKIT_CACHE_DIR", None)
        else:
            os.environ["AIKIT_CACHE_DIR"] = before


@pytest.fixture(scope="session", autouse=True)
def session_aikit_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The whole run uses its own aikit cache (exports and conversions are shared between its tests), so
    the suite neither writes into the developer's cache nor depends on what an earlier run left there."""
    with _aikit_cache_at(tmp_path_factory.mktemp("session_aikit_cache")) as path:
        yield path


@pytest.fixture(scope="module")
def private_aikit_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``AIKIT_CACHE_DIR`` at a fresh folder for one test module (exports, conversions)."""
    with _aikit_cache_at(tmp_path_factory.mktemp("aikit_cache")) as path:
        yield path


@pytest.fixture(scope="session")
def minilm_path() -> Any:
    from aikit.defaults import default_model_path

    return default_model_path("minilm")


@pytest.fixture(scope="session")
def smollm2_path() -> Any:
    from aikit.defaults import default_model_path

    return default_model_path("smollm2")


@pytest.fixture(scope="session")
def minilm(minilm_path: Any) -> Any:
    """all-MiniLM-L6-v2 on the torch backend, loaded once per test session."""
    import aikit

    return aikit.Model.load(minilm_path, task="feature-extraction")


@pytest.fixture(scope="session")
def smollm2(smollm2_path: Any) -> Iterator[Any]:
    """SmolLM2-135M-Instruct (GGUF, de-quantised) on the torch backend, loaded once per session."""
    import aikit

    yield aikit.Model.load(smollm2_path, backend="torch")  # the tests compare against the float32 torch model


@pytest.fixture
def aikit_redact() -> Iterator[Any]:
    """The example input-redaction plugin (examples/plugins/aikit-redact), importable for one test."""
    import sys
    from pathlib import Path

    path = str(Path(__file__).resolve().parents[1] / "examples" / "plugins" / "aikit-redact" / "src")
    sys.path.insert(0, path)
    try:
        import aikit_redact

        yield aikit_redact
    finally:
        sys.path.remove(path)
