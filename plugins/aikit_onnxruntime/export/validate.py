"""Checking an exported graph against the torch outputs it replaces."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from aikit.errors import BackendError

__all__ = ["ExportMismatchError", "compare_outputs"]


class ExportMismatchError(BackendError):
    """An exported ONNX graph does not reproduce the torch model within the stated tolerance."""


def compare_outputs(
    what: str,
    onnx_out: Mapping[str, NDArray[Any]],
    torch_out: Mapping[str, NDArray[Any]],
    *,
    atol: float,
    rtol: float,
    masks: Mapping[str, NDArray[np.bool_]] | None = None,
) -> dict[str, float]:
    """Max abs difference per output; raise ``ExportMismatchError`` when one exceeds its tolerance.

    The tolerance of an output is ``atol + rtol * max|torch|``. ``masks`` selects the positions
    that count (padding positions of a left-padded prompt hold undefined values in both).
    """
    report: dict[str, float] = {}
    for name, expected in torch_out.items():
        got = onnx_out.get(name)
        if got is None:
            raise ExportMismatchError(f"{what}: the ONNX graph has no output {name!r}")
        if got.shape != expected.shape:
            raise ExportMismatchError(
                f"{what}: output {name!r} has shape {got.shape} in ONNX Runtime but {expected.shape} in torch"
            )
        a, b = got.astype(np.float32), expected.astype(np.float32)
        mask = (masks or {}).get(name)
        if mask is not None:
            a, b = a[mask], b[mask]
        if not np.isfinite(a).all():
            raise ExportMismatchError(f"{what}: output {name!r} holds NaN or infinite values in ONNX Runtime")
        diff = float(np.abs(a - b).max()) if a.size else 0.0
        allowed = atol + rtol * (float(np.abs(b).max()) if b.size else 0.0)
        if diff > allowed:
            raise ExportMismatchError(
                f"{what}: output {name!r} differs from torch by up to {diff:.3g} "
                f"(allowed {allowed:.3g} = atol {atol:g} + rtol {rtol:g} * max|torch|). "
                "The exported graph does not reproduce the model; report this with the model's architecture, "
                "or pass backend_options={'atol': ..., 'rtol': ...} if the difference is acceptable"
            )
        report[name] = diff
    return report
