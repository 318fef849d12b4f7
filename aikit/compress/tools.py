"""Torch helpers shared by compression strategy plugins (imports torch: never import from ``aikit``'s top level).

- module surgery: ``copy_module``, ``set_module``, ``linear_names``;
- what a strategy leaves behind for the report: the ``QuantizedWeight`` protocol;
- calibration passes: ``run_calibration`` feeds the collated batches of a ``CompressionContext``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from aikit.contracts.backend import Backend
from aikit.contracts.strategy import CompressionContext
from aikit.errors import CompressionError

__all__ = [
    "QuantizedWeight",
    "add_note",
    "copy_module",
    "linear_at",
    "linear_names",
    "module_of",
    "run_calibration",
    "set_module",
    "tie_free",
    "to_tensors",
]


@runtime_checkable
class QuantizedWeight(Protocol):
    """A module that replaced a Linear/Embedding and can give back its weight in fp32 (for reports)."""

    def dequantized_weight(self) -> torch.Tensor: ...


def module_of(backend: Backend, strategy: str) -> nn.Module:
    """The torch module behind ``backend`` or a ``CompressionError`` saying which backends work."""
    module = backend.torch_module()
    if not isinstance(module, nn.Module):
        raise CompressionError(
            f"strategy {strategy!r} needs a torch module, but backend {backend.name!r} holds none; "
            "load the model with backend='torch', compress it, then convert with model.to(...)"
        )
    return module


def copy_module(module: nn.Module) -> nn.Module:
    """A deep copy in eval mode: strategies never touch the caller's weights."""
    return copy.deepcopy(module).eval()


def set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the submodule at dotted ``name`` with ``new``."""
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def linear_at(root: nn.Module, name: str) -> nn.Linear:
    """The ``nn.Linear`` at dotted ``name`` (typed access for strategies)."""
    module = root.get_submodule(name)
    if not isinstance(module, nn.Linear):
        raise CompressionError(f"{name} is a {type(module).__name__}, not a Linear layer")
    return module


def linear_names(module: nn.Module, exclude: Iterable[str] = ()) -> list[str]:
    """Qualified names of every ``nn.Linear`` not in ``exclude`` (in module order)."""
    skip = set(exclude)
    return [n for n, m in module.named_modules() if isinstance(m, nn.Linear) and n not in skip]


def tie_free(module: nn.Module) -> None:
    """Untie input/output embeddings (a quantized head can no longer share the embedding tensor).

    Sets ``config.tie_word_embeddings = False`` so the saved config rebuilds an untied skeleton,
    and gives the output layer its own copy of the weight.
    """
    config = getattr(module, "config", None)
    if config is None or not getattr(config, "tie_word_embeddings", False):
        return
    config.tie_word_embeddings = False
    text_config = getattr(config, "get_text_config", None)
    if callable(text_config):
        inner = text_config()
        if inner is not None and hasattr(inner, "tie_word_embeddings"):
            inner.tie_word_embeddings = False
    get_out = getattr(module, "get_output_embeddings", None)
    out = get_out() if callable(get_out) else None
    if isinstance(out, nn.Linear):
        out.weight = nn.Parameter(out.weight.detach().clone())
    if hasattr(module, "_tied_weights_keys"):
        module._tied_weights_keys = None  # type: ignore[assignment]


def to_tensors(batch: dict[str, NDArray[Any]]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


def forward_module(module: nn.Module, batch: dict[str, torch.Tensor]) -> Any:
    """Call ``module`` the way the torch backend does: keywords for transformers models."""
    from transformers import PreTrainedModel

    if isinstance(module, PreTrainedModel):
        return module(**batch)
    return module(*batch.values())


def run_calibration(
    module: nn.Module,
    batches: Sequence[dict[str, NDArray[Any]]],
    *,
    hooks: Sequence[Any] = (),
    on_batch: Callable[[int, int], None] | None = None,
) -> None:
    """Run every calibration batch through ``module``.

    ``hooks`` are the handles of forward hooks the caller registered to collect statistics; they
    are removed when the run ends, whether it succeeds or raises.
    """
    try:
        with torch.inference_mode():
            for i, batch in enumerate(batches):
                forward_module(module, to_tensors(batch))
                if on_batch is not None:
                    on_batch(i + 1, len(batches))
    finally:
        for handle in hooks:
            handle.remove()


def add_note(context: CompressionContext, text: str) -> None:
    """Record a sentence for the compression report (ignored by contexts that keep no notes)."""
    notes = getattr(context, "notes", None)
    if isinstance(notes, list):
        notes.append(text)


def require_calibration(context: CompressionContext, strategy: str, why: str) -> None:
    if not context.calibration:
        raise CompressionError(f"strategy {strategy!r} {why}: pass calibration=[...] (a few hundred real inputs)")
