"""The shared part of the weight-only Linears (int8 and int4): kernel choice and derived caches.

Subclasses store their quantized weights as buffers and define ``dequantized_weight()`` and
``packed_forward(x2d)`` (ATen's low-bit kernel on the stored codes, no bias). ``packed=False``
expands the weights to the input's float type once, at first use, and runs a plain GEMM: on many
CPUs that is far faster than ATen's low-bit kernels (``kernel="auto"`` measures which:
``kernel_choice``).
Everything derived from the buffers (kernel layouts, expanded weights) lives in ``_derived`` and
is dropped whenever the buffers change (fill, load, copy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional
from typing_extensions import override

__all__ = ["WeightOnlyLinear"]


class WeightOnlyLinear(nn.Module):
    bias: torch.Tensor | None

    def __init__(self, in_features: int, out_features: int, *, packed: bool) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.packed = packed
        self._derived: dict[str, Any] = {}

    def dequantized_weight(self) -> torch.Tensor:
        raise NotImplementedError

    def packed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W^T`` for a 2-D, contiguous ``x`` with the low-bit kernel (bias not added)."""
        raise NotImplementedError

    def derived(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()``'s result, computed once until the buffers change."""
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]

    def fill_bias(self, linear: nn.Linear) -> None:
        """Copy ``linear``'s bias and forget what was derived from the old buffers."""
        if linear.bias is not None and self.bias is not None:
            self.bias.copy_(linear.bias.detach().float())
        self._derived.clear()

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.packed:
            weight: torch.Tensor = self.derived("unpacked", self.dequantized_weight)
            bias = self.bias.to(x.dtype) if self.bias is not None else None
            return functional.linear(x, weight.to(x.dtype), bias)
        shape = x.shape
        y = self.packed_forward(x.reshape(-1, shape[-1]).contiguous()).reshape(*shape[:-1], self.out_features)
        return y + self.bias.to(y.dtype) if self.bias is not None else y

    @override
    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._derived.clear()  # the buffers change: derived state must be rebuilt
        super()._load_from_state_dict(*args, **kwargs)

    @override
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_derived"] = {}  # kernel layouts are not copyable; rebuilt on demand
        return state
