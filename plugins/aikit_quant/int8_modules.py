"""int8 modules that replace ``nn.Linear`` / ``nn.Embedding``. State dicts hold plain tensors only.

Each module stores an int8 weight plus fp32 scales as buffers (safetensors-friendly). The packed
kernel layout (fbgemm) is derived state: rebuilt lazily on the first forward after construction,
loading or copying, never saved.

Saturation on CPUs without VNNI: AVX2 computes uint8 x int8 products with ``vpmaddubsw``, which
saturates pairs of products at int16. 8-bit activations with 7-bit weights (|q| <= 63) make
``255 * 63 * 2 < 32767``, so no sum can saturate; with VNNI (or AMX) full 8-bit weights are safe.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn import functional
from typing_extensions import override

from .weight_only import WeightOnlyLinear

__all__ = ["Int8WeightOnlyLinear", "QuantEmbedding", "QuantLinearDynamic", "QuantLinearStatic", "quantize_rows"]


def quantize_rows(weight: torch.Tensor, qmax: int, *, per_channel: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 quantization of a 2-D tensor, one scale per row (or one for all rows)."""
    w = weight.detach().float()
    amax = w.abs().amax(dim=1) if per_channel else w.abs().amax().expand(w.shape[0])
    scale = (amax.clamp_min(1e-8) / qmax).float().contiguous()
    q = torch.clamp(torch.round(w / scale[:, None]), -qmax, qmax).to(torch.int8)
    return q, scale


