"""What this plugin proposes to ``Model.optimize``: ONNX Runtime fp32 and its int8 / int4 graphs.

Fusions are proposed both on and off: on one 2-core Xeon the BERT fusions made MiniLM 3-7% slower
in fp32 with sorted and with shuffled batches alike (so padding is not the cause: the fused CPU
``Attention`` kernel is slower at MiniLM's shapes), and ``ort-int8-rows`` leaves Q/K/V in float32
inside a fused ``Attention``. Another CPU may differ, so only a measurement says.
"""

from __future__ import annotations

from collections.abc import Callable

from aikit import Candidate, Model

__all__ = ["MIXED_ROWS", "propose_candidates"]

MIXED_ROWS = "ort-int8-rows:symmetric=*intermediate*|*layer.?/output/dense*,per_tensor=*attention/output*"


def _bert_like(model: Model) -> bool:
    """Whether the exported graph will carry BERT-style node names the mixed patterns match."""
    config = model.parts.config
    return getattr(config, "model_type", None) in {"bert", "roberta", "xlm-roberta"}


def propose_candidates(model: Model, propose: Callable[[Candidate], None]) -> None:
    """Propose onnxruntime chains for models that can be exported (torch module) or already are ONNX."""
    from aikit_onnxruntime.backend import OrtBackend

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
    int8 = (
        ("ort-int8-dynamic", "dynamic int8 (one activation range per tensor)"),
        (
            "ort-int8-rows",
            "int8 with one activation range per token (keeps quality where one range per tensor does not)",
        ),
    )
    for options in ({}, {"fusions": False}) if not on_ort else ({},):
        for strategy, note in int8:
            propose(
                Candidate(backend="onnxruntime", backend_options=options, strategies=(strategy,), guard=True, note=note)
            )
    if not on_ort and _bert_like(model):
        # Measured on MiniLM: symmetric rows for the FFN (inputs after GELU / LayerNorm are near zero-centred)
        # and one range per tensor for the attention output projection keep min cosine >= 0.99, faster.
        propose(
            Candidate(
                backend="onnxruntime",
                backend_options={"fusions": False},
                strategies=(MIXED_ROWS,),
                guard=True,
                note="per-token int8, symmetric FFN rows, per-tensor attention output (BERT-style names)",
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
