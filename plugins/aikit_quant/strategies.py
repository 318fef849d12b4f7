"""The quantization strategies of the torch backend.

Each strategy swaps modules on a deep copy of the model (the caller's model is never touched) and
can rebuild the same structure on a fresh fp32 skeleton (``restore``) so that saved artifacts load
back. Layer-swapping strategies also expose ``guard_layers``: the layers the accuracy guard may
keep in full precision (through the config's ``exclude``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from typing_extensions import override

from aikit.contracts.backend import Backend
from aikit.contracts.strategy import CompressionConfig, CompressionContext, Strategy

from .configs import Bf16, Fp16, Int4WeightOnly, Int8Dynamic, Int8Static, Int8WeightOnly

if TYPE_CHECKING:
    from torch import nn

__all__ = ["STRATEGIES"]

TORCH = frozenset({"torch"})


class _SwapStrategy(Strategy):
    """Replaces selected modules by quantized ones: ``targets`` picks them, ``empty`` builds the
    replacement with the right shapes, ``fill`` quantizes the original's weights into it."""

    backends: ClassVar[frozenset[str]] = TORCH

    def targets(self, module: nn.Module, config: Any) -> list[str]:
        from aikit.compress.tools import linear_names

        return linear_names(module, config.exclude)

    def empty(self, original: nn.Module, config: Any) -> nn.Module:
        raise NotImplementedError

    def fill(self, new: nn.Module, original: nn.Module, name: str, config: Any, stats: dict[str, Any]) -> None:
        raise NotImplementedError

    def calibrate(
        self, module: nn.Module, names: list[str], config: Any, context: CompressionContext
    ) -> dict[str, Any]:
        """Statistics from calibration data that ``fill`` needs (none by default)."""
        return {}

    def prepare(self, module: nn.Module, names: list[str]) -> None:
        from aikit.compress.tools import tie_free

        head = _output_head_name(module)
        if head is not None and head in names:
            tie_free(module)  # a quantized output head cannot share the embedding's tensor

    def guard_layers(self, backend: Backend, config: CompressionConfig) -> list[str]:
        return self.targets(backend.torch_module(), config)

    def slowdown_reason(self) -> str:
        """Why this strategy may run slower than fp32 here (shown when it does)."""
        from aikit.sysinfo import cpu_flags, has_int8_dot_product

        if not has_int8_dot_product():
            simd = " ".join(sorted(cpu_flags() & {"avx2", "avx512f", "avx512bw", "neon"})) or "none"
            return (
                "this CPU has no int8 dot-product instructions (no AVX512-VNNI / AVX-VNNI / AMX; SIMD: "
                f"{simd}), so int8 matrix products run on slower AVX2 paths and quantize/dequantize overhead dominates"
            )
        return "quantize/dequantize overhead outweighs the int8 matrix-product gain at these batch shapes"

    @override
    def apply(self, backend: Backend, config: CompressionConfig, context: CompressionContext) -> Backend:
        import torch

        from aikit.compress.tools import copy_module, module_of, set_module

        module = copy_module(module_of(backend, self.name))
        names = self.targets(module, config)
        stats = self.calibrate(module, names, config, context)
        self.prepare(module, names)
        with torch.no_grad():
            for i, name in enumerate(names):
                original = module.get_submodule(name)
                new = self.empty(original, config)
                self.fill(new, original, name, config, stats)
                set_module(module, name, new)
                context.progress(i + 1, len(names))
        return backend.with_module(module.eval())

    @override
    def restore(self, module: Any, config: CompressionConfig) -> Any:
        from aikit.compress.tools import set_module

        names = self.targets(module, config)
        self.prepare(module, names)
        for name in names:
            set_module(module, name, self.empty(module.get_submodule(name), config))
        return module


def _named_by(module: nn.Module, getter: str) -> str | None:
    """The dotted name of the submodule ``module.<getter>()`` returns (transformers'
    ``get_input_embeddings`` / ``get_output_embeddings``), or None when there is none."""
    get = getattr(module, getter, None)
    found = get() if callable(get) else None
    if found is None:
        return None
    return next((n for n, m in module.named_modules() if m is found), None)


def _output_head_name(module: nn.Module) -> str | None:
    return _named_by(module, "get_output_embeddings")


def _input_embedding_name(module: nn.Module) -> str | None:
    return _named_by(module, "get_input_embeddings")


def weight_bits(config: Int8Dynamic | Int8Static) -> int:
    """int8-static always uses 7-bit weights: its fbgemm kernel takes full-range uint8 activations."""
    return int(config.weight_bits) if isinstance(config, Int8Dynamic) else 7


