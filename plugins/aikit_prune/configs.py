"""Configs of the pruning strategies: frozen, keyword-only, validated, torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aikit.contracts.strategy import CompressionConfig
from aikit.errors import ConfigError

__all__ = ["Magnitude", "SemiStructured", "Structured"]


def _fraction(strategy: str, name: str, value: object, *, high: float = 0.95) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= high:
        raise ConfigError(f"{strategy}: {name} must be a fraction in [0, {high}], got {value!r}")


def _names(config: CompressionConfig) -> None:
    value = getattr(config, "exclude", ())
    if isinstance(value, (list, str)):
        value = (value,) if isinstance(value, str) else tuple(value)
        object.__setattr__(config, "exclude", value)
    if not isinstance(value, tuple) or not all(isinstance(n, str) and n for n in value):
        raise ConfigError(f"{config.strategy}: exclude must be a sequence of module names, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Magnitude(CompressionConfig):
    """Zero the ``sparsity`` fraction of smallest-magnitude Linear weights (unstructured).

    ``scope``: ``"global"`` ranks all layers' weights together; ``"layer"`` prunes each layer to
    ``sparsity``. Files and speed do not change (dense storage); the report shows the zeros.
    """

    strategy: ClassVar[str] = "prune-magnitude"
    sparsity: float = 0.5
    scope: str = "global"
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _fraction(self.strategy, "sparsity", self.sparsity, high=0.99)
        if self.scope not in ("global", "layer"):
            raise ConfigError(f"{self.strategy}: scope must be 'global' or 'layer', got {self.scope!r}")
        _names(self)


@dataclass(frozen=True, kw_only=True)
class SemiStructured(CompressionConfig):
    """2:4 sparsity: in every group of 4 consecutive input weights, the 2 smallest become zero.

    Accuracy-only on CPU: no CPU runtime here accelerates 2:4 sparsity, so the model is not
    faster; use it to measure the accuracy a 2:4 GPU deployment would have.
    """

    strategy: ClassVar[str] = "prune-2:4"
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _names(self)


@dataclass(frozen=True, kw_only=True)
class Structured(CompressionConfig):
    """Remove whole attention heads, FFN neurons and layers; weight matrices physically shrink.

    ``heads`` / ``ffn``: fraction removed in every layer (BERT-style encoders: heads and FFN;
    Llama-style decoders: FFN). ``layers``: number of whole layers removed. The least important
    units go, ranked on the calibration data when given (else by weight magnitude).
    ``recovery_seconds``: time budget of the self-distillation that follows (original model as
    teacher, calibration inputs, no labels); 0 turns it off; skipped without calibration data.
    """

    strategy: ClassVar[str] = "prune-structured"
    heads: float = 0.0
    ffn: float = 0.0
    layers: int = 0
    recovery_seconds: float = 60.0
    learning_rate: float = 1e-4

    def __post_init__(self) -> None:
        _fraction(self.strategy, "heads", self.heads, high=0.9)
        _fraction(self.strategy, "ffn", self.ffn, high=0.95)
        if isinstance(self.layers, bool) or not isinstance(self.layers, int) or self.layers < 0:
            raise ConfigError(f"{self.strategy}: layers must be a whole number >= 0, got {self.layers!r}")
        if (
            isinstance(self.recovery_seconds, bool)
            or not isinstance(self.recovery_seconds, (int, float))
            or self.recovery_seconds < 0
        ):
            raise ConfigError(f"{self.strategy}: recovery_seconds must be >= 0, got {self.recovery_seconds!r}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < float(lr) < 1:
            raise ConfigError(f"{self.strategy}: learning_rate must be in (0, 1), got {lr!r}")
        if self.heads == 0 and self.ffn == 0 and self.layers == 0:
            raise ConfigError(f"{self.strategy}: nothing to remove; set heads=, ffn= and/or layers=")
