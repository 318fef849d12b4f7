"""aikit's PyTorch CPU backend, registered through the same hook a third-party plugin uses."""

from __future__ import annotations

from collections.abc import Callable

from aikit import Backend, hookimpl

from .backend import TorchBackend

__version__ = "0.1.0"
__all__ = ["TorchBackend"]


@hookimpl
def aikit_register_backends(register: Callable[[type[Backend]], None]) -> None:
    register(TorchBackend)
