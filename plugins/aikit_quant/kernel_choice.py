"""``kernel="auto"`` for the weight-only Linears: packed or unpacked, decided by a measurement.

A CPU feature flag does not tell which is faster: on a Xeon with AVX-512 VNNI and AMX, ATen's
packed int8 weight-only kernel (``_weight_int8pack_mm``) ran MiniLM 50x slower than the fp32 GEMM
on expanded weights, although AVX-512 was supposed to be its fast path. So the first ``auto``
choice on a machine times both kernels on one layer, and the answer is cached per CPU model,
CPU flags, torch version and thread count in ``kernel-choice.json`` in aikit's cache folder
(``$AIKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/aikit`` or ``~/.cache/aikit``; ``aikit.cache``): later
processes read it instead of measuring again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aikit.cache import cache_dir

__all__ = ["cache_path", "machine_key", "measure", "packed_is_faster"]

KINDS = ("int8", "int4")
# One mid-sized layer, timed at decode (1 row) and batch (32 rows) shapes: the two regimes the
# weight-only strategies serve. Small enough that a measurement takes well under a second.
_IN, _OUT, _ROWS = 1024, 1024, (1, 32)
_lock = threading.Lock()
_memo: dict[str, bool] = {}


def cache_path() -> Path:
    """``kernel-choice.json`` in aikit's cache folder (``aikit.cache.cache_dir``)."""
    return cache_dir("kernel-choice.json")


def machine_key(kind: str) -> str:
    """What a measurement depends on: CPU model and flags, torch version, intra-op threads, kernel kind."""
    import torch

    from aikit.sysinfo import cpu_flags, cpu_model

    parts = [kind, cpu_model(), " ".join(sorted(cpu_flags())), torch.__version__, str(torch.get_num_threads())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def measure(kind: str) -> dict[str, float]:
    """Seconds per call of the packed and the unpacked kernel on one random ``kind`` layer (best of 5)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    linear = nn.Linear(_IN, _OUT, bias=False)
    times: dict[str, float] = {}
    for packed in (True, False):
        module = _module(kind, linear, packed=packed)
        total = 0.0
        for rows in _ROWS:
            x = torch.randn(rows, _IN)
            with torch.inference_mode():
                module(x)  # builds the kernel layout / expanded weights outside the timing
                best = float("inf")
                for _ in range(5):
                    start = time.perf_counter()
                    for _ in range(3):
                        module(x)
                    best = min(best, (time.perf_counter() - start) / 3)
            total += best
        times["packed" if packed else "unpacked"] = total
    return times


def _module(kind: str, linear: Any, *, packed: bool) -> Any:
    if kind == "int8":
        from .int8_modules import Int8WeightOnlyLinear

        m8 = Int8WeightOnlyLinear(_IN, _OUT, bias=False, packed=packed)
        m8.fill(linear)
        return m8
    from .int4_modules import Int4WeightOnlyLinear

    m4 = Int4WeightOnlyLinear(_IN, _OUT, group_size=128, bias=False, packed=packed)
    m4.fill(linear, method="rtn")
    return m4


def packed_is_faster(kind: str, *, timer: Callable[[str], dict[str, float]] | None = None) -> bool:
    """Whether ATen's packed ``kind`` ("int8" or "int4") kernel beat the unpacked one on this machine.

    Measured once per machine key (``timer``, default :func:`measure`, runs then) and cached on disk; an unreadable or
    unwritable cache only costs a new measurement. A kernel that fails to run counts as slower.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    key = machine_key(kind)
    with _lock:
        if key in _memo:
            return _memo[key]
        path = cache_path()
        table = _read(path)
        entry = table.get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("packed"), bool):
            try:
                times = (timer or measure)(kind)
                entry = {
                    "kind": kind,
                    "packed_s": times["packed"],
                    "unpacked_s": times["unpacked"],
                    "packed": times["packed"] < times["unpacked"],
                }
            except (RuntimeError, NotImplementedError) as exc:  # no packed kernel in this torch build
                entry = {"kind": kind, "packed": False, "error": str(exc)}
            table[key] = entry
            _write(path, table)
        _memo[key] = bool(entry["packed"])
        return _memo[key]


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, table: dict[str, Any]) -> None:
    # Written to a temporary file and renamed: a concurrent reader sees the old or the new table.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".kernel-choice-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(table, f, indent=1, default=str)
        os.replace(tmp, path)
    except OSError:
        pass