class _Int8Activations(_SwapStrategy):
    """int8-dynamic and int8-static: Linear layers plus (optionally) the word-embedding table."""

    @override
    def targets(self, module: nn.Module, config: Any) -> list[str]:
        names = super().targets(module, config)
        embedding = _input_embedding_name(module) if config.embeddings else None
        if embedding and embedding not in config.exclude:
            names.insert(0, embedding)
        return names

    @override
    def empty(self, original: nn.Module, config: Any) -> nn.Module:
        from torch import nn

        from .int8_modules import QuantEmbedding, QuantLinearDynamic, QuantLinearStatic

        if isinstance(original, nn.Embedding):
            return QuantEmbedding(original.num_embeddings, original.embedding_dim, original.padding_idx)
        assert isinstance(original, nn.Linear)
        smooth = config.smoothquant is not None
        bias = original.bias is not None
        if isinstance(config, Int8Static):
            return QuantLinearStatic(original.in_features, original.out_features, bias=bias, smooth=smooth)
        return QuantLinearDynamic(
            original.in_features, original.out_features, bias=bias, smooth=smooth, per_token=config.per_token
        )

    @override
    def calibrate(
        self, module: nn.Module, names: list[str], config: Any, context: CompressionContext
    ) -> dict[str, Any]:
        if config.smoothquant is None:
            return {}
        from aikit.compress.tools import require_calibration

        from .calibration import input_absmax, smoothing_scales

        require_calibration(context, self.name, "with smoothquant= needs calibration data")
        absmax = input_absmax(module, [n for n in names if not _is_embedding(module, n)], context.calibration)
        return {"smooth": smoothing_scales(module, absmax, float(config.smoothquant))}

    @override
    def fill(self, new: nn.Module, original: nn.Module, name: str, config: Any, stats: dict[str, Any]) -> None:
        from torch import nn

        if isinstance(original, nn.Embedding):
            new.fill(original)  # type: ignore[operator]
            return
        smooth = stats.get("smooth", {}).get(name)
        new.fill(
            original,
            qmax=2 ** (weight_bits(config) - 1) - 1,
            per_channel=getattr(config, "per_channel", True),
            in_scale=smooth,
        )  # type: ignore[operator]


class Int8DynamicStrategy(_Int8Activations):
    name = "int8-dynamic"
    config_class = Int8Dynamic
    description = "int8 per-channel weights, activations quantized per batch (fbgemm); int8 word embeddings"


class Int8StaticStrategy(_Int8Activations):
    name = "int8-static"
    config_class = Int8Static
    needs_calibration = True
    description = "int8 weights and activations with calibrated ranges; SmoothQuant option"

    @override
    def calibrate(
        self, module: nn.Module, names: list[str], config: Any, context: CompressionContext
    ) -> dict[str, Any]:
        from .calibration import activation_ranges

        stats = super().calibrate(module, names, config, context)
        linear = [n for n in names if not _is_embedding(module, n)]
        stats["ranges"] = activation_ranges(
            module, linear, context.calibration, stats.get("smooth", {}), float(config.percentile)
        )
        return stats

    @override
    def fill(self, new: nn.Module, original: nn.Module, name: str, config: Any, stats: dict[str, Any]) -> None:
        super().fill(new, original, name, config, stats)
        if name in stats["ranges"]:
            new.set_ranges(*stats["ranges"][name])  # type: ignore[operator]


def _is_embedding(module: nn.Module, name: str) -> bool:
    from torch import nn

    return isinstance(module.get_submodule(name), nn.Embedding)


def packed_kernel(config: Any) -> bool:
    """Whether to run ATen's low-bit CPU kernels; ``auto``: whichever a measurement on this machine
    found faster (``kernel_choice``, cached per CPU and torch version).

    A feature flag does not decide it: on an AVX2-only CPU (SmolLM2-135M greedy decoding) packed
    int8 ran at 0.31x and packed int4 at 0.04x the tokens/s of fp32, and on a Xeon with AVX-512
    VNNI and AMX packed int8 ran MiniLM 50x slower than fp32 GEMM on the expanded weights.
    """
    if config.kernel != "auto":
        return bool(config.kernel == "packed")
    from .kernel_choice import packed_is_faster

    return packed_is_faster("int4" if config.strategy == "int4-weight-only" else "int8")


