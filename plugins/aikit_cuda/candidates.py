"""What this plugin proposes to ``Model.optimize``: the CUDA backend and its quantizations, on a GPU only."""

from __future__ import annotations

from collections.abc import Callable

from aikit import Candidate, Model

__all__ = ["propose_candidates"]


def propose_candidates(model: Model, propose: Callable[[Candidate], None]) -> None:
    """Nothing without a usable GPU or without a torch module to move there."""
    from .backend import CudaBackend

    if CudaBackend.unavailable_reason() is not None:
        return
    if model.backend.torch_module() is None and model.parts.module is None:
        return
    propose(Candidate(backend="cuda", note="fp32 on the GPU"))
    propose(Candidate(backend="cuda", strategies=("cuda-int8-weight-only",), note="int8 weights on the GPU"))
    propose(Candidate(backend="cuda", strategies=("cuda-int4-weight-only",), note="int4 weights on the GPU"))
