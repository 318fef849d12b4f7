"""``Model.load("x.gguf")`` on ONNX Runtime: the file's own blocks by default, built once and cached.

The ONNX Runtime plugin answers ``aikit_choose_backend`` for a generative model read from a GGUF
file on the CPU (:func:`prefers_native`), and :meth:`OrtBackend.from_loaded_parts` then builds the
``ort-gguf-native`` graph (:func:`native_backend`): the float32 export (cached by
:func:`aikit_onnxruntime.export.cached.export_parts`) with the file's own blocks
(:data:`aikit_onnxruntime.gguf.blocks.NATIVE_TYPES`) put back. The result is cached under a key made
of the GGUF's sha256, the export settings and the library versions, so a later load opens one graph
without exporting or hashing torch weights.

A file whose 2-D tensors are all of types with no exact kernel (``F16``, ``IQ4_XS``, ...) stays on
torch, and the log says what running it de-quantized costs; a file with some such tensors runs
natively and the log names the float32 megabytes left.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aikit.cache import mark_used
from aikit.contracts.options import BackendOptions
from aikit.contracts.parts import ModelParts
from aikit_onnxruntime.gguf.blocks import NATIVE_TYPES

if TYPE_CHECKING:
    from aikit.contracts.task import Task
    from aikit_onnxruntime.backend import OrtBackend
    from aikit_onnxruntime.gguf.strategy import OrtGgufNative

__all__ = ["gguf_tensor_types", "native_backend", "prefers_native"]

logger = logging.getLogger("aikit.onnxruntime")


# GGUF metadata value types: fixed sizes; 8 is a string, 9 an array
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGML_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K"}
_GGML_TYPES.update({11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 30: "BF16"})


@lru_cache(maxsize=16)
def _types(path: str, size: int, mtime_ns: int) -> tuple[tuple[str, int, int], ...]:
    """Parse only the header: skip the metadata, read each tensor's dims and type (gguf's reader parses
    every metadata value into numpy, seconds for a 49k-token vocabulary; this takes milliseconds)."""
    import mmap

    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        version = struct.unpack_from("<I", buf, 4)[0]
        if version not in (2, 3):
            raise ValueError(f"unsupported GGUF version {version}")
        tensors, fields = struct.unpack_from("<QQ", buf, 8)
        pos = 24

        def skip_value(kind: int, pos: int) -> int:
            if kind in _SIZES:
                return pos + _SIZES[kind]
            if kind == 8:
                return pos + 8 + int(struct.unpack_from("<Q", buf, pos)[0])
            if kind == 9:
                item, n = (int(v) for v in struct.unpack_from("<IQ", buf, pos))
                pos += 12
                if item in _SIZES:
                    return pos + n * _SIZES[item]
                for _ in range(n):
                    pos = skip_value(item, pos)
                return pos
            raise ValueError(f"unknown GGUF metadata type {kind}")

        for _ in range(fields):
            pos += 8 + struct.unpack_from("<Q", buf, pos)[0]  # key
            pos = skip_value(struct.unpack_from("<I", buf, pos)[0], pos + 4)
        for _ in range(tensors):
            pos += 8 + struct.unpack_from("<Q", buf, pos)[0]  # name
            dims = struct.unpack_from("<I", buf, pos)[0]
            shape = struct.unpack_from(f"<{dims}Q", buf, pos + 4)
            kind = struct.unpack_from("<I", buf, pos + 4 + 8 * dims)[0]
            pos += 4 + 8 * dims + 4 + 8  # dims, type, offset
            if dims == 2:
                name = _GGML_TYPES.get(kind, f"type {kind}")
                counts[name] += 1
                sizes[name] += int(shape[0]) * int(shape[1])
    return tuple((name, counts[name], sizes[name]) for name in sorted(counts))


def gguf_tensor_types(path: Path) -> dict[str, tuple[int, int]]:
    """GGUF type of the file's 2-D tensors -> (tensor count, element count); read from the header only."""
    st = path.stat()
    return {name: (n, elements) for name, n, elements in _types(str(path), st.st_size, st.st_mtime_ns)}


