"""What this plugin proposes to ``Model.optimize``: torch int8 / int4 / bf16 variants worth timing here.

Proposals are cheap (nothing is built until the search tries one), so both activation layouts of
``int8-dynamic`` are proposed: per-token ranges keep quality, per-tensor ones run faster on some
CPUs (with VNNI, ATen's per-tensor path was about 3x faster than per-token on one Xeon). Which
wins is measured by the search on the machine at hand, never assumed.
"""

from __future__ import annotations

from collections.abc import Callable

from aikit import Candidate, Model

__all__ = ["propose_candidates"]


def propose_candidates(model: Model, propose: Callable[[Candidate], None]) -> None:
    """Propose torch-backend chains for models that have a torch module to quantize."""
    if model.backend.torch_module() is None and model.parts.module is None:
        return
    from aikit.sysinfo import cpu_flags

    if model.task.generative:
        propose(Candidate(backend="torch", strategies=("int8-dynamic",), guard=True, note="per-token int8"))
        propose(Candidate(backend="torch", strategies=("int8-weight-only",), note="8-bit weights, fp32 math"))
        propose(Candidate(backend="torch", strategies=("int4-weight-only",), note="4-bit weights (HQQ)"))
    else:
        propose(Candidate(backend="torch", strategies=("int8-dynamic",), guard=True, note="per-token activations"))
        propose(
            Candidate(
                backend="torch",
                strategies=("int8-dynamic:per_token=false",),
                guard=True,
                note="per-tensor activations: faster ATen kernels on some CPUs, lower quality",
            )
        )
        propose(Candidate(backend="torch", strategies=("int8-weight-only",), note="8-bit weights, fp32 math"))
    if cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        propose(Candidate(backend="torch", strategies=("bf16",), note="this CPU has native bfloat16 math"))
