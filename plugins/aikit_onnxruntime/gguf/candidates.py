"""What ``Model.optimize`` may try for a model loaded from a GGUF file: its own blocks on ONNX Runtime.

The plugin's ``aikit_optimize_candidates`` hook calls :func:`propose_gguf_candidates` before
:func:`aikit_onnxruntime.candidates.propose_candidates`.
"""

from __future__ import annotations

from collections.abc import Callable

from aikit import Candidate, Model

__all__ = ["propose_gguf_candidates"]


def propose_gguf_candidates(model: Model, propose: Callable[[Candidate], None]) -> None:
    """Propose ``ort-gguf-native`` (float32 math, then int8 activations) for a generative model from a GGUF file.

    Each form is proposed unless the model already runs it (``Model.load(gguf)`` runs the float32
    one; ``backend_options={"accuracy_level": 4}`` the int8 one). The search judges the int8 form
    as any candidate of a generative model: perplexity on held-out text against the model it
    started from (``aikit.measure.quality``), within ``max_quality_drop``.
    Proposes nothing when ONNX Runtime is unavailable, the model is not generative, or its source
    is not a GGUF file (a model already on onnxruntime keeps the source it was loaded from).
    """
    from aikit_onnxruntime.backend import OrtBackend
    from aikit_onnxruntime.gguf.strategy import OrtGgufNative

    if OrtBackend.unavailable_reason() is not None or not model.task.generative:
        return
    if model.parts.source.kind != "gguf":
        return
    runs = getattr(model.backend, "facts", {}).get("quantization") or [{}]
    if runs[-1] != OrtGgufNative().to_dict():  # Model.load(gguf) already runs it: nothing to try
        propose(
            Candidate(
                backend="onnxruntime",
                strategies=("ort-gguf-native",),
                note="the GGUF's own 4-bit/8-bit blocks in MatMulNBits, float32 math (the fp32 model's tokens)",
            )
        )
    if runs[-1] != OrtGgufNative(accuracy_level=4).to_dict():
        propose(
            Candidate(
                backend="onnxruntime",
                strategies=("ort-gguf-native:accuracy_level=4",),
                note="the GGUF's own blocks, int8 activations per block (as llama.cpp's CPU kernels)",
            )
        )