def prefers_native(parts: ModelParts, task: type[Task], options: BackendOptions, *, fallback: str = "torch") -> bool:
    """Whether ``backend="auto"`` should run these parts on ONNX Runtime with the GGUF's own blocks.

    Yes for a generative torch model read from a GGUF file, on the CPU with no other ``dtype`` asked
    for, when at least one of the
    file's matrices has a type that maps exactly (:data:`aikit_onnxruntime.gguf.blocks.NATIVE_TYPES`). A file with
    none says so in the log (the cost: every weight runs de-quantized in float32 on ``fallback``).
    """
    if parts.source.kind != "gguf" or not task.generative or parts.payload != "torch":
        return False
    if options.device is not None and not options.device.startswith("cpu"):
        return False
    if options.dtype not in (None, "float32"):  # e.g. dtype="bfloat16" asks for torch's half-precision path
        return False
    try:
        types = gguf_tensor_types(Path(parts.source.location))
    except (OSError, ValueError, struct.error) as exc:
        logger.info("cannot read the tensor types of %s (%s); running it on %s", parts.source.location, exc, fallback)
        return False
    if not any(t in NATIVE_TYPES for t in types):
        elements = sum(e for _, e in types.values())
        logger.warning(
            "%s holds %s matrices, which no ONNX Runtime kernel runs exactly (mapped: %s): running it on %s, "
            "de-quantized to float32 (%.0f MB of weights)",
            Path(parts.source.location).name,
            ", ".join(sorted(types)),
            ", ".join(NATIVE_TYPES),
            fallback,
            elements * 4 / 1e6,
        )
        return False
    return True


def native_backend(parts: ModelParts, options: BackendOptions) -> tuple[OrtBackend, OrtGgufNative]:
    """The ``ort-gguf-native`` ORT backend for GGUF ``parts`` and the config it applied.

    The config is the default (float32 math, the de-quantized model's tokens) unless
    ``backend_options`` name an ``accuracy_level`` (``4``: int8 activations; see
    :class:`aikit_onnxruntime.gguf.strategy.OrtGgufNative`); each setting is cached under its own key.
    Builds on a cache miss (export, then block mapping, with a progress bar on a terminal) and
    logs what stayed float32; a hit opens the cached graph only, without building a module the
    loader deferred (``ModelParts.module_loader``) or importing torch.
    """
    from aikit_onnxruntime.backend import OrtBackend
    from aikit_onnxruntime.export.cache import cached_entry, entry_key
    from aikit_onnxruntime.export.cached import export_parts
    from aikit_onnxruntime.gguf.strategy import _LAYOUT, OrtGgufNative, OrtGgufNativeStrategy, build_native
    from aikit_onnxruntime.settings import OrtSettings, export_settings

    settings = OrtSettings.from_options(options.extra)
    config = OrtGgufNative(accuracy_level=settings.accuracy_level or 0)
    gguf = Path(parts.source.location)
    key = entry_key(
        weights=f"gguf:{parts.source.sha256}",
        task="text-generation/ort-gguf-native",
        settings={**export_settings(settings), **config.to_dict(), "layout": _LAYOUT},
    )

    def build(tmp: Path) -> dict[str, Any]:
        logger.info("first load of %s: building its ONNX Runtime graph (cached for later loads)", gguf.name)
        bar = _bar(2)
        try:
            if bar is not None:
                bar.set_description("aikit: export the float32 graph")
            parts.require_module()  # the export runs the float32 torch module
            folder, facts = export_parts(parts, settings)
            if bar is not None:
                bar.update(1)
                bar.set_description("aikit: map the GGUF's blocks")
            sources = {name: folder / str(file) for name, file in facts["graphs"].items()}

            def progress(done: int, total: int) -> None:
                if bar is not None:
                    bar.set_postfix_str(f"{done}/{total} MatMuls", refresh=False)

            native = build_native(tmp, sources, facts, gguf, config, progress)
            native["float_graphs"] = str(folder)
            native["eos_token_ids"] = parts.task_state.get("eos_token_ids")
            if bar is not None:
                bar.update(1)
            return native
        finally:
            if bar is not None:
                bar.close()

    folder, facts = cached_entry(key, build, use_cache=settings.cache)
    if facts.get("float_graphs"):
        # The float32 graphs the file's other forms are built from (optimize's int8 candidate): used
        # with this entry, so the cache's size bound does not remove them first.
        mark_used(Path(str(facts["float_graphs"])))
    eos = facts.get("eos_token_ids")
    if eos is not None:  # what export_parts records from the torch module's generation config
        parts.task_state["eos_token_ids"] = list(eos)
    for line in OrtGgufNativeStrategy().notes(folder):
        (logger.warning if "kept in float32" in line else logger.info)("%s: %s", gguf.name, line)
    return OrtBackend(folder, facts, options, config=parts.config), config


def _bar(total: int) -> Any:
    """aikit's progress rule (``aikit.progress``): a bar on a terminal, none in logs, CI or pipes."""
    from aikit.progress import progress_bar

    return progress_bar(total, desc="aikit: first load", unit="step", leave=False)
