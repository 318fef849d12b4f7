"""ORT-native compression: ``ort-int8-dynamic``, ``ort-int8-rows`` (per-token activation ranges),
``ort-int8-static`` (QDQ), ``ort-int8-weight-only`` and ``ort-int4-weight-only`` (``MatMulNBits``),
registered for the ``onnxruntime`` backend.

Each strategy quantizes every graph of an ``OrtBackend`` into a new cache entry and returns a new
backend; the original graphs are untouched. They take part in ``Model.compress``'s accuracy
guard: ``guard_layers`` names the quantizable nodes and ``exclude`` (node names or fnmatch
patterns such as ``"*layer.5*"``) keeps nodes in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from typing_extensions import override

import aikit_onnxruntime.compress.quantize as quantize
from aikit.contracts.backend import Backend
from aikit.contracts.strategy import CompressionConfig, CompressionContext, Strategy
from aikit.errors import CompressionError, ConfigError
from aikit_onnxruntime.export.cache import cached_entry, entry_key

if TYPE_CHECKING:
    from aikit_onnxruntime.backend import OrtBackend

__all__ = ["STRATEGIES", "OrtInt4WeightOnly", "OrtInt8Dynamic", "OrtInt8Rows", "OrtInt8Static", "OrtInt8WeightOnly"]

ORT = frozenset({"onnxruntime"})
_INT8_OPS = ("MatMul", "Attention")


def _check_exclude(exclude: Any) -> None:
    if not isinstance(exclude, tuple) or not all(isinstance(e, str) and e for e in exclude):
        raise ConfigError(f"exclude must be a tuple of node names or patterns, got {exclude!r}")


@dataclass(frozen=True, kw_only=True)
class OrtInt8Dynamic(CompressionConfig):
    """int8 weights, activations quantized per call (``quantize_dynamic``); per-channel weights by default."""

    strategy: ClassVar[str] = "ort-int8-dynamic"
    per_channel: bool = True
    reduce_range: bool = False
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_exclude(self.exclude)


@dataclass(frozen=True, kw_only=True)
class OrtInt8Rows(CompressionConfig):
    """int8 per-column weights, activations quantized per row (token) per call (``quantize_rows``).

    ``symmetric``: node names / fnmatch patterns whose rows use a symmetric range (one pass
    cheaper, less exact on one-signed inputs); the others get an asymmetric (min/max) range.
    ``per_tensor``: nodes that keep ONNX Runtime's one range per call (``DynamicQuantizeMatMul``:
    fastest, for nodes whose inputs have no outlier tokens); they win over ``symmetric``.
    ``reduce_range``: 7-bit weights, for CPUs without VNNI (AVX2 only), whose u8 x s8 kernel adds
    pairs of products in saturating int16.
    ``exclude``: nodes kept in float32.
    """

    strategy: ClassVar[str] = "ort-int8-rows"
    symmetric: tuple[str, ...] = ()
    per_tensor: tuple[str, ...] = ()
    reduce_range: bool = False
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_exclude(self.exclude)
        for field in ("symmetric", "per_tensor"):
            value = getattr(self, field)
            if not isinstance(value, tuple) or not all(isinstance(e, str) and e for e in value):
                raise ConfigError(f"{self.strategy}: {field} must be a tuple of node names or patterns, got {value!r}")
        if not isinstance(self.reduce_range, bool):
            raise ConfigError(f"{self.strategy}: reduce_range must be true or false, got {self.reduce_range!r}")


@dataclass(frozen=True, kw_only=True)
class OrtInt8Static(CompressionConfig):
    """int8 weights and activations with scales fixed from calibration data, QDQ format."""

    strategy: ClassVar[str] = "ort-int8-static"
    per_channel: bool = True
    method: str = "minmax"
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_exclude(self.exclude)
        if self.method not in ("minmax", "entropy", "percentile"):
            raise ConfigError(f"ort-int8-static: method must be minmax, entropy or percentile, got {self.method!r}")


@dataclass(frozen=True, kw_only=True)
class OrtInt8WeightOnly(CompressionConfig):
    """8-bit blockwise weights in ``MatMulNBits``; ``accuracy_level`` 4 computes in int8 (fastest)."""

    strategy: ClassVar[str] = "ort-int8-weight-only"
    block_size: int = 32
    accuracy_level: int = 4
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_exclude(self.exclude)
        if self.block_size not in (16, 32, 64, 128, 256):
            raise ConfigError(f"{self.strategy}: block_size must be 16, 32, 64, 128 or 256, got {self.block_size!r}")
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise ConfigError(f"{self.strategy}: accuracy_level must be 0-4, got {self.accuracy_level!r}")


@dataclass(frozen=True, kw_only=True)
class OrtInt4WeightOnly(OrtInt8WeightOnly):
    """4-bit blockwise weights in ``MatMulNBits`` (what onnxruntime-genai's int4 models use)."""

    strategy: ClassVar[str] = "ort-int4-weight-only"


def with_cached_graphs(backend: OrtBackend, folder: Path, facts: dict[str, Any]) -> OrtBackend:
    """``backend`` running the graphs of cache entry ``folder`` (with ``facts``); a decoder's
    onnxruntime-genai config travels along, so the compressed graph stays runnable by genai."""
    if (backend.folder / "genai_config.json").is_file() and not (folder / "genai_config.json").exists():
        import shutil

        shutil.copyfile(backend.folder / "genai_config.json", folder / "genai_config.json")
    return backend.with_graphs(folder, facts)


def guard_nodes(backend: Backend, op_types: tuple[str, ...], exclude: tuple[str, ...]) -> list[str]:
    """``op_types`` nodes with constant weights in every graph of an ORT ``backend``, in graph order,
    less those ``exclude`` names: what the accuracy guard may keep in float32."""
    from aikit_onnxruntime.backend import OrtBackend

    if not isinstance(backend, OrtBackend):
        return []
    names: list[str] = []
    for graph in backend.facts["graphs"]:
        names += quantize.quantizable_nodes(backend.graph_path(graph), op_types)
    excluded = set(quantize.resolve_exclusions(names, exclude))
    return [n for n in names if n not in excluded]


class _OrtStrategy(Strategy):
    backends: ClassVar[frozenset[str]] = ORT
    op_types: ClassVar[tuple[str, ...]] = _INT8_OPS

    def quantize_graph(self, src: Path, dst: Path, config: Any, backend: Any, context: CompressionContext) -> None:
        raise NotImplementedError

    @override
    def apply(self, backend: Backend, config: CompressionConfig, context: CompressionContext) -> Backend:
        from aikit_onnxruntime.backend import OrtBackend, graph_bytes

        if not isinstance(backend, OrtBackend):
            raise CompressionError(f"{self.name} needs a model on the onnxruntime backend, not {backend.name!r}")
        if backend.facts.get("dtype") == "gguf-native":  # its helper MatMuls would be rounded, the blocks kept
            raise CompressionError(
                f"{self.name}: this model already runs its GGUF file's own quantized blocks (ort-gguf-native, what "
                "Model.load('x.gguf') builds); to re-quantize the float32 weights instead, start from them: "
                f"Model.load('x.gguf', backend='torch').to('onnxruntime').compress({self.name!r})"
            )
        sources = {name: backend.graph_path(name) for name in backend.facts["graphs"]}
        stamp = {name: f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for name, p in sources.items()}
        key = entry_key(weights=str(sorted(stamp.items())), task=self.name, settings=config.to_dict())

        def build(tmp: Path) -> dict[str, Any]:
            facts = dict(backend.facts)
            facts["graphs"] = {name: f"{name}.onnx" for name in sources}
            for i, (name, src) in enumerate(sources.items()):
                self.quantize_graph(src, tmp / f"{name}.onnx", config, backend, context)
                context.progress(i + 1, len(sources))
            facts["dtype"] = self.name.removeprefix("ort-")
            facts["quantization"] = [*backend.facts.get("quantization", []), config.to_dict()]
            return facts

        folder, facts = cached_entry(key, build)
        new = with_cached_graphs(backend, folder, facts)
        notes = getattr(context, "notes", None)
        if isinstance(notes, list):
            before = sum(graph_bytes(p) for p in sources.values())
            after = sum(graph_bytes(new.graph_path(n)) for n in sources)
            notes.append(f"{self.name}: ONNX graph size {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
        return new

    def guard_layers(self, backend: Backend, config: CompressionConfig) -> list[str]:
        """Quantizable node names in ``backend``'s graphs, less those ``config`` excludes."""
        return guard_nodes(backend, self.op_types, getattr(config, "exclude", ()))

    def slowdown_reason(self) -> str:
        from aikit.sysinfo import cpu_flags, has_int8_dot_product

        if not has_int8_dot_product():
            simd = " ".join(sorted(cpu_flags() & {"avx2", "avx512f", "avx512bw", "neon"})) or "none"
            return (
                "this CPU has no int8 dot-product instructions (no AVX512-VNNI / AVX-VNNI / AMX; SIMD: "
                f"{simd}), so ONNX Runtime's int8 kernels run on slower paths"
            )
        return "quantize/dequantize overhead outweighs the int8 gain at these batch shapes"


class OrtInt8DynamicStrategy(_OrtStrategy):
    name = "ort-int8-dynamic"
    config_class = OrtInt8Dynamic
    description = "ONNX Runtime dynamic int8 (per-channel weights, activations quantized per call)"

    @override
    def quantize_graph(self, src: Path, dst: Path, config: Any, backend: Any, context: CompressionContext) -> None:
        quantize.dynamic_int8(
            src,
            dst,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            exclude=config.exclude,
            op_types=self.op_types,
        )


class OrtInt8RowsStrategy(_OrtStrategy):
    name = "ort-int8-rows"
    config_class = OrtInt8Rows
    op_types = ("MatMul",)
    description = "ONNX Runtime int8 GEMM with per-token activation ranges (per-channel int8 weights)"

    @override
    def apply(self, backend: Backend, config: CompressionConfig, context: CompressionContext) -> Backend:
        from aikit_onnxruntime.backend import OrtBackend

        new = super().apply(backend, config, context)
        # Said on every call (a cached graph skips quantize_graph): fused Attention nodes hold
        # their Q/K/V weights themselves, and this strategy rewrites MatMuls only.
        if not isinstance(backend, OrtBackend):  # pragma: no cover - super().apply refused it already
            return new
        attention = [
            n
            for g in backend.facts["graphs"]
            for n in quantize.quantizable_nodes(backend.graph_path(g), ("Attention",))
        ]
        notes = getattr(context, "notes", None)
        if attention and isinstance(notes, list):
            notes.append(
                f"ort-int8-rows: {len(attention)} fused Attention nodes keep their Q/K/V weights in float32; "
                "convert with backend_options={'fusions': False} to quantize them too"
            )
        return new

    @override
    def quantize_graph(self, src: Path, dst: Path, config: Any, backend: Any, context: CompressionContext) -> None:
        from aikit_onnxruntime.compress.quantize_rows import rows_int8

        rows_int8(
            src,
            dst,
            symmetric=config.symmetric,
            per_tensor=config.per_tensor,
            reduce_range=config.reduce_range,
            exclude=config.exclude,
        )


class OrtInt8StaticStrategy(_OrtStrategy):
    name = "ort-int8-static"
    config_class = OrtInt8Static
    needs_calibration = True
    op_types = ("MatMul", "Gemm", "Conv")
    description = "ONNX Runtime static int8 (QDQ), scales calibrated on your data"

    @override
    def quantize_graph(self, src: Path, dst: Path, config: Any, backend: Any, context: CompressionContext) -> None:
        if backend.kind != "single":
            raise CompressionError(
                "ort-int8-static calibrates single-graph models (encoders, classifiers); for text generation "
                "use ort-int4-weight-only or ort-int8-weight-only"
            )
        if not context.calibration:
            raise CompressionError("ort-int8-static needs calibration data: pass calibration=[...]")
        runner = backend.runners["model"]
        quantize.static_int8(
            src,
            dst,
            batches=list(context.calibration),
            feed=runner.feed,
            per_channel=config.per_channel,
            method=config.method,
            exclude=config.exclude,
            op_types=self.op_types,
        )


class OrtInt8WeightOnlyStrategy(_OrtStrategy):
    name = "ort-int8-weight-only"
    config_class = OrtInt8WeightOnly
    op_types = ("MatMul",)
    bits: ClassVar[int] = 8
    description = "ONNX Runtime MatMulNBits with 8-bit blockwise weights"

    @override
    def quantize_graph(self, src: Path, dst: Path, config: Any, backend: Any, context: CompressionContext) -> None:
        quantize.weight_only(
            src,
            dst,
            bits=self.bits,
            block_size=config.block_size,
            accuracy_level=config.accuracy_level,
            exclude=config.exclude,
        )


class OrtInt4WeightOnlyStrategy(OrtInt8WeightOnlyStrategy):
    name = "ort-int4-weight-only"
    config_class = OrtInt4WeightOnly
    bits: ClassVar[int] = 4
    description = "ONNX Runtime MatMulNBits with 4-bit blockwise weights"


STRATEGIES: tuple[type[Strategy], ...] = (
    OrtInt8DynamicStrategy,
    OrtInt8RowsStrategy,
    OrtInt8StaticStrategy,
    OrtInt8WeightOnlyStrategy,
    OrtInt4WeightOnlyStrategy,
)
