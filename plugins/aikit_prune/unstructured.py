"""Unstructured pruning: magnitude (global or per layer) and 2:4 semi-structured sparsity.

Weights stay dense tensors (the shapes do not change), so ``restore`` has nothing to rebuild.
The model's output head is never pruned: it is often tied to the input embedding table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from typing_extensions import override

from aikit.contracts.backend import Backend
from aikit.contracts.strategy import CompressionConfig, CompressionContext, Strategy

from .configs import Magnitude, SemiStructured

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["MagnitudeStrategy", "SemiStructuredStrategy"]


def prunable_linears(module: nn.Module, exclude: tuple[str, ...]) -> list[str]:
    """Linear layers to prune: all but ``exclude`` and the output head."""
    from aikit.compress.tools import linear_names

    get_out = getattr(module, "get_output_embeddings", None)
    head = get_out() if callable(get_out) else None
    return [n for n in linear_names(module, exclude) if module.get_submodule(n) is not head]


def _kth_magnitude(values: torch.Tensor, fraction: float) -> float:
    """The magnitude below which ``fraction`` of ``values`` lie (exact, via kthvalue)."""
    k = round(fraction * values.numel())
    if k <= 0:
        return -1.0
    return float(values.abs().reshape(-1).kthvalue(k).values)


class _PruneStrategy(Strategy):
    backends: ClassVar[frozenset[str]] = frozenset({"torch"})
    # Zeros are plain weight values: an ONNX export or a move to the GPU keeps them as they are.
    carries_to: ClassVar[frozenset[str]] = frozenset({"onnxruntime", "cuda"})

    def guard_layers(self, backend: Backend, config: Any) -> list[str]:
        return prunable_linears(backend.torch_module(), config.exclude)

    def masks(self, module: nn.Module, names: list[str], config: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @override
    def apply(self, backend: Backend, config: CompressionConfig, context: CompressionContext) -> Backend:
        import torch

        from aikit.compress.tools import copy_module, linear_at, module_of

        module = copy_module(module_of(backend, self.name))
        names = prunable_linears(module, config.exclude)  # type: ignore[attr-defined]
        with torch.no_grad():
            for i, (name, keep) in enumerate(self.masks(module, names, config).items()):
                weight = linear_at(module, name).weight
                weight.mul_(keep.to(weight.dtype))
                context.progress(i + 1, len(names))
        return backend.with_module(module)

    def slowdown_reason(self) -> str:
        return "pruned weights are stored dense and no CPU kernel here skips the zeros"


class MagnitudeStrategy(_PruneStrategy):
    name = "prune-magnitude"
    config_class = Magnitude
    description = "zero the smallest weights (unstructured; global or per layer)"

    @override
    def masks(self, module: nn.Module, names: list[str], config: Any) -> dict[str, torch.Tensor]:
        import torch

        from aikit.compress.tools import linear_at

        weights = {n: linear_at(module, n).weight.detach() for n in names}
        if not weights:
            return {}
        if config.scope == "global":
            # kthvalue over every weight at once; fine for models of a few hundred million weights
            everything = torch.cat([w.abs().reshape(-1).float() for w in weights.values()])
            threshold = _kth_magnitude(everything, config.sparsity)
            return {n: w.abs().float() > threshold for n, w in weights.items()}
        return {n: w.abs().float() > _kth_magnitude(w.float(), config.sparsity) for n, w in weights.items()}


class SemiStructuredStrategy(_PruneStrategy):
    name = "prune-2:4"
    config_class = SemiStructured
    description = "2:4 semi-structured sparsity (accuracy-only on CPU: nothing here runs it faster)"

    @override
    def masks(self, module: nn.Module, names: list[str], config: Any) -> dict[str, torch.Tensor]:
        import torch

        from aikit.compress.tools import linear_at

        out = {}
        for name in names:
            w = linear_at(module, name).weight.detach().float()
            if w.shape[1] % 4:
                continue  # 2:4 needs whole groups of four input channels
            groups = w.abs().reshape(w.shape[0], -1, 4)
            smallest = groups.topk(2, dim=-1, largest=False).indices
            keep = torch.ones_like(groups, dtype=torch.bool).scatter_(-1, smallest, False)
            out[name] = keep.reshape(w.shape)
        return out

    @override
    def apply(self, backend: Backend, config: CompressionConfig, context: CompressionContext) -> Backend:
        from aikit.compress.tools import add_note

        add_note(context, "prune-2:4 is accuracy-only on CPU: no runtime here accelerates 2:4 sparsity")
        return super().apply(backend, config, context)

    @override
    def slowdown_reason(self) -> str:
        return "2:4 sparsity needs sparse tensor cores (NVIDIA Ampere or newer); on CPU the weights run dense"
