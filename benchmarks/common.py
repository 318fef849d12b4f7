"""What the benchmarks share: the line their docs tables open with, and llama.cpp as an anchor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["LLAMA_NOTE", "measured_line", "open_llama"]

LLAMA_NOTE = "llama.cpp ran with use_extra_bufts=False (its weight repacking segfaults on this VM)"


def measured_line(
    when: str, machine: Mapping[str, Any], load: str, versions: Mapping[str, Any], *, threads: int | None = None
) -> str:
    """``Measured <when> on <cpu> (<cores> cores; <SIMD flags>)[, N threads], load average before the
    run <load>; <name version, ...>``. ``machine`` is ``aikit.sysinfo.machine_info()``; only the flags
    that choose kernels (avx*, amx*, fma) are named, and versions that are empty are left out."""
    flags = " ".join(f for f in machine.get("cpu_flags", []) if f.startswith(("avx", "amx", "fma")))
    threads_part = f"{threads} threads, " if threads is not None else ""
    return (
        f"Measured {when} on {machine.get('cpu', '?')} ({machine.get('cores', '?')} cores; {flags}), "
        f"{threads_part}load average before the run {load}; " + ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    )


def open_llama(gguf: Any, threads: int, *, n_ctx: int, logits_all: bool = False) -> Any:
    """llama-cpp-python's ``Llama`` on ``gguf`` with llama.cpp's weight repacking off (``LLAMA_NOTE``).

    llama-cpp-python 0.3.36 built here segfaults in its first decode when llama.cpp repacks the
    weights into its "extra buffer types" (the AMX / repacked CPU layouts) on this VM; with them
    off it runs. That is the layout llama.cpp uses where repacking is unavailable, so on a machine
    where repacking works llama.cpp may be faster than measured here. Raises ``ImportError`` when
    llama-cpp-python is not installed (it is not in the lock: benchmarks only).
    """
    import llama_cpp  # type: ignore[import-not-found,unused-ignore]
    import llama_cpp.llama  # type: ignore[import-not-found,unused-ignore]

    low: Any = llama_cpp.llama.llama_cpp  # type: ignore[attr-defined,unused-ignore]  # the ctypes layer
    defaults = getattr(low, "_aikit_default_params", low.llama_model_default_params)

    def without_extra_buffers() -> Any:
        params = defaults()
        params.use_extra_bufts = False
        return params

    low._aikit_default_params = defaults  # a second call wraps the original, not the wrapper
    low.llama_model_default_params = without_extra_buffers
    return llama_cpp.Llama(model_path=str(gguf), n_threads=threads, n_ctx=n_ctx, verbose=False, logits_all=logits_all)
