"""pytest fixtures for plugin authors: ``pytest_plugins = ["aikit.testing.fixtures"]``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aikit.plugins.host import PluginHost
from aikit.testing import fresh_host, save_tiny_model


@pytest.fixture
def aikit_host() -> Iterator[PluginHost]:
    """A fresh plugin host with the installed plugins; add fakes with ``aikit_host.add_plugin``."""
    with fresh_host() as host:
        yield host


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``tiny_model_dir(kind)`` → a folder holding a tiny model of that kind (built once per session)."""
    cache: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in cache:
            cache[kind] = save_tiny_model(tmp_path_factory.mktemp(kind.replace("-", "_")), kind)
        return cache[kind]

    return make