@contextlib.contextmanager
def _quantized_tensor_notice_silenced() -> Iterator[None]:
    """Silence torch's notice that quantized-tensor constructors will be removed, and nothing else.

    The fbgemm kernels behind ``torch.ops.quantized.linear*`` take only such tensors and remain the
    fastest int8 path on AVX2 CPUs (torch issue 184982 tracks the removal; ``torch._int_mm`` is the
    replacement candidate). Any other warning from these calls still surfaces.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor"
        )
        yield


def _prepack(weight_int8: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> Any:
    with _quantized_tensor_notice_silenced():
        qw = torch._make_per_channel_quantized_tensor(
            weight_int8, scale.double(), torch.zeros(weight_int8.shape[0], dtype=torch.int64), 0
        )
        return torch.ops.quantized.linear_prepack(qw, bias)


class _PackedLinear(nn.Module):
    """Shared buffers and packing of the int8 Linear replacements."""

    weight_int8: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor | None
    in_scale: torch.Tensor | None

    def __init__(self, in_features: int, out_features: int, *, bias: bool, smooth: bool) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.register_buffer("weight_int8", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        # SmoothQuant: the layer computes (x * in_scale) @ (W / in_scale)^T, equal in exact arithmetic.
        self.register_buffer("in_scale", torch.ones(in_features) if smooth else None)
        self._packed: Any = None

    def fill(
        self, linear: nn.Linear, *, qmax: int, per_channel: bool = True, in_scale: torch.Tensor | None = None
    ) -> None:
        w = linear.weight.detach().float()
        if in_scale is not None:
            assert self.in_scale is not None
            self.in_scale.copy_(in_scale)
            w = w / in_scale[None, :]
        q, s = quantize_rows(w, qmax, per_channel=per_channel)
        self.weight_int8.copy_(q)
        self.weight_scale.copy_(s)
        if linear.bias is not None and self.bias is not None:
            self.bias.copy_(linear.bias.detach().float())
        self._packed = None

    def packed(self) -> Any:
        if self._packed is None:
            self._packed = _prepack(self.weight_int8, self.weight_scale, self.bias)
        return self._packed

    def dequantized_weight(self) -> torch.Tensor:
        w = self.weight_int8.float() * self.weight_scale[:, None]
        return w * self.in_scale[None, :] if self.in_scale is not None else w

    @override
    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._packed = None  # the buffers change: the packed copy must be rebuilt
        super()._load_from_state_dict(*args, **kwargs)

    @override
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_packed"] = None  # packed params are not copyable; rebuilt on demand
        return state

    @override
    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, smooth={self.in_scale is not None}"


class QuantLinearDynamic(_PackedLinear):
    """int8 per-channel weights; activations quantized on the fly to uint8 (fbgemm ``linear_dynamic``).

    ``per_token``: fbgemm picks one activation range per call. Mapping each token (row) from its
    own [min, max] onto [-1, 1] first makes that range per token and asymmetric (one-signed rows
    such as GELU outputs get all 256 levels); since the layer is linear, the output row is mapped
    back exactly (``W x = half * W x' + mid * W 1``, bias added afterwards). This gives per-token
    accuracy at the speed of the per-tensor kernel, and outputs that do not depend on the rest of
    the batch. It needs 7-bit weights on CPUs without VNNI (see the module docstring).
    """

    def __init__(
        self, in_features: int, out_features: int, *, bias: bool, smooth: bool, per_token: bool = True
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, smooth=smooth)
        self.per_token = per_token
        self._offsets = torch.zeros(0)

    @override
    def packed(self) -> Any:
        if self._packed is None:  # per-token: the bias is added after rescaling, so it is not packed
            self._packed = _prepack(self.weight_int8, self.weight_scale, None if self.per_token else self.bias)
            row_sums = self.weight_int8.float().sum(1) * self.weight_scale  # W 1 of the quantized W
            bias = self.bias if self.bias is not None else torch.zeros_like(row_sums)
            self._offsets = torch.stack([row_sums, bias.float()])
        return self._packed

    def offsets(self) -> torch.Tensor:
        """``[W 1; bias]`` ([2, out]), derived with the packed copy: per-token outputs add ``[mid, 1] @ this``."""
        self.packed()
        return self._offsets

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_scale is not None:
            x = x * self.in_scale
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).float()
        if not self.per_token:
            y: torch.Tensor = torch.ops.quantized.linear_dynamic(x2.contiguous(), self.packed(), False)
            return y.reshape(*shape[:-1], self.out_features).to(x.dtype)
        # Per-token affine: map each row's [min, max] onto the kernel's [-1, 1] grid, so a one-signed
        # row (GELU outputs) uses all 256 levels rather than half of them. Since the layer is linear,
        # W x = half * W x' + mid * W 1: the output is rescaled and the weights' row sums added back.
        # amax and amin separately: torch.aminmax took 2.08 ms vs 0.12 ms for both on a 1000x1536 input here
        high, low = x2.amax(dim=1, keepdim=True), x2.amin(dim=1, keepdim=True)
        half = (high - low).mul_(0.5).clamp_min_(1e-12)
        inv = half.reciprocal()
        # One extra row holding +1 and -1 pins the kernel's range to exactly [-1, 1], so every token
        # is quantized on the same grid whatever else is in the batch (results do not depend on batching).
        scaled = x2.new_empty(x2.shape[0] + 1, x2.shape[1])
        mid_one = torch.cat([high.add_(low).mul_(0.5), torch.ones_like(half)], dim=1)  # [tokens, 2]: mid, 1
        torch.addcmul(-mid_one[:, :1] * inv, x2, inv, out=scaled[:-1])  # (x - mid) / half
        scaled[-1].zero_()
        scaled[-1, 0], scaled[-1, -1] = 1.0, -1.0
        y = torch.ops.quantized.linear_dynamic(scaled, self.packed(), False)[:-1]
        y = y.mul_(half).addmm_(mid_one, self.offsets())  # + mid * W 1 + bias
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)


class QuantLinearStatic(_PackedLinear):
    """int8 weights and int8 activations with a calibrated (static) input and output range."""

    act_qparams: torch.Tensor

    def __init__(self, in_features: int, out_features: int, *, bias: bool, smooth: bool) -> None:
        super().__init__(in_features, out_features, bias=bias, smooth=smooth)
        # [input scale, input zero point, output scale, output zero point]
        self.register_buffer("act_qparams", torch.tensor([1.0, 128.0, 1.0, 128.0]))

    def set_ranges(self, in_min: float, in_max: float, out_min: float, out_max: float) -> None:
        self.act_qparams.copy_(torch.tensor([*_affine(in_min, in_max), *_affine(out_min, out_max)]))

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_scale is not None:
            x = x * self.in_scale
        shape = x.shape
        s_in, z_in, s_out, z_out = self.act_qparams.tolist()
        with _quantized_tensor_notice_silenced():
            xq = torch.quantize_per_tensor(x.reshape(-1, shape[-1]).float().contiguous(), s_in, int(z_in), torch.quint8)
            y: torch.Tensor = torch.ops.quantized.linear(xq, self.packed(), s_out, int(z_out)).dequantize()
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)


def _affine(lo: float, hi: float) -> tuple[float, float]:
    """uint8 affine parameters covering [lo, hi] (always including 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    return scale, float(min(255, max(0, round(-lo / scale))))


class Int8WeightOnlyLinear(WeightOnlyLinear):
    """int8 per-channel weights, floating-point activations (packed: ATen ``_weight_int8pack_mm``)."""

    weight_int8: torch.Tensor
    weight_scale: torch.Tensor

    def __init__(self, in_features: int, out_features: int, *, bias: bool, packed: bool = True) -> None:
        super().__init__(in_features, out_features, packed=packed)
        self.register_buffer("weight_int8", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    def fill(self, linear: nn.Linear) -> None:
        q, s = quantize_rows(linear.weight, 127)
        self.weight_int8.copy_(q)
        self.weight_scale.copy_(s)
        self.fill_bias(linear)

    @override
    def dequantized_weight(self) -> torch.Tensor:
        return self.weight_int8.float() * self.weight_scale[:, None]

    @override
    def packed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch._weight_int8pack_mm(x, self.weight_int8, self.weight_scale.to(x.dtype))

    @override
    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed={self.packed}"


class QuantEmbedding(nn.Module):
    """Embedding table stored as int8 with one fp32 scale per row, dequantized on lookup."""

    weight_int8: torch.Tensor
    weight_scale: torch.Tensor

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.register_buffer("weight_int8", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(num_embeddings, 1))

    def fill(self, embedding: nn.Embedding) -> None:
        q, s = quantize_rows(embedding.weight, 127)
        self.weight_int8.copy_(q)
        self.weight_scale.copy_(s[:, None])

    def dequantized_weight(self) -> torch.Tensor:
        return self.weight_int8.float() * self.weight_scale

    @property
    def weight(self) -> torch.Tensor:
        """The fp32 table (some model code reads ``.weight`` for its dtype or device)."""
        return self.dequantized_weight()

    @override
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return functional.embedding(ids, self.weight_int8).float() * functional.embedding(ids, self.weight_scale)

    @override
    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8"
