"""aikit's ONNX Runtime plugin: the ``onnxruntime`` backend, the ``.onnx`` loader and ORT-native compression."""

from __future__ import annotations

from collections.abc import Callable

from aikit import Backend, BackendOptions, Candidate, Loader, Model, ModelParts, Strategy, Task, hookimpl
from aikit_onnxruntime.backend import OrtBackend
from aikit_onnxruntime.loader import OnnxFileLoader

__version__ = "0.1.0"
__all__ = ["OnnxFileLoader", "OrtBackend"]


@hookimpl
def aikit_register_backends(register: Callable[[type[Backend]], None]) -> None:
    register(OrtBackend)


@hookimpl
def aikit_choose_backend(
    parts: ModelParts, task: type[Task], candidates: list[str], options: BackendOptions
) -> str | None:
    """A GGUF file on the CPU runs on onnxruntime with its own blocks (see ``aikit_onnxruntime.gguf.load``)."""
    if OrtBackend.name not in candidates or parts.source.kind != "gguf":
        return None
    from aikit_onnxruntime.gguf.load import prefers_native

    return OrtBackend.name if prefers_native(parts, task, options) else None


@hookimpl
def aikit_register_loaders(register: Callable[[type[Loader]], None]) -> None:
    register(OnnxFileLoader)


@hookimpl
def aikit_register_strategies(register: Callable[[type[Strategy]], None]) -> None:
    from aikit_onnxruntime.compress.strategies import STRATEGIES
    from aikit_onnxruntime.gguf.strategy import OrtGgufNativeStrategy

    for strategy in STRATEGIES:
        register(strategy)
    register(OrtGgufNativeStrategy)


@hookimpl
def aikit_optimize_candidates(model: Model, propose: Callable[[Candidate], None]) -> None:
    from aikit_onnxruntime.candidates import propose_candidates
    from aikit_onnxruntime.gguf.candidates import propose_gguf_candidates

    propose_gguf_candidates(model, propose)  # first: the file's own weights, when the model came from a GGUF
    propose_candidates(model, propose)
