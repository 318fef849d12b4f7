"""The memory guard ``Model.load`` runs before reading any weights.

Loading a model far larger than the free memory does not fail cleanly: the kernel's OOM killer
ends the process (and possibly others) minutes later. So, before a loader reads anything, aikit
adds up the sizes of the weight files a source holds, scales them to the bytes they occupy once
loaded, and refuses with ``ResourceError`` when that clearly exceeds the memory the OS reports as
available. The estimate is deliberately a lower bound (what the loaded weights alone occupy,
not activations or transient copies), so the guard never blocks a load that could have fitted.

Set ``AIKIT_SKIP_MEMORY_CHECK=1`` to skip the check (for example when swap is configured).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aikit.errors import ResourceError

__all__ = ["MemoryEstimate", "check_memory", "estimate_load_bytes"]

SKIP_ENV = "AIKIT_SKIP_MEMORY_CHECK"
# Refuse only when the estimate exceeds this share of MemAvailable: the OS, caches and the
# Python process itself need the rest, and a near miss is better tried than refused.
AVAILABLE_FRACTION = 0.9

# Loaded bytes per byte on disk. GGUF weights are de-quantised to float32 and the module is rebuilt
# once: at least ~4x the file for every common quantisation (F16: 2x, twice; Q8_0: 3.8x; Q4: 6-7x).
_FACTORS = {
    ".gguf": 4.0,
    ".safetensors": 1.0,
    ".onnx": 1.0,
    ".data": 1.0,  # ONNX external data (model.onnx.data)
    ".bin": 1.0,
    ".pt": 1.0,
    ".pth": 1.0,
    ".ckpt": 1.0,
}
_PICKLED = (".bin", ".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a source needs once loaded, and the weight files the figure comes from."""

    needed: int
    files: tuple[Path, ...]


def _weight_files(directory: Path) -> list[Path]:
    # Only model folders (weights sit at their top level); never walk an arbitrary tree.
    if not any((directory / marker).is_file() for marker in ("config.json", "aikit.json")):
        return []
    found = [p for p in directory.iterdir() if p.suffix.lower() in _FACTORS and p.is_file()]
    if any(p.suffix == ".safetensors" for p in found):  # HF folders may ship both; safetensors wins
        found = [p for p in found if p.suffix.lower() not in _PICKLED]
    return sorted(found)


def estimate_load_bytes(source: object) -> MemoryEstimate | None:
    """A lower bound on the memory loading ``source`` takes, or None when it is not a local path."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    path = Path(source)
    try:
        if path.is_file():
            files = [path] if path.suffix.lower() in _FACTORS else []
        elif path.is_dir():
            files = _weight_files(path)
        else:
            return None
        needed = sum(int(p.stat().st_size * _FACTORS[p.suffix.lower()]) for p in files)
    except OSError:
        return None  # unreadable sources get their own, clearer error from the loader
    return MemoryEstimate(needed=needed, files=tuple(files))


def check_memory(source: object, *, available: int | None = None) -> None:
    """Raise ``ResourceError`` when loading ``source`` clearly needs more memory than is available.

    ``available`` defaults to ``aikit.sysinfo.memory_available_bytes()``; when neither is known,
    or ``AIKIT_SKIP_MEMORY_CHECK=1`` is set, nothing is checked.
    """
    if os.environ.get(SKIP_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return
    estimate = estimate_load_bytes(source)
    if estimate is None or not estimate.files:
        return
    if available is None:
        from aikit.sysinfo import memory_available_bytes

        available = memory_available_bytes()
    if available is None or estimate.needed <= AVAILABLE_FRACTION * available:
        return
    gib = 2**30
    biggest = max(estimate.files, key=lambda p: p.stat().st_size)
    raise ResourceError(
        f"loading {source} needs at least {estimate.needed / gib:.1f} GiB of memory "
        f"({len(estimate.files)} weight file(s), largest {biggest.name}), but only "
        f"{available / gib:.1f} GiB is available; free memory, pick a smaller or quantised model, "
        f"or set {SKIP_ENV}=1 to try anyway",
        source=source,
        needed_bytes=estimate.needed,
        available_bytes=available,
    )
