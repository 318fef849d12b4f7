"""Group-wise 4-bit weight-only Linear, with round-to-nearest and HQQ quantizers.

Storage (plain tensors, safetensors-friendly): ``weight_packed`` uint8 ``[N, K/2]`` (two 4-bit
codes per byte, low nibble = even column), ``weight_scale`` / ``weight_min`` fp32 ``[N, K/group]``;
``w = q * scale + min`` with ``q`` in ``[0, 15]``. The CPU kernel layout (ATen tinygemm
``_weight_int4pack_mm_for_cpu``) is derived state, rebuilt after loading or copying.

HQQ (Badri & Shaji, 2023, "Half-Quadratic Quantization of Large Machine Learning Models") is
implemented directly: it keeps each group's range and optimises its zero point with a proximal
solver for an l_p (p < 1) error, which needs no calibration data and beats plain rounding.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional
from typing_extensions import override

from .weight_only import WeightOnlyLinear

__all__ = ["Int4WeightOnlyLinear", "hqq_quantize", "pack_int4", "rtn_quantize", "unpack_int4"]

QMAX = 15


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """uint8 codes in [0, 15], shape [N, K] (K even) -> uint8 [N, K/2]."""
    q = q.to(torch.uint8)
    return (q[:, 0::2] | (q[:, 1::2] << 4)).contiguous()


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of ``pack_int4``: uint8 [N, K/2] -> uint8 [N, K]."""
    low, high = packed & 0x0F, packed >> 4
    return torch.stack([low, high], dim=-1).reshape(packed.shape[0], -1)


def rtn_quantize(w: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric round-to-nearest per group: (codes uint8 [N, K], scale [N, G], min [N, G])."""
    n, k = w.shape
    groups = w.detach().float().reshape(n, k // group_size, group_size)
    low, high = groups.amin(-1), groups.amax(-1)
    scale = ((high - low) / QMAX).clamp_min(1e-8)
    q = torch.clamp(torch.round((groups - low[..., None]) / scale[..., None]), 0, QMAX)
    return q.reshape(n, k).to(torch.uint8), scale, low


def hqq_quantize(
    w: torch.Tensor, group_size: int, *, iters: int = 20, lp_norm: float = 0.7, beta: float = 10.0, kappa: float = 1.01
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HQQ zero-point optimisation per group; same return format as ``rtn_quantize``."""
    n, k = w.shape
    groups = w.detach().float().reshape(-1, group_size)
    low, high = groups.amin(1, keepdim=True), groups.amax(1, keepdim=True)
    inv_scale = QMAX / (high - low).clamp_min(1e-8)  # codes = round(w * inv_scale + zero)
    zero = -low * inv_scale

    def shrink(x: torch.Tensor, b: float) -> torch.Tensor:  # generalised soft threshold for the l_p prox
        return torch.sign(x) * functional.relu(x.abs() - (1.0 / b) * (x.abs() + 1e-8).pow(lp_norm - 1))

    best_err, best_zero = float("inf"), zero.clone()
    for _ in range(iters):
        codes = torch.clamp(torch.round(groups * inv_scale + zero), 0, QMAX)
        restored = (codes - zero) / inv_scale
        error = shrink(groups - restored, beta)
        zero = torch.mean(codes - (groups - error) * inv_scale, dim=1, keepdim=True)
        beta *= kappa
        err = (groups - restored).abs().mean().item()
        if err >= best_err:
            break
        best_err, best_zero = err, zero.clone()
    # HQQ minimises an l_p (p < 1) error; per group, keep whichever of its zero point and plain
    # rounding's reproduces the weights with the smaller squared error, so HQQ is never worse than
    # RTN in that sense (weights already on a 4-bit grid, e.g. dequantized GGUF, stay exact).
    rtn_zero = -low * inv_scale
    zero = torch.where(
        _sq_error(groups, inv_scale, best_zero) <= _sq_error(groups, inv_scale, rtn_zero), best_zero, rtn_zero
    )
    codes = torch.clamp(torch.round(groups * inv_scale + zero), 0, QMAX)
    scale = 1.0 / inv_scale
    return codes.reshape(n, k).to(torch.uint8), scale.reshape(n, -1), (-zero * scale).reshape(n, -1)


def _sq_error(groups: torch.Tensor, inv_scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """Per-group squared reconstruction error of codes ``round(w * inv_scale + zero)``."""
    codes = torch.clamp(torch.round(groups * inv_scale + zero), 0, QMAX)
    return ((codes - zero) / inv_scale - groups).pow(2).sum(1, keepdim=True)


class Int4WeightOnlyLinear(WeightOnlyLinear):
    """Linear with 4-bit group-wise weights (packed: ATen's tinygemm CPU kernel, fp32 or bf16 input)."""

    weight_packed: torch.Tensor
    weight_scale: torch.Tensor
    weight_min: torch.Tensor

    def __init__(
        self, in_features: int, out_features: int, *, group_size: int, bias: bool, packed: bool = True
    ) -> None:
        super().__init__(in_features, out_features, packed=packed)
        self.group_size = group_size
        groups = in_features // group_size
        self.register_buffer("weight_packed", torch.zeros(out_features, in_features // 2, dtype=torch.uint8))
        self.register_buffer("weight_scale", torch.ones(out_features, groups))
        self.register_buffer("weight_min", torch.zeros(out_features, groups))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    def fill(self, linear: nn.Linear, *, method: str) -> None:
        quantize = hqq_quantize if method == "hqq" else rtn_quantize
        q, scale, low = quantize(linear.weight, self.group_size)
        self.weight_packed.copy_(pack_int4(q))
        self.weight_scale.copy_(scale)
        self.weight_min.copy_(low)
        self.fill_bias(linear)

    @override
    def dequantized_weight(self) -> torch.Tensor:
        q = unpack_int4(self.weight_packed).float().reshape(self.out_features, -1, self.group_size)
        w = q * self.weight_scale[..., None] + self.weight_min[..., None]
        return w.reshape(self.out_features, self.in_features)

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """tinygemm layout: ``w = (q - 8) * scale + zero`` with ``zero = min + 8 * scale``."""

        def build() -> tuple[torch.Tensor, torch.Tensor]:
            q = unpack_int4(self.weight_packed).to(torch.int32).contiguous()
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
            zero = self.weight_min + 8 * self.weight_scale
            return packed, torch.stack([self.weight_scale.t(), zero.t()], dim=-1).contiguous()  # [G, N, 2]

        kernel: tuple[torch.Tensor, torch.Tensor] = self.derived("kernel", build)
        return kernel

    @override
    def packed_forward(self, x: torch.Tensor) -> torch.Tensor:
        packed, scales_zeros = self.kernel()
        y: torch.Tensor = torch.ops.aten._weight_int4pack_mm_for_cpu(
            x, packed, self.group_size, scales_zeros.to(x.dtype)
        )
        return y

    @override
    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, group_size={self.group_size}, "
            f"packed={self.packed}"
        )


def fitting_group(in_features: int, group_size: int) -> int | None:
    """The largest group size <= ``group_size`` (and >= 32) dividing ``in_features``, or None."""
    size = group_size
    while size >= 32:
        if in_features % size == 0:
            return size
        size //= 2
    return None