class Int8WeightOnlyStrategy(_SwapStrategy):
    name = "int8-weight-only"
    config_class = Int8WeightOnly
    description = "int8 per-channel weights, floating-point activations"

    @override
    def empty(self, original: nn.Module, config: Any) -> nn.Module:
        from .int8_modules import Int8WeightOnlyLinear

        return Int8WeightOnlyLinear(
            original.in_features,  # type: ignore[arg-type]
            original.out_features,  # type: ignore[arg-type]
            bias=original.bias is not None,
            packed=packed_kernel(config),
        )

    @override
    def fill(self, new: nn.Module, original: nn.Module, name: str, config: Any, stats: dict[str, Any]) -> None:
        new.fill(original)  # type: ignore[operator]

    @override
    def slowdown_reason(self) -> str:
        return (
            "ATen's int8 weight-only CPU kernel (_weight_int8pack_mm, kernel=packed) has a fast path only with "
            "AVX-512; elsewhere it is slower than fp32 GEMM: use kernel=auto, which expands the weights once"
        )


class Int4WeightOnlyStrategy(_SwapStrategy):
    name = "int4-weight-only"
    config_class = Int4WeightOnly
    description = "4-bit group-wise weights (HQQ or round-to-nearest); tinygemm kernel on AVX-512 CPUs"

    @override
    def targets(self, module: nn.Module, config: Any) -> list[str]:
        # tinygemm packs 16 output rows at a time: other widths (small classifier heads) stay in fp32
        from aikit.compress.tools import linear_at

        from .int4_modules import fitting_group

        head = None if config.include_head else _output_head_name(module)
        linears = [(n, linear_at(module, n)) for n in super().targets(module, config) if n != head]
        return [n for n, m in linears if m.out_features % 16 == 0 and fitting_group(m.in_features, config.group_size)]

    @override
    def empty(self, original: nn.Module, config: Any) -> nn.Module:
        from .int4_modules import Int4WeightOnlyLinear, fitting_group

        k = int(original.in_features)  # type: ignore[arg-type]
        group = fitting_group(k, config.group_size)
        assert group is not None
        bias = original.bias is not None
        return Int4WeightOnlyLinear(
            k,
            int(original.out_features),  # type: ignore[arg-type]
            group_size=group,
            bias=bias,
            packed=packed_kernel(config),
        )

    @override
    def fill(self, new: nn.Module, original: nn.Module, name: str, config: Any, stats: dict[str, Any]) -> None:
        new.fill(original, method=config.method)  # type: ignore[operator]

    @override
    def slowdown_reason(self) -> str:
        return (
            "ATen's int4 CPU kernel (tinygemm, kernel=packed) has a fast path only with AVX-512; elsewhere it is "
            "far slower than fp32 GEMM: use kernel=auto, which expands the weights once"
        )


class _CastStrategy(Strategy):
    """Casts every floating-point weight; the torch backend saves and restores the dtype itself."""

    backends: ClassVar[frozenset[str]] = TORCH
    # A half-precision module runs as it is on the GPU; the onnxruntime backend runs float32 graphs only.
    carries_to: ClassVar[frozenset[str]] = frozenset({"cuda"})
    dtype_name: ClassVar[str]

    @override
    def apply(self, backend: Backend, config: CompressionConfig, context: CompressionContext) -> Backend:
        import torch

        from aikit.compress.tools import copy_module, module_of

        module = copy_module(module_of(backend, self.name)).to(getattr(torch, self.dtype_name))
        context.progress(1, 1)
        return backend.with_module(module)

    def slowdown_reason(self) -> str:
        from aikit.sysinfo import cpu_flags

        native = {"float16": {"avx512_fp16", "amx_fp16"}, "bfloat16": {"avx512_bf16", "amx_bf16"}}[self.dtype_name]
        if not cpu_flags() & native:
            return (
                f"this CPU has no native {self.dtype_name} matrix instructions ({' / '.join(sorted(native))}), "
                "so every product converts to fp32 and back"
            )
        return f"{self.dtype_name} kernels are slower than fp32 ones for these shapes on this CPU"


class Fp16Strategy(_CastStrategy):
    name = "fp16"
    config_class = Fp16
    dtype_name = "float16"
    description = "IEEE half-precision weights (half the size; slow on CPUs without native fp16 math)"


class Bf16Strategy(_CastStrategy):
    name = "bf16"
    config_class = Bf16
    dtype_name = "bfloat16"
    description = "bfloat16 weights (half the size; fast with AVX512-BF16 / AMX)"


STRATEGIES: tuple[type[Strategy], ...] = (
    Int8DynamicStrategy,
    Int8StaticStrategy,
    Int8WeightOnlyStrategy,
    Int4WeightOnlyStrategy,
    Fp16Strategy,
    Bf16Strategy,
)
