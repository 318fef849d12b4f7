"""``OrtSettings``: the ONNX Runtime options a user can pass through ``backend_options``.

``Model.load(..., backend="onnxruntime", threads=2, backend_options={...})`` accepts:

- ``providers``: execution providers in order of preference, e.g. ``["CUDAExecutionProvider",
  "CPUExecutionProvider"]``; default: TensorRT / CUDA when present and ``device="cuda"``, else CPU.
- ``graph_optimization``: ``"all"`` (default), ``"extended"``, ``"basic"`` or ``"disable"``.
- ``fusions``: apply ONNX Runtime's transformer fusions (attention, layer norm, GELU) to BERT-like
  encoders (default True).
- ``decoder``: how to export a decoder LLM: ``"auto"`` (onnxruntime-genai's model builder when it
  supports the architecture, else aikit's own export), ``"genai"`` or ``"torch"``.
- ``max_length``: KV-cache capacity of the builder's decoder (default: 2048, capped by the model).
- ``cache``: reuse exported models from ``$AIKIT_CACHE_DIR/onnx`` (default True).
- ``validate``: compare every export with the torch outputs (default True); ``atol`` / ``rtol``
  set the tolerance (defaults 1e-4 / 1e-3: ``max|ort - torch| <= atol + rtol * max|torch|``).
- ``input_shape``: ``(C, H, W)`` sample shape for exporting a plain image module without
  ``preprocess``.
- ``accuracy_level``: for ``Model.load("x.gguf")`` on the CPU (the file's own blocks,
  ``ort-gguf-native``) only: ``0`` (the default) computes in float32, giving the de-quantized
  float32 model's tokens; ``4`` quantizes activations to int8 per block of 32 inside
  ``MatMulNBits``, as llama.cpp's CPU kernels do: faster, same weights, logits no longer the
  float32 model's (see docs/how-to/gguf.md for its measured perplexity). Anywhere else it raises
  ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aikit.errors import ConfigError

__all__ = ["OPT_LEVELS", "OrtSettings", "export_settings"]

OPT_LEVELS = ("disable", "basic", "extended", "all")
_DECODERS = ("auto", "genai", "torch")


@dataclass(frozen=True, kw_only=True)
class OrtSettings:
    providers: tuple[str, ...] | None = None
    graph_optimization: str = "all"
    fusions: bool = True
    decoder: str = "auto"
    max_length: int | None = None
    cache: bool = True
    validate: bool = True
    atol: float = 1e-4
    rtol: float = 1e-3
    input_shape: tuple[int, ...] | None = None
    accuracy_level: int | None = None
    extra_session_config: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_options(cls, extra: Mapping[str, Any]) -> OrtSettings:
        """Validate ``backend_options``: unknown keys and bad values raise ``ConfigError``."""
        known = {
            "providers",
            "graph_optimization",
            "fusions",
            "decoder",
            "max_length",
            "cache",
            "validate",
            "atol",
            "rtol",
            "input_shape",
            "session_config",
            "accuracy_level",
        }
        unknown = sorted(set(extra) - known)
        if unknown:
            raise ConfigError(
                f"backend 'onnxruntime' does not know backend_options {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(known))}"
            )
        providers = extra.get("providers")
        if providers is not None:
            if isinstance(providers, str) or not all(isinstance(p, str) for p in providers):
                raise ConfigError(f"providers must be a list of provider names, got {providers!r}")
            providers = tuple(providers)
        level = extra.get("graph_optimization", "all")
        if level not in OPT_LEVELS:
            raise ConfigError(f"graph_optimization must be one of {', '.join(OPT_LEVELS)}, got {level!r}")
        decoder = extra.get("decoder", "auto")
        if decoder not in _DECODERS:
            raise ConfigError(f"decoder must be one of {', '.join(_DECODERS)}, got {decoder!r}")
        max_length = extra.get("max_length")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 2):
            raise ConfigError(f"max_length must be an integer >= 2, got {max_length!r}")
        for name in ("fusions", "cache", "validate"):
            if not isinstance(extra.get(name, True), bool):
                raise ConfigError(f"{name} must be True or False, got {extra[name]!r}")
        shape = extra.get("input_shape")
        if shape is not None and (
            not isinstance(shape, (list, tuple)) or not all(isinstance(s, int) and s > 0 for s in shape)
        ):
            raise ConfigError(f"input_shape must be a tuple of positive integers, got {shape!r}")
        accuracy_level = extra.get("accuracy_level")
        if accuracy_level is not None and (isinstance(accuracy_level, bool) or accuracy_level not in (0, 4)):
            raise ConfigError(f"accuracy_level must be 0 (float32) or 4 (int8 activations), got {accuracy_level!r}")
        session_config = extra.get("session_config", {})
        if not isinstance(session_config, Mapping):
            raise ConfigError("session_config must map ONNX Runtime session config keys to string values")
        return cls(
            providers=providers,
            graph_optimization=str(level),
            fusions=bool(extra.get("fusions", True)),
            decoder=str(decoder),
            max_length=max_length,
            cache=bool(extra.get("cache", True)),
            validate=bool(extra.get("validate", True)),
            atol=float(extra.get("atol", 1e-4)),
            rtol=float(extra.get("rtol", 1e-3)),
            input_shape=tuple(shape) if shape is not None else None,
            accuracy_level=None if accuracy_level is None else int(accuracy_level),
            extra_session_config={str(k): str(v) for k, v in session_config.items()},
        )


def export_settings(settings: OrtSettings) -> dict[str, Any]:
    """The settings that change an export's bytes (part of its cache key). Here, not in ``build``
    (which imports torch), because a cached GGUF graph is found by this key without torch."""
    return {
        "fusions": settings.fusions,
        "decoder": settings.decoder,
        "atol": settings.atol,
        "rtol": settings.rtol,
        "validate": settings.validate,
        "input_shape": list(settings.input_shape) if settings.input_shape else None,
    }
