"""What this plugin proposes to ``Model.optimize``: ONNX Runtime fp32 and its int8 / int4 graphs.

Fusions are proposed both on and off: on one 2-core Xeon the BERT fusions made MiniLM slower
(padding makes the fused attention do work the unfused graph skips), so only a measurement says.
"""

from __future__ import annotations

from collections.abc import Callable

from aikit import Candidate, Model

__all__ = ["propose_candidates"]


def propose_candidates(model: Model, propose: Callable[[Candidate], None]) -> None:
    """Propose onnxruntime chains for models that can be exported (torch module) or already are ONNX."""
    from .backend import OrtBackend

    if OrtBackend.unavailable_reason() is not None:
        return
    on_ort = model.backend.name == OrtBackend.name
    if not on_ort and model.backend.torch_module() is None and model.parts.onnx_path is None:
        return
    if model.task.generative:
        if not on_ort:
            propose(Candidate(backend="onnxruntime", note="fp32 graph, KV-cached decoding"))
        propose(Candidate(backend="onnxruntime", strategies=("ort-int4-weight-only",), note="MatMulNBits 4-bit"))
        propose(Candidate(backend="onnxruntime", strategies=("ort-int8-weight-only",), note="MatMulNBits 8-bit"))
        return
    if not on_ort:
        propose(Candidate(backend="onnxruntime", note="fp32 graph with fusions"))
        propose(Candidate(backend="onnxruntime", backend_options={"fusions": False}, note="fp32 graph, no fusions"))
    for options in ({}, {"fusions": False}) if not on_ort else ({},):
        propose(
            Candidate(
                backend="onnxruntime",
                backend_options=options,
                strategies=("ort-int8-dynamic",),
                guard=True,
                note="dynamic int8 (one activation range per tensor)",
            )
        )
        propose(
            Candidate(
                backend="onnxruntime",
                backend_options=options,
                strategies=("ort-int8-rows",),
                guard=True,
                note="int8 with one activation range per token (keeps quality where one range per tensor does not)",
            )
        )
    propose(
        Candidate(backend="onnxruntime", strategies=("ort-int8-weight-only",), note="int8 weights, int8 math per block")
    )
    propose(
        Candidate(
            backend="onnxruntime",
            strategies=("ort-int8-static",),
            guard=True,
            note="static int8 (QDQ), scales from the calibration inputs",
        )
    )
