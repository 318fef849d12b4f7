"""Configs of the quantization strategies: frozen, keyword-only, validated, torch-free.

``aikit.quant.Int8Dynamic`` etc. re-export these, so building a config never imports torch.
Every config that quantizes layers has ``exclude``: qualified module names kept in full precision.
The accuracy guard (``compress(max_quality_drop=...)``) fills it with the most sensitive layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aikit.contracts.strategy import CompressionConfig
from aikit.errors import ConfigError

__all__ = ["Bf16", "Fp16", "Int4WeightOnly", "Int8Dynamic", "Int8Static", "Int8WeightOnly"]


def check_names(strategy: str, exclude: object) -> None:
    """``exclude`` must be a tuple of strings (lists are converted by ``normalise_names``)."""
    if not isinstance(exclude, tuple) or not all(isinstance(n, str) and n for n in exclude):
        raise ConfigError(f"{strategy}: exclude must be a sequence of module names, got {exclude!r}")


def normalise_names(config: CompressionConfig) -> None:
    value = getattr(config, "exclude", ())
    if isinstance(value, (list, str)):
        value = (value,) if isinstance(value, str) else tuple(value)
        object.__setattr__(config, "exclude", value)  # frozen: the one sanctioned rewrite
    check_names(config.strategy, value)


def check_alpha(strategy: str, name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(
            f"{strategy}: {name} must be a number in [0, 1]{' or None' if optional else ''}, got {value!r}"
        )


def check_bool(strategy: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{strategy}: {name} must be true or false, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Int8Dynamic(CompressionConfig):
    """int8 weights (per output channel), activations quantized on the fly per batch.

    ``per_token``: one activation range per token (default) instead of one per batch: far more
    accurate on transformers, at nearly the same speed (see ``QuantLinearDynamic``).
    ``embeddings``: store the word-embedding table as int8 with one scale per row.
    ``smoothquant``: migration strength alpha in [0, 1] (needs calibration data), or None.
    ``weight_bits``: 7 (default) or 8. Without VNNI (AVX2 only) the int8 kernel sums pairs of
    uint8 x int8 products in saturating int16; 7-bit weights (|q| <= 63) make saturation
    impossible. Per-token activations use all 256 levels, so 8-bit weights do saturate there:
    measured on all-MiniLM-L6-v2 (1,200 real sentences, AVX2 CPU) min cosine 0.827 with 8 bits
    vs 0.9915 with 7. Choose 8 only for models that will run on CPUs with VNNI or AMX.
    """

    strategy: ClassVar[str] = "int8-dynamic"
    per_channel: bool = True
    per_token: bool = True
    embeddings: bool = True
    smoothquant: float | None = None
    weight_bits: int = 7
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_bool(self.strategy, "per_channel", self.per_channel)
        check_bool(self.strategy, "per_token", self.per_token)
        check_bool(self.strategy, "embeddings", self.embeddings)
        check_alpha(self.strategy, "smoothquant", self.smoothquant, optional=True)
        if self.weight_bits not in (7, 8) or isinstance(self.weight_bits, bool):
            raise ConfigError(f"{self.strategy}: weight_bits must be 7 or 8, got {self.weight_bits!r}")
        normalise_names(self)


@dataclass(frozen=True, kw_only=True)
class Int8Static(CompressionConfig):
    """int8 weights and int8 activations with scales calibrated once (needs calibration data).

    ``smoothquant``: SmoothQuant migration strength alpha (0.5 is the paper's default), or None.
    ``percentile``: activation range = this percentile of |x| seen in calibration (100 = max).
    """

    strategy: ClassVar[str] = "int8-static"
    smoothquant: float | None = 0.5
    percentile: float = 99.99
    embeddings: bool = True
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_alpha(self.strategy, "smoothquant", self.smoothquant, optional=True)
        check_bool(self.strategy, "embeddings", self.embeddings)
        p = self.percentile
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 90.0 <= float(p) <= 100.0:
            raise ConfigError(f"{self.strategy}: percentile must be in [90, 100], got {p!r}")
        normalise_names(self)


KERNELS = ("auto", "packed", "unpacked")


def check_kernel(strategy: str, kernel: object) -> None:
    if kernel not in KERNELS:
        raise ConfigError(f"{strategy}: kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")


@dataclass(frozen=True, kw_only=True)
class Int8WeightOnly(CompressionConfig):
    """int8 weights (per output channel), activations stay in floating point.

    ``kernel``: ``"packed"`` runs ATen's low-bit CPU kernel on the stored weights; ``"unpacked"``
    expands them to fp32 once, at first use (the file stays small; memory and speed are fp32's);
    ``"auto"`` picks whichever a short measurement on this machine found faster (cached per CPU
    model, CPU flags, torch version and thread count; see ``kernel_choice``).
    """

    strategy: ClassVar[str] = "int8-weight-only"
    kernel: str = "auto"
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_kernel(self.strategy, self.kernel)
        normalise_names(self)


INT4_METHODS = ("hqq", "rtn")
INT4_GROUPS = (32, 64, 128, 256)


@dataclass(frozen=True, kw_only=True)
class Int4WeightOnly(CompressionConfig):
    """4-bit weights in groups of ``group_size`` input channels, each with its own scale and zero.

    ``method``: ``"hqq"`` (half-quadratic optimisation of the zero points, no data needed; better
    than rounding) or ``"rtn"`` (plain round-to-nearest). Layers whose width is not a multiple of
    ``group_size`` use the largest smaller group size that fits (32 at least) or stay unquantized.
    ``include_head``: also quantize the output head (the LM head, often tied to the input
    embeddings); off by default: at 4 bits it costs far more quality than any other layer.
    ``kernel``: as for ``Int8WeightOnly`` (packed = ATen's tinygemm int4 kernel).
    """

    strategy: ClassVar[str] = "int4-weight-only"
    group_size: int = 32
    method: str = "hqq"
    include_head: bool = False
    kernel: str = "auto"
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_kernel(self.strategy, self.kernel)
        check_bool(self.strategy, "include_head", self.include_head)
        if self.group_size not in INT4_GROUPS:
            raise ConfigError(f"{self.strategy}: group_size must be one of {INT4_GROUPS}, got {self.group_size!r}")
        if self.method not in INT4_METHODS:
            raise ConfigError(f"{self.strategy}: method must be one of {', '.join(INT4_METHODS)}, got {self.method!r}")
        normalise_names(self)


@dataclass(frozen=True, kw_only=True)
class Fp16(CompressionConfig):
    """Every floating-point weight in IEEE half precision (half the size; slow on most CPUs)."""

    strategy: ClassVar[str] = "fp16"


@dataclass(frozen=True, kw_only=True)
class Bf16(CompressionConfig):
    """Every floating-point weight in bfloat16 (half the size; fast only with AVX512-BF16 / AMX)."""

    strategy: ClassVar[str] = "bf16"
