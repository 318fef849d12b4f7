"""``ort-gguf-native``: a GGUF model's ONNX graph running the file's own quantized blocks (``MatMulNBits``).

Unlike ``ort-int4-weight-only``, nothing is re-quantized: each MatMul whose weight came from a
``Q4_0`` / ``Q4_1`` / ``Q8_0`` / ``Q4_K`` tensor gets exactly that tensor's blocks
(:mod:`aikit_onnxruntime.gguf.native`), so the graph computes the same weights as the de-quantized float32 model
and greedy decoding follows it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from typing_extensions import override

from aikit.contracts.backend import Backend
from aikit.contracts.strategy import CompressionConfig, CompressionContext, Strategy
from aikit.errors import CompressionError, ConfigError
from aikit_onnxruntime.export.cache import cached_entry, entry_key
from aikit_onnxruntime.gguf.blocks import NATIVE_TYPES

if TYPE_CHECKING:
    from aikit_onnxruntime.backend import OrtBackend
from aikit_onnxruntime.compress.strategies import ORT, guard_nodes, with_cached_graphs

__all__ = ["OrtGgufNative", "OrtGgufNativeStrategy", "build_native", "float_backend", "gguf_source"]

_REPORT = "gguf_native.json"
# Part of the cache key: bump when the graph this strategy writes changes for the same inputs
# (the key's library versions leave aikit's own out, so a cached old layout would be reused).
_LAYOUT = 11


@dataclass(frozen=True, kw_only=True)
class OrtGgufNative(CompressionConfig):
    """Map the source GGUF's ``Q4_0`` / ``Q4_1`` / ``Q8_0`` / ``Q4_K`` blocks onto ``MatMulNBits``.

    ``gguf``: the GGUF file; empty means the one the model was loaded from.
    ``accuracy_level``: ``0`` computes in float32 (the de-quantized model's results up to summation
    order; ``Q8_0`` runs as two exact 4-bit halves, since ONNX Runtime 1.32's 8-bit kernel has no
    fast float32 path); ``4`` quantizes activations to int8 per block (what llama.cpp's CPU kernels
    do: faster, no longer the float32 model's logits; ``Q8_0`` runs as one 8-bit operator).
    ``exclude``: MatMul node names / fnmatch patterns kept in float32.
    """

    strategy: ClassVar[str] = "ort-gguf-native"
    gguf: str = ""
    accuracy_level: int = 0
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.gguf, str):
            raise ConfigError(f"{self.strategy}: gguf must be a path string, got {self.gguf!r}")
        if self.accuracy_level not in (0, 4):
            raise ConfigError(
                f"{self.strategy}: accuracy_level must be 0 (float32) or 4 (int8), got {self.accuracy_level!r}"
            )
        if not isinstance(self.exclude, tuple) or not all(isinstance(e, str) and e for e in self.exclude):
            raise ConfigError(
                f"{self.strategy}: exclude must be a tuple of node names or patterns, got {self.exclude!r}"
            )

    def mapped_types(self) -> tuple[str, ...]:
        """The GGUF types this setting turns into ``MatMulNBits``."""
        return tuple(NATIVE_TYPES)


def gguf_source(backend: Backend, context: CompressionContext, config: OrtGgufNative) -> Path:
    """The GGUF file to read: ``config.gguf``, else the backend's recorded source, else the loaded model's source."""
    candidates: list[str] = [config.gguf] if config.gguf else []
    facts = getattr(backend, "facts", {})
    if isinstance(facts, dict) and isinstance(facts.get("source_gguf"), str):
        candidates.append(facts["source_gguf"])
    source = getattr(getattr(context.task, "parts", None), "source", None)
    if source is not None and source.kind == "gguf":
        candidates.append(source.location)
    for candidate in candidates:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path.resolve()
    raise CompressionError(
        "ort-gguf-native needs the GGUF file the model came from: load it with Model.load('model.gguf') "
        "or pass compress('ort-gguf-native', gguf='path/to/model.gguf')"
        + (f" (not found: {', '.join(candidates)})" if candidates else "")
    )


class OrtGgufNativeStrategy(Strategy):
    name = "ort-gguf-native"
    config_class = OrtGgufNative
    backends: ClassVar[frozenset[str]] = ORT
    description = "ONNX Runtime MatMulNBits holding the source GGUF's own Q4_0/Q4_1/Q8_0 blocks (not re-quantized)"

    @override
    def apply(self, backend: Backend, config: CompressionConfig, context: CompressionContext) -> Backend:
        """A new backend whose graphs hold the GGUF's blocks; notes name what stayed float32 and its size."""
        from aikit_onnxruntime.backend import OrtBackend, graph_bytes

        if not isinstance(backend, OrtBackend):
            raise CompressionError(f"{self.name} needs a model on the onnxruntime backend, not {backend.name!r}")
        assert isinstance(config, OrtGgufNative)
        gguf = gguf_source(backend, context, config)
        if backend.facts.get("dtype") == "gguf-native":
            done = backend.facts.get("quantization") or [{}]
            if done[-1] == config.to_dict() and str(backend.facts.get("source_gguf")) == str(gguf):
                self._note(context, f"{self.name}: the graph already runs these blocks with these settings; unchanged")
                return backend
            backend = float_backend(backend)
        assert isinstance(backend, OrtBackend)
        sources = {name: backend.graph_path(name) for name in backend.facts["graphs"]}
        stamp = {name: f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for name, p in sources.items()}
        g = gguf.stat()
        weights = str([sorted(stamp.items()), f"{gguf}:{g.st_size}:{g.st_mtime_ns}"])
        key = entry_key(weights=weights, task=self.name, settings={**config.to_dict(), "layout": _LAYOUT})

        def build(tmp: Path) -> dict[str, Any]:
            facts = build_native(tmp, sources, backend.facts, gguf, config, context.progress)
            if "float_graphs" not in facts:  # the float32 graphs a later ort-gguf-native setting starts from
                facts["float_graphs"] = str(backend.folder)
            return facts

        folder, facts = cached_entry(key, build)
        new = with_cached_graphs(backend, folder, facts)
        notes = getattr(context, "notes", None)
        if isinstance(notes, list):
            notes += self.notes(folder)
            before = sum(graph_bytes(p) for p in sources.values())
            after = sum(graph_bytes(new.graph_path(n)) for n in sources)
            notes.append(f"{self.name}: ONNX graph size {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
        return new

    @staticmethod
    def _note(context: CompressionContext, line: str) -> None:
        notes = getattr(context, "notes", None)
        if isinstance(notes, list):
            notes.append(line)

    def notes(self, folder: Path) -> list[str]:
        """Report lines recorded when ``folder`` was built: what mapped, what stayed float32 and why."""
        from aikit_onnxruntime.gguf.native import NativeReport

        try:
            reports = json.loads((folder / _REPORT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        lines: list[str] = []
        for graph, data in reports.items():
            report = NativeReport(
                mapped=data["mapped"],
                kept=data["kept"],
                float_bytes=data["float_bytes"],
                gathers=data.get("gathers", {}),
            )
            lines += report.notes(self.name if len(reports) == 1 else f"{self.name} ({graph})")
        return lines

    def guard_layers(self, backend: Backend, config: CompressionConfig) -> list[str]:
        """MatMuls with constant weights (the ones that may map), less those ``config`` excludes."""
        return guard_nodes(backend, ("MatMul",), getattr(config, "exclude", ()))


def build_native(
    tmp: Path,
    sources: dict[str, Path],
    base_facts: dict[str, Any],
    gguf: Path,
    config: OrtGgufNative,
    progress: Callable[[int, int], None],
) -> dict[str, Any]:
    """Write the ``sources`` float32 graphs into ``tmp`` with ``gguf``'s blocks; the new graphs' facts.

    Also writes the per-graph report (:meth:`OrtGgufNativeStrategy.notes` reads it) and copies
    onnxruntime-genai's ``genai_config.json`` from the source folder, so genai can run the result.
    """
    import shutil

    from aikit_onnxruntime.gguf.decode import add_decode_head
    from aikit_onnxruntime.gguf.native import GgufIndex, gguf_native_graph

    index = GgufIndex(gguf)
    facts = dict(base_facts)
    facts["graphs"] = {name: f"{name}.onnx" for name in sources}
    reports = {}
    for name, src in sources.items():
        reports[name] = gguf_native_graph(
            src,
            tmp / f"{name}.onnx",
            index,
            accuracy_level=config.accuracy_level,
            types=config.mapped_types(),
            exclude=config.exclude,
            progress=progress,
        ).to_dict()
        genai = src.parent / "genai_config.json"
        if genai.is_file() and not (tmp / "genai_config.json").exists():
            shutil.copyfile(genai, tmp / "genai_config.json")
    if base_facts.get("kind") == "decoder" and add_decode_head(tmp / "model.onnx", tmp / "decode.onnx"):
        facts["graphs"] = {"model": "decode.onnx"}  # model.onnx stays for onnxruntime-genai (genai_config.json)
    (tmp / _REPORT).write_text(json.dumps(reports, indent=1), encoding="utf-8")
    facts["dtype"] = "gguf-native"
    facts["source_gguf"] = str(gguf)
    facts["quantization"] = [*base_facts.get("quantization", []), config.to_dict()]
    return facts


def float_backend(backend: Backend) -> OrtBackend:
    """The float32 graphs a ``gguf-native`` ORT backend was built from, as a backend of the same settings.

    Raises ``CompressionError`` naming the way back to float32 when they are no longer cached.
    """
    from aikit_onnxruntime.backend import OrtBackend

    assert isinstance(backend, OrtBackend)
    folder = Path(str(backend.facts.get("float_graphs", "")))
    entry = folder / "entry.json"
    if not backend.facts.get("float_graphs") or not entry.is_file():
        raise CompressionError(
            "this model already runs a GGUF file's own blocks and the float32 graph it was built from is no "
            "longer cached (removed, or aikit's cache bound AIKIT_CACHE_MAX_GB removed it); load the file with the "
            "setting instead, such as Model.load('model.gguf', backend_options={'accuracy_level': 4}), or start "
            "from float32 with Model.load('model.gguf', backend='torch').to('onnxruntime')"
        )
    return backend.with_graphs(folder, json.loads(entry.read_text(encoding="utf-8")))
