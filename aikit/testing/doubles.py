"""Test doubles: ``MockBackend`` runs any task without torch, deterministically."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from typing_extensions import override

from aikit.contracts.backend import Arrays, Backend
from aikit.contracts.options import BackendOptions, GenerationOptions
from aikit.contracts.parts import ModelParts

__all__ = ["MockBackend"]


class MockBackend(Backend):
    """A backend that computes outputs from input ids with numpy, and records every call.

    ``forward`` returns ``last_hidden_state`` (ids embedded as sin/cos features of width
    ``hidden``) and per-sequence ``logits`` (``classes`` columns; so token-level tasks need a real
    model); ``generate`` yields ``(last id + step + 1) %
    vocab`` each step. Outputs depend only on inputs, so results are reproducible and checkable.
    It accepts the ``"torch"`` and ``"onnx"`` payloads without reading them.
    """

    name = "mock"
    description = "deterministic numpy test double"
    accepts = frozenset({"torch", "onnx"})
    can_generate = True
    priority = -100
    hidden: ClassVar[int] = 8
    classes: ClassVar[int] = 3
    vocab: ClassVar[int] = 128

    def __init__(self, options: BackendOptions | None = None) -> None:
        self.options = options or BackendOptions()
        self.calls: list[dict[str, NDArray[Any]]] = []

    @classmethod
    @override
    def from_parts(cls, parts: ModelParts, options: BackendOptions) -> Backend:
        return cls(options)

    @override
    def forward(self, inputs: Arrays) -> dict[str, NDArray[Any]]:
        self.calls.append({k: np.array(v) for k, v in inputs.items()})
        if "input_ids" in inputs:
            ids = inputs["input_ids"].astype(np.float32)
            width = np.arange(1, self.hidden + 1, dtype=np.float32)
            hidden = np.sin(ids[..., None] * width) + np.cos(ids[..., None] / width)
            logits = np.stack([hidden[..., i % self.hidden] for i in range(self.classes)], axis=-1)
            return {"last_hidden_state": hidden, "logits": logits.mean(axis=1)}
        pixels = next(iter(inputs.values())).astype(np.float32)
        flat = pixels.reshape(pixels.shape[0], -1)
        return {"logits": np.stack([flat[:, i :: self.classes].mean(axis=1) for i in range(self.classes)], axis=1)}

    @override
    def generate(self, inputs: Arrays, options: GenerationOptions) -> Iterator[NDArray[np.int64]]:
        self.calls.append({k: np.array(v) for k, v in inputs.items()})
        last = inputs["input_ids"][:, -1].astype(np.int64)
        for step in range(options.max_new_tokens):
            yield (last + step + 1) % self.vocab

    @override
    def save(self, directory: Path) -> dict[str, Any]:
        (directory / "mock.txt").write_text("mock backend: no weights\n", encoding="utf-8")
        return {"mock": True}

    @classmethod
    @override
    def load(cls, directory: Path, parts: ModelParts, state: Mapping[str, Any], options: BackendOptions) -> Backend:
        return cls(options)
