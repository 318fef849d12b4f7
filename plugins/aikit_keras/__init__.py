"""Keras 3 models for aikit: the ``.keras`` loader (safe mode) and the ``keras`` backend.

Registered through the ``aikit`` entry point ``keras``. Importing this plugin does not import
Keras: that happens on the first ``.keras`` load, with ``KERAS_BACKEND=torch`` (see ``_import``).
Needs the ``keras`` extra: ``pip install 'aikit[keras]'``.
"""

from __future__ import annotations

from collections.abc import Callable

from aikit import Backend, Loader, Task, hookimpl
from aikit.contracts.parts import ModelParts

from .backend import KerasBackend
from .loader import KERAS_EXTRA, KerasFileLoader

__version__ = "0.1.0"
__all__ = ["KerasBackend", "KerasFileLoader"]


@hookimpl
def aikit_register_loaders(register: Callable[[type[Loader]], None]) -> None:
    register(KerasFileLoader)


@hookimpl
def aikit_register_backends(register: Callable[[type[Backend]], None]) -> None:
    register(KerasBackend)


@hookimpl
def aikit_choose_backend(parts: ModelParts, task: type[Task], candidates: list[str]) -> str | None:
    """Keras models run on the ``keras`` backend when ``backend="auto"``."""
    if KERAS_EXTRA in parts.extras and KerasBackend.name in candidates:
        return KerasBackend.name
    return None
