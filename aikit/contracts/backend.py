"""The backend contract: a short ABC that every runtime (torch, ONNX Runtime, CUDA) implements.

A backend owns runnable weights. It receives ready-made arrays from the task and returns arrays;
it never sees raw text or images. Example of a complete (if useless) backend (``override`` is
``typing_extensions.override``: mypy then reports a method that no longer overrides anything)::

    class EchoBackend(Backend):
        name = "echo"
        accepts = frozenset({"torch"})

        @classmethod
        @override
        def from_parts(cls, parts, options):
            return cls()

        @override
        def forward(self, inputs):
            return {"logits": inputs["input_ids"].astype("float32")}

        @override
        def save(self, directory):
            return {}

        @classmethod
        @override
        def load(cls, directory, parts, state, options):
            return cls()

``aikit.testing.MockBackend`` is a fuller example used by aikit's own tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from aikit.errors import BackendError

if TYPE_CHECKING:
    from aikit.contracts.options import BackendOptions, GenerationOptions
    from aikit.contracts.parts import ModelParts
    from aikit.contracts.strategy import CompressionConfig

__all__ = ["Arrays", "Backend", "StepDecoder"]

Arrays = Mapping[str, NDArray[Any]]


class Backend(ABC):
    """A runtime that executes one model.

    Capabilities are class attributes so that they can be checked before any work starts:

    - ``name``: the registered name (``Model.load(..., backend=name)``).
    - ``accepts``: the ``ModelParts.payload`` kinds ``from_parts`` can consume (``"torch"``, ``"onnx"``).
    - ``can_generate``: whether ``generate`` is implemented.
    - ``priority``: order for ``backend="auto"`` among available backends (higher first).
    - ``devices``: device kinds it runs on (``"cpu"``, ``"cuda"``), matched against ``device=``.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    accepts: ClassVar[frozenset[str]] = frozenset()
    can_generate: ClassVar[bool] = False
    priority: ClassVar[int] = 0
    devices: ClassVar[frozenset[str]] = frozenset({"cpu"})

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Return why this backend cannot run on this machine, or None when it can."""
        return None

    @classmethod
    @abstractmethod
    def from_parts(cls, parts: ModelParts, options: BackendOptions) -> Backend:
        """Build a ready-to-run backend from freshly loaded parts (payload in ``accepts``)."""

    @classmethod
    def from_loaded_parts(
        cls, parts: ModelParts, options: BackendOptions
    ) -> tuple[Backend, tuple[CompressionConfig, ...]]:
        """The backend ``Model.load`` builds for freshly loaded ``parts``: ``from_parts`` by default.

        A backend may instead build a form of the model that loses nothing against the loaded
        weights (ONNX Runtime runs a GGUF file's own quantized blocks, which is what the file
        holds) and return the configs that describe it: the model records them as its
        transformations, as ``compress`` would, and drops its torch module like a compressed one.
        ``Model.to`` always uses ``from_parts``. A deferred module (``ModelParts.module_loader``)
        is built here before ``from_parts``; an override builds it only where it needs it.
        """
        parts.require_module()
        return cls.from_parts(parts, options), ()

    @abstractmethod
    def forward(self, inputs: Arrays) -> dict[str, NDArray[Any]]:
        """Run one batch. Inputs and outputs are numpy arrays keyed by name (``input_ids``, ``logits``...)."""

    def generate(self, inputs: Arrays, options: GenerationOptions) -> Iterator[NDArray[np.int64]]:
        """Decode new tokens for a batch of prompts, yielding one ``(batch,)`` array of ids per step.

        The caller stops consuming when every sequence has finished; the iterator must then
        release its resources (use ``try/finally``). Only called when ``can_generate`` is true.
        """
        raise BackendError(f"backend {self.name!r} cannot generate text")
        yield  # pragma: no cover - makes this a generator

    @abstractmethod
    def save(self, directory: Path) -> dict[str, Any]:
        """Write the weights into ``directory`` (safetensors or ONNX, never pickle).

        Return a JSON-serialisable state that ``load`` receives back from the manifest.
        """

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, parts: ModelParts, state: Mapping[str, Any], options: BackendOptions) -> Backend:
        """Restore a backend from an artifact folder written by ``save`` (files already verified)."""

    def step_decoder(self) -> StepDecoder | None:
        """A decoder that sequences can join and leave between steps (continuous batching), or None.

        ``aikit serve`` uses it so that a new request joins a running decode instead of waiting for
        it. A new one each call; one thread drives it. The default (None) means the backend only
        decodes whole batches with ``generate``.
        """
        return None

    def torch_module(self) -> Any:
        """The ``torch.nn.Module`` this backend runs, or None. Torch-based strategies need it."""
        return None

    def weight_bytes(self) -> int | None:
        """Bytes of weights this backend stores in an artifact, or None when it cannot tell.

        The default counts the torch module's tensors (shared tensors once); backends that run
        files, such as ONNX graphs, override it. Compression reports use it for sizes.
        """
        module = self.torch_module()
        if module is None:
            return None
        return state_bytes(module)

    def with_module(self, module: Any) -> Backend:
        """Return a new backend of the same kind running ``module`` (for torch-based strategies)."""
        raise BackendError(f"backend {self.name!r} does not run torch modules")

    def describe(self) -> dict[str, Any]:
        """Facts for reports and ``/info``: device, dtype, threads, providers..."""
        return {"backend": self.name}


class StepDecoder(ABC):
    """Decoding in which sequences join and leave between steps (continuous, in-flight batching).

    One thread drives it: ``join`` runs a prompt's prefill and returns the sequence's slot and its
    first new token; ``step`` advances every joined sequence by one token and returns each slot's
    next token; ``leave`` frees a slot (the caller decides when a sequence is finished). Tokens
    follow ``Backend.generate``'s contract: greedy is the argmax of the last position's logits, so a
    sequence gets the tokens it would get decoded alone, up to the float rounding of kernels run
    on a batch of another size.
    """

    @abstractmethod
    def join(self, prompt_ids: Sequence[int], options: GenerationOptions) -> tuple[int, int]:
        """Prefill ``prompt_ids``; return ``(slot, first_token)``. Raises on a prompt it cannot hold."""

    @abstractmethod
    def step(self) -> dict[int, int]:
        """One decoding step for every joined sequence: ``{slot: next_token}`` (empty when none)."""

    @abstractmethod
    def leave(self, slot: int) -> None:
        """Forget ``slot``'s sequence and free what it held (idempotent)."""

    @property
    @abstractmethod
    def active(self) -> int:
        """Sequences joined and not yet left."""


def state_bytes(module: Any) -> int:
    """Bytes of tensor data the torch backend's safetensors file holds (shared tensors once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for value in module.state_dict().values():
        for tensor in _storage_tensors(value):
            key = (tensor.untyped_storage().data_ptr(), tensor.nbytes)
            if key not in seen:
                seen.add(key)
                total += tensor.nbytes
    return total


def _storage_tensors(tensor: Any) -> list[Any]:
    """The plain tensors holding ``tensor``'s data: itself, or a tensor subclass's inner tensors (torchao)."""
    import torch

    if type(tensor) in (torch.Tensor, torch.nn.Parameter) or not hasattr(tensor, "__tensor_flatten__"):
        return [tensor]
    names = tensor.__tensor_flatten__()[0]
    return [t for n in names for t in _storage_tensors(getattr(tensor, n)) if isinstance(t, torch.Tensor)]
