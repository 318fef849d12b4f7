"""What ``Model.optimize`` may try for a model loaded from a GGUF file: its own blocks on ONNX Runtime.

The plugin's ``aikit_optimize_candidates`` hook calls :func:`propose_gguf_candidates` before
:func:`.candidates.propose_candidates`.
"""

from __future__ import annotations

from collections.abc import Callable

from aikit import Candidate, Model

__all__ = ["propose_gguf_candidates"]


def propose_gguf_candidates(model: Model, propose: Callable[[Candidate], None]) -> None:
    """Propose ``ort-gguf-native`` (float32 math, then int8 activations) for a generative model from a GGUF file.

    Proposes nothing when ONNX Runtime is unavailable, the model is not generative, or its source
    is not a GGUF file (a model already on onnxruntime keeps the source it was loaded from).
    """
    from aikit_onnxruntime.backend import OrtBackend
    from aikit_onnxruntime.gguf_strategy import OrtGgufNative

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
    propose(
        Candidate(
            backend="onnxruntime",
            strategies=("ort-gguf-native:accuracy_level=4",),
            note="the GGUF's own blocks, int8 activations per block (as llama.cpp's CPU kernels)",
        )
    )
