"""Facts about this machine for ``aikit info``, reports and benchmarks (cheap; no torch import
unless torch is already loaded or asked for)."""

from __future__ import annotations

import functools
import os
import platform
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path
from typing import Any

__all__ = ["cpu_flags", "gpu_info", "machine_info", "memory_available_bytes", "version_warnings"]

_INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "f16c", "fma", "neon", "asimd")


@lru_cache(maxsize=1)
@functools.lru_cache(maxsize=1)
def _cpuinfo() -> str:
    # read once per process: it does not change, and strategies ask for flags once per layer
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return ""


def cpu_flags() -> set[str]:
    """CPU feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    for line in _cpuinfo().splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def has_int8_dot_product() -> bool:
    """Whether the CPU has VNNI / AMX int8 instructions (int8 matmuls are only fast with them)."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})


def memory_available_bytes() -> int | None:
    """Memory the OS says is available now (``MemAvailable``), or None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_total_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def gpu_info() -> dict[str, Any]:
    """CUDA availability through torch (imports torch)."""
    try:
        import torch
    except ImportError:
        return {"cuda": False, "reason": "torch is not installed"}
    if not torch.cuda.is_available():
        built = torch.version.cuda
        reason = "this torch build has no CUDA support" if built is None else "no NVIDIA GPU/driver visible"
        return {"cuda": False, "torch_cuda_build": built, "reason": reason}
    return {
        "cuda": True,
        "torch_cuda_build": torch.version.cuda,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    }


def installed_versions(
    names: tuple[str, ...] = (
        "aikit",
        "torch",
        "transformers",
        "optimum",
        "onnxruntime",
        "onnx",
        "torchao",
        "safetensors",
        "tokenizers",
        "numpy",
        "pluggy",
    ),
) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def version_warnings() -> list[str]:
    """Installed packages whose declared requirements on torch / transformers / onnxruntime / numpy
    are not met by what is installed (for example optimum-onnx pinning transformers < 4.58)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    watched = {"torch", "transformers", "onnxruntime", "numpy", "optimum", "tokenizers", "huggingface-hub"}
    installed: dict[str, str] = {}
    for name in watched:
        try:
            installed[name] = version(name)
        except PackageNotFoundError:
            continue
    warnings: list[str] = []
    seen: set[str] = set()
    for dist in distributions():
        dist_name = dist.metadata["Name"] or ""
        if dist_name in seen:
            continue
        seen.add(dist_name)
        for raw in dist.requires or []:
            try:
                req = Requirement(raw)
            except InvalidRequirement:
                continue
            key = req.name.lower().replace("_", "-")
            if key not in installed or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
                continue
            try:
                ok = req.specifier.contains(Version(installed[key]), prereleases=True)
            except InvalidVersion:
                continue
            if not ok:
                warnings.append(
                    f"{dist_name} {dist.version} requires {req.name}{req.specifier}, but {installed[key]} is installed"
                )
    return sorted(warnings)


def machine_info(*, with_gpu: bool = False) -> dict[str, Any]:
    """A summary for reports: OS, CPU model, cores, int8 instructions, memory, Python."""
    flags = cpu_flags()
    info: dict[str, Any] = {
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": sorted(flags & set(_INTERESTING_FLAGS)),
        "int8_dot_product": has_int8_dot_product(),
        "memory_total_gb": round((memory_total_bytes() or 0) / 2**30, 1),
        "python": sys.version.split()[0],
    }
    if with_gpu:
        info["gpu"] = gpu_info()
    return info
