"""Sizes and layer-by-layer changes of torch modules, for compression reports.

Imports torch only inside the functions (reports of non-torch backends never need it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aikit.compress.report import LayerChange

__all__ = ["count_weights", "layer_changes"]


def _dense(tensor: Any) -> Any:
    """A plain tensor of ``tensor``'s values (torchao quantized weights are dequantized)."""
    import torch

    dequantize = getattr(tensor, "dequantize", None)
    if type(tensor) not in (torch.Tensor, torch.nn.Parameter) and callable(dequantize):
        return dequantize()
    return tensor


def count_weights(module: Any) -> int:
    """Non-zero weights: Linear/Embedding weights (quantized ones counted by logical size), biases, norms."""
    from torch import nn

    from aikit.compress.tools import QuantizedWeight

    total = 0
    seen: set[int] = set()
    for sub in module.modules():
        if isinstance(sub, QuantizedWeight) and not isinstance(sub, (nn.Linear, nn.Embedding)):
            total += int((sub.dequantized_weight() != 0).sum())
            bias = getattr(sub, "bias", None)
            total += int(bias.numel()) if bias is not None else 0
            continue
        for p in sub.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                total += int((_dense(p) != 0).sum())
    return total


def layer_changes(before: Any, after: Any) -> list[LayerChange]:
    """Every Linear / Embedding of ``before`` that ``after`` changed, with its weight error."""
    import torch
    from torch import nn

    from aikit.compress.report import LayerChange

    changes: list[LayerChange] = []
    with torch.no_grad():
        for name, old in before.named_modules():
            if not isinstance(old, (nn.Linear, nn.Embedding)):
                continue
            try:
                new = after.get_submodule(name)
            except AttributeError:
                changes.append(LayerChange(name=name, kind="removed", error=None, sparsity=0.0, kept=0.0))
                continue
            getter = getattr(new, "dequantized_weight", None)
            weight = getter() if callable(getter) else getattr(new, "weight", None)
            if not isinstance(weight, torch.Tensor):
                continue
            weight = _dense(weight)
            w0, w1 = old.weight.detach().float(), weight.detach().float()
            kind = (
                type(new).__name__
                if type(new) is not type(old)
                else f"{type(new).__name__}[{str(w1.dtype).removeprefix('torch.')}]"
            )
            if w0.shape != w1.shape:
                kept = w1.numel() / max(w0.numel(), 1)
                changes.append(
                    LayerChange(name=name, kind=kind, error=None, sparsity=float((w1 == 0).float().mean()), kept=kept)
                )
                continue
            error = float((w0 - weight.detach().float()).norm() / w0.norm().clamp_min(1e-12))
            if error == 0.0 and type(new) is type(old) and weight.dtype == old.weight.dtype:
                continue
            changes.append(
                LayerChange(name=name, kind=kind, error=error, sparsity=float((w1 == 0).float().mean()), kept=1.0)
            )
    return changes
