"""aikit's CUDA backend and GPU quantization strategies, registered like any third-party plugin.

Importing this package does not touch the GPU; ``CudaBackend.unavailable_reason()`` says why CUDA
cannot be used on a machine without one (and ``aikit info`` shows it).
"""

from __future__ import annotations

from collections.abc import Callable

from aikit import Backend, Candidate, Model, Strategy, hookimpl

from .backend import CudaBackend
from .options import CudaOptions
from .quantization import (
    CudaFloat8,
    CudaFloat8Strategy,
    CudaInt4WeightOnly,
    CudaInt4WeightOnlyStrategy,
    CudaInt8WeightOnly,
    CudaInt8WeightOnlyStrategy,
)

__version__ = "0.1.0"
__all__ = ["CudaBackend", "CudaFloat8", "CudaInt4WeightOnly", "CudaInt8WeightOnly", "CudaOptions"]


@hookimpl
def aikit_register_backends(register: Callable[[type[Backend]], None]) -> None:
    register(CudaBackend)


@hookimpl
def aikit_register_strategies(register: Callable[[type[Strategy]], None]) -> None:
    register(CudaInt8WeightOnlyStrategy)
    register(CudaInt4WeightOnlyStrategy)
    register(CudaFloat8Strategy)


@hookimpl
def aikit_optimize_candidates(model: Model, propose: Callable[[Candidate], None]) -> None:
    from .candidates import propose_candidates

    propose_candidates(model, propose)
