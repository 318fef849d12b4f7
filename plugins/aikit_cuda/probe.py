"""What this machine offers for CUDA: the torch build, visible GPUs, their capabilities.

Everything here asks torch afresh on each call (torch caches what is expensive), so that tests can
fake a GPU by patching ``torch.cuda`` and so that ``aikit info`` always tells the current truth.
The one exception: while torch is not yet imported, a torch build without CUDA libraries is
recognised from its files (``_cpu_only_build``), because ``backend="auto"`` asks every backend
whether it can run and importing torch only to hear "no CUDA" costs 0.8 s and 200 MB.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from aikit.errors import ConfigError

__all__ = [
    "INSTALL_HINT",
    "CudaProbe",
    "bf16_supported",
    "compute_capability",
    "default_dtype",
    "parse_device",
    "probe",
    "unavailable_reason",
]

INSTALL_HINT = (
    "install a CUDA build of torch, e.g. `pip install torch --index-url https://download.pytorch.org/whl/cu124` "
    "(pick the cuXXX your NVIDIA driver supports: https://pytorch.org/get-started/locally/)"
)

# Model families known to overflow in float16 (activations beyond 65504); bfloat16 is fine for them.
FP16_UNSAFE_MODEL_TYPES = frozenset({"t5", "mt5", "umt5", "longt5", "switch_transformers", "pegasus", "pegasus_x"})


@dataclass(frozen=True, kw_only=True)
class CudaProbe:
    """What was found: ``torch_version`` (None: torch missing), ``cuda_build`` (``torch.version.cuda``,
    None for a CPU-only build), ``available`` (``torch.cuda.is_available()``), ``device_count``."""

    torch_version: str | None
    cuda_build: str | None
    available: bool
    device_count: int


def _cpu_only_build() -> CudaProbe | None:
    """What ``probe`` would find for an installed but not yet imported torch built without CUDA, read
    from its files (no ``torch/lib/*torch_cuda*`` library: ``torch.version.cuda`` is None there);
    None when torch is imported already, missing, or may have CUDA (then torch itself is asked)."""
    if "torch" in sys.modules:
        return None
    try:
        spec = importlib.util.find_spec("torch")
        installed = version("torch")
    except (ImportError, ValueError, PackageNotFoundError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
    if not lib.is_dir() or any(lib.glob("*torch_cuda*")):
        return None
    return CudaProbe(torch_version=installed, cuda_build=None, available=False, device_count=0)


def probe() -> CudaProbe:
    """Ask torch what CUDA support this process has (never raises)."""
    cpu_only = _cpu_only_build()
    if cpu_only is not None:
        return cpu_only
    try:
        import torch
    except ImportError:
        return CudaProbe(torch_version=None, cuda_build=None, available=False, device_count=0)
    available = bool(torch.cuda.is_available())
    return CudaProbe(
        torch_version=str(torch.__version__),
        cuda_build=torch.version.cuda,
        available=available,
        device_count=int(torch.cuda.device_count()) if available else 0,
    )


def unavailable_reason(found: CudaProbe | None = None) -> str | None:
    """Why CUDA cannot be used here (what was looked for, what was found, what to do), or None."""
    found = found or probe()
    looked = "looked for a CUDA build of torch and a visible NVIDIA GPU"
    if found.torch_version is None:
        return f"{looked}; found no torch installed: {INSTALL_HINT}"
    if found.cuda_build is None:
        return f"{looked}; found torch {found.torch_version}, which was built without CUDA support: {INSTALL_HINT}"
    if not found.available or found.device_count < 1:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        hidden = f"; CUDA_VISIBLE_DEVICES={visible!r} may hide the GPUs" if visible is not None else ""
        return (
            f"{looked}; found torch {found.torch_version} built for CUDA {found.cuda_build}, but no usable GPU "
            f"(torch.cuda.is_available() is False{hidden}). Check that an NVIDIA GPU and driver are present "
            f"(`nvidia-smi`) and that the driver supports CUDA {found.cuda_build}"
        )
    return None


def parse_device(device: str | None, device_count: int) -> int:
    """The CUDA device index for ``device`` (``None``/``"cuda"`` → 0, ``"cuda:N"`` → N, checked)."""
    if device is None or device == "cuda":
        return 0
    kind, _, index = device.partition(":")
    if kind != "cuda" or not index.isdigit():
        hint = "; use backend='torch' to run on the CPU" if kind == "cpu" else ""
        raise ConfigError(f"backend 'cuda' runs on CUDA devices ('cuda' or 'cuda:N'), got device={device!r}{hint}")
    number = int(index)
    if number >= device_count:
        have = f"cuda:0 .. cuda:{device_count - 1}" if device_count > 1 else "only cuda:0"
        raise ConfigError(
            f"device {device!r} does not exist: this machine has {device_count} visible CUDA device(s) ({have})"
        )
    return number


def compute_capability(index: int) -> tuple[int, int]:
    """The (major, minor) compute capability of CUDA device ``index`` (8.0 = A100, 8.9 = L4/4090, 9.0 = H100)."""
    import torch

    major, minor = torch.cuda.get_device_capability(index)
    return int(major), int(minor)


def bf16_supported(index: int) -> bool:
    """Whether device ``index`` computes in bfloat16 natively (Ampere, compute capability 8.0, and newer)."""
    return compute_capability(index) >= (8, 0)


def default_dtype(module: Any, requested: str | None, *, bf16: bool) -> str:
    """The compute dtype: ``requested`` if given, else bfloat16 where the GPU supports it, else float16
    (float32 for model families that overflow in float16)."""
    if requested is not None:
        return requested
    if bf16:
        return "bfloat16"
    model_type = getattr(getattr(module, "config", None), "model_type", None)
    return "float32" if model_type in FP16_UNSAFE_MODEL_TYPES else "float16"
