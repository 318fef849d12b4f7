"""Building ONNX Runtime sessions (providers, threads, optimisation level) and feeding them.

``OrtRunner`` wraps one ``InferenceSession`` and keeps the per-call work to a dict lookup per
declared input: it feeds only the inputs the graph declares, casts integer inputs to the declared
width, and maps a single image input onto whatever the graph calls it (``input_1`` for a Keras
export), transposing NCHW to NHWC when the graph is channels-last.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from aikit.errors import BackendError, ConfigError, InputError
from aikit_onnxruntime.settings import OrtSettings

__all__ = ["OrtRunner", "choose_providers", "make_session"]

_NP_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
}


def choose_providers(settings: OrtSettings, device: str | None) -> list[str]:
    """Providers to request: the user's list (checked), else GPU ones for ``device="cuda"``, else CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if settings.providers is not None:
        missing = [p for p in settings.providers if p not in available]
        if missing:
            raise ConfigError(
                f"ONNX Runtime provider(s) {', '.join(missing)} are not available in this onnxruntime build; "
                f"available: {', '.join(available)}"
                + (" (install onnxruntime-gpu for CUDA / TensorRT)" if "CPUExecutionProvider" in available else "")
            )
        return list(settings.providers)
    if device is not None and device.startswith("cuda"):
        gpu = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
        if not gpu:
            raise BackendError(
                "device='cuda' needs onnxruntime-gpu (CUDAExecutionProvider); this onnxruntime offers "
                + ", ".join(available)
            )
        return [*gpu, "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_session(
    path: Path, settings: OrtSettings, *, threads: int | None, device: str | None, optimized_path: Path | None = None
) -> Any:
    """An ``InferenceSession`` for ``path`` with the requested providers, threads and optimisation.

    ``threads`` sets ``intra_op_num_threads`` (default: every core); sessions run sequentially
    (one inter-op thread), which is fastest for the single-stream graphs aikit exports.
    ``optimized_path`` makes ONNX Runtime write its optimised graph there (used for the cache).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or os.cpu_count() or 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[settings.graph_optimization]
    so.log_severity_level = 3  # warnings about unused initializers etc. are noise for users
    for key, value in settings.extra_session_config.items():
        so.add_session_config_entry(key, value)
    if optimized_path is not None:
        so.optimized_model_filepath = str(optimized_path)
    providers = choose_providers(settings, device)
    try:
        return ort.InferenceSession(str(path), so, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
        raise BackendError(f"ONNX Runtime cannot load {path.name}: {type(exc).__name__}: {exc}") from exc


class OrtRunner:
    """One session plus the facts needed to feed it: declared inputs, dtypes, layouts."""

    def __init__(self, session: Any, *, rename_outputs: Mapping[str, str] | None = None) -> None:
        self.session = session
        self.inputs = [(i.name, _NP_TYPES.get(i.type), list(i.shape)) for i in session.get_inputs()]
        self.input_names = [name for name, _, _ in self.inputs]
        self.output_names = [o.name for o in session.get_outputs()]
        self.result_names = [(rename_outputs or {}).get(n, n) for n in self.output_names]
        self._channels_last = {name: _is_channels_last(shape) for name, _, shape in self.inputs}

    def feed(self, arrays: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        """The subset of ``arrays`` the graph declares, converted to its dtypes and layouts."""
        feed: dict[str, NDArray[Any]] = {}
        for name, dtype, _ in self.inputs:
            value = arrays.get(name)
            if value is None:
                if len(self.inputs) == 1 and len(arrays) == 1:  # one image in, whatever the graph calls it
                    value = next(iter(arrays.values()))
                else:
                    raise InputError(
                        f"the ONNX graph needs input {name!r}, which the task did not produce "
                        f"(it produced {', '.join(arrays) or 'nothing'})"
                    )
            if (
                self._channels_last[name]
                and value.ndim == 4
                and value.shape[1] in (1, 3)
                and value.shape[-1] not in (1, 3)
            ):
                value = value.transpose(0, 2, 3, 1)  # the task gives NCHW; a Keras graph wants NHWC
            if dtype is not None and value.dtype != dtype:
                value = value.astype(dtype)
            feed[name] = np.ascontiguousarray(value)
        return feed

    def run(self, arrays: Mapping[str, NDArray[Any]], outputs: Sequence[str] | None = None) -> dict[str, NDArray[Any]]:
        values = self.session.run(list(outputs) if outputs is not None else None, self.feed(arrays))
        names = list(outputs) if outputs is not None else self.result_names
        return dict(zip(names, values))


def _is_channels_last(shape: Sequence[Any]) -> bool:
    """A rank-4 input whose last dimension is a fixed 1 or 3 and whose second is not: NHWC."""
    if len(shape) != 4:
        return False
    last, second = shape[3], shape[1]
    return isinstance(last, int) and last in (1, 3) and not (isinstance(second, int) and second in (1, 3))
