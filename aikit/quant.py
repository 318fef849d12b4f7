"""Quantization configs: ``aikit.quant.Int8Dynamic(per_channel=True)``, ``Int4WeightOnly(group_size=64)``...

The classes live in the ``aikit_quant`` plugin and are loaded on first use, so ``import aikit``
stays free of torch. Shorthands for ``Model.compress`` and the CLI: ``int8-dynamic``,
``int8-static``, ``int8-weight-only``, ``int4-weight-only``, ``fp16``, ``bf16``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names for type checkers; at run time __getattr__ loads them on first use
    from aikit_quant.configs import Bf16, Fp16, Int4WeightOnly, Int8Dynamic, Int8Static, Int8WeightOnly

__all__ = ["Bf16", "Fp16", "Int4WeightOnly", "Int8Dynamic", "Int8Static", "Int8WeightOnly"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from .errors import MissingDependencyError

        try:
            configs = importlib.import_module("aikit_quant.configs")
        except ImportError as exc:  # pragma: no cover - the plugin ships with aikit
            raise MissingDependencyError("aikit", feature="aikit.quant (the aikit_quant plugin)") from exc
        return getattr(configs, name)
    raise AttributeError(f"module 'aikit.quant' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
