"""aikit's built-in model formats, registered through the same hook a third-party plugin uses."""

from __future__ import annotations

from collections.abc import Callable

from aikit import Loader, hookimpl

from .artifact import ArtifactLoader, ModuleLoader
from .gguf import GgufLoader
from .huggingface import HubCacheLoader, HuggingFaceFolderLoader
from .pickled import PickleWeightsLoader

__version__ = "0.1.0"

LOADERS: tuple[type[Loader], ...] = (
    ArtifactLoader,
    ModuleLoader,
    GgufLoader,
    PickleWeightsLoader,
    HuggingFaceFolderLoader,
    HubCacheLoader,
)


@hookimpl
def aikit_register_loaders(register: Callable[[type[Loader]], None]) -> None:
    for loader in LOADERS:
        register(loader)
