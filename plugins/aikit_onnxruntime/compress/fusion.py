"""ONNX Runtime's offline transformer fusions (``onnxruntime.transformers.optimizer``).

They replace the exported MatMul/Softmax/LayerNorm patterns of BERT-like encoders and ViT by
fused ``Attention``, ``EmbedLayerNormalization``, ``SkipLayerNormalization`` and ``BiasGelu``
kernels. The session's own optimiser fuses only LayerNorm and GELU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

__all__ = ["fuse_transformer", "fusion_model_type"]

logger = logging.getLogger("aikit.onnxruntime")

_TYPES = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "electra": "bert",
    "camembert": "bert",
    "vit": "vit",
}


def fusion_model_type(config: Any) -> str | None:
    """The optimizer's ``model_type`` for a transformers config, or None when it has no fusions for it."""
    return _TYPES.get(str(getattr(config, "model_type", "")))


def fuse_transformer(src: Path, dst: Path, config: Any) -> dict[str, int]:
    """Write the fused graph of ``src`` to ``dst``; return the fused-operator counts (empty: nothing fused)."""
    from onnxruntime.transformers import optimizer

    model_type = fusion_model_type(config)
    if model_type is None:
        return {}
    # The optimizer logs every pattern it fails to match at WARNING: noise for users.
    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        model = optimizer.optimize_model(
            str(src),
            model_type=model_type,
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=0,
            use_gpu=False,
        )
        model.save_model_to_file(str(dst))
        stats = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
    finally:
        quiet.setLevel(level)
    logger.info("transformer fusions on %s: %s", src.name, stats)
    return stats
