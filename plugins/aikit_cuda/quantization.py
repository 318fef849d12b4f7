"""GPU quantization strategies (torchao): int8 and int4 weight-only, and fp8, for the CUDA backend.

Each checks the GPU before any work (int4 needs compute capability 8.0 and bfloat16, fp8 needs 8.9),
quantizes a copy of the module's ``nn.Linear`` layers whose shapes the kernels accept, and returns
a new CUDA backend; the compression framework then measures size, quality and speed against the
unquantized GPU model, as for every strategy.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from typing_extensions import override

from aikit.contracts.backend import Backend
from aikit.contracts.strategy import CompressionConfig, CompressionContext, Strategy
from aikit.errors import CompressionError, ConfigError, MissingDependencyError

if TYPE_CHECKING:  # torch is imported where it is used: registering these strategies must not load it
    import torch

__all__ = ["CudaFloat8", "CudaInt4WeightOnly", "CudaInt8WeightOnly", "quantize_module"]

logger = logging.getLogger("aikit.cuda")
GROUP_SIZES = (32, 64, 128, 256)


@dataclass(frozen=True, kw_only=True)
class CudaInt8WeightOnly(CompressionConfig):
    """int8 weights with one scale per output channel; activations stay in the model's dtype.

    ``skip``: names of layers (or name suffixes) kept as they are; the output head by default, which
    costs little memory to keep and is the most sensitive layer of a language model.
    """

    strategy: ClassVar[str] = "cuda-int8-weight-only"
    skip: tuple[str, ...] = ("lm_head",)

    def __post_init__(self) -> None:
        if not all(isinstance(s, str) and s for s in self.skip):
            raise ConfigError(f"{self.strategy}: skip must be a tuple of layer names, got {self.skip!r}")


@dataclass(frozen=True, kw_only=True)
class CudaInt4WeightOnly(CudaInt8WeightOnly):
    """int4 weights in groups of ``group_size`` input channels (tinygemm kernel; bfloat16 models on
    compute capability 8.0+). Layers whose input size is not a multiple of ``group_size`` stay as they are."""

    strategy: ClassVar[str] = "cuda-int4-weight-only"
    group_size: int = 128

    @override
    def __post_init__(self) -> None:
        super().__post_init__()
        if self.group_size not in GROUP_SIZES:
            raise ConfigError(f"{self.strategy}: group_size must be one of {GROUP_SIZES}, got {self.group_size!r}")


@dataclass(frozen=True, kw_only=True)
class CudaFloat8(CudaInt8WeightOnly):
    """float8 (e4m3) weights, one scale per row; with ``activations`` (default) activations are also
    quantized per row at run time so matmuls use the fp8 tensor cores (compute capability 8.9+:
    L4, RTX 40xx, H100). Layers whose sizes are not multiples of 16 stay as they are."""

    strategy: ClassVar[str] = "cuda-fp8"
    activations: bool = True

    @override
    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.activations, bool):
            raise ConfigError(f"{self.strategy}: activations must be True or False, got {self.activations!r}")


def _torchao_config(config: CompressionConfig) -> Any:
    try:
        from torchao.quantization import (
            Float8DynamicActivationFloat8WeightConfig,
            Float8WeightOnlyConfig,
            Int4WeightOnlyConfig,
            Int8WeightOnlyConfig,
            PerRow,
        )
    except ImportError as exc:
        raise MissingDependencyError(
            "torchao", feature=f"{config.strategy}", install="pip install 'aikit[quant]'"
        ) from exc
    if isinstance(config, CudaInt4WeightOnly):
        return Int4WeightOnlyConfig(group_size=config.group_size, int4_packing_format="tile_packed_to_4d")
    if isinstance(config, CudaFloat8):
        if config.activations:
            return Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
        return Float8WeightOnlyConfig()
    return Int8WeightOnlyConfig()


def _fits(name: str, layer: torch.nn.Linear, config: CudaInt8WeightOnly) -> bool:
    if any(name == s or name.endswith("." + s) for s in config.skip):
        return False
    if isinstance(config, CudaInt4WeightOnly):
        return layer.in_features % config.group_size == 0 and layer.out_features % 8 == 0
    if isinstance(config, CudaFloat8):
        return layer.in_features % 16 == 0 and layer.out_features % 16 == 0
    return True


def quantize_module(module: torch.nn.Module, config: CudaInt8WeightOnly) -> list[str]:
    """Quantize ``module``'s fitting linear layers in place; return their names (device-agnostic)."""
    import torch
    from torchao.quantization import quantize_

    chosen = [n for n, m in module.named_modules() if isinstance(m, torch.nn.Linear) and _fits(n, m, config)]
    wanted = set(chosen)
    quantize_(
        module, _torchao_config(config), filter_fn=lambda m, fqn: fqn in wanted and isinstance(m, torch.nn.Linear)
    )
    return chosen


class _CudaQuantization(Strategy):
    backends: ClassVar[frozenset[str]] = frozenset({"cuda"})
    min_capability: ClassVar[tuple[int, int]] = (0, 0)
    needs_bfloat16: ClassVar[bool] = False
    alternative: ClassVar[str] = "cuda-int8-weight-only"

    @override
    def apply(self, backend: Backend, config: CompressionConfig, context: CompressionContext) -> Backend:
        if not isinstance(config, self.config_class) or not isinstance(config, CudaInt8WeightOnly):
            raise CompressionError(f"{self.name} got a {type(config).__name__}, expected {self.config_class.__name__}")
        import torch

        module = backend.torch_module()
        index = getattr(backend, "index", None)
        if backend.name != "cuda" or not isinstance(module, torch.nn.Module) or not isinstance(index, int):
            raise CompressionError(f"{self.name} runs on the 'cuda' backend; this model runs on {backend.name!r}")
        from aikit_cuda.probe import compute_capability

        capability = compute_capability(index)
        if capability < self.min_capability:
            need = ".".join(map(str, self.min_capability))
            raise CompressionError(
                f"{self.name} needs a GPU of compute capability {need} or newer; {torch.cuda.get_device_name(index)} "
                f"has {capability[0]}.{capability[1]}. Use {self.alternative!r} instead"
            )
        dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), None)
        if self.needs_bfloat16 and dtype is not torch.bfloat16:
            raise CompressionError(
                f"{self.name} needs the model in bfloat16 (it is {dtype}); load it with dtype='bfloat16' "
                "(the default on GPUs that support it)"
            )
        quantized = copy.deepcopy(module)  # the original backend must stay untouched
        names = quantize_module(quantized, config)
        if not names:
            raise CompressionError(f"{self.name}: no linear layer of this model fits the kernel's shape rules")
        logger.info("%s quantized %d linear layers", self.name, len(names))
        return backend.with_module(quantized)


class CudaInt8WeightOnlyStrategy(_CudaQuantization):
    name = "cuda-int8-weight-only"
    config_class = CudaInt8WeightOnly
    description = "int8 per-channel weights on the GPU (torchao); activations in bf16/fp16"


class CudaInt4WeightOnlyStrategy(_CudaQuantization):
    name = "cuda-int4-weight-only"
    config_class = CudaInt4WeightOnly
    description = "int4 group-wise weights on the GPU (torchao tinygemm; compute capability 8.0+, bfloat16)"
    min_capability = (8, 0)
    needs_bfloat16 = True


class CudaFloat8Strategy(_CudaQuantization):
    name = "cuda-fp8"
    config_class = CudaFloat8
    description = "float8 weights and activations on the GPU (torchao; compute capability 8.9+)"
    min_capability = (8, 9)
    needs_bfloat16 = True
