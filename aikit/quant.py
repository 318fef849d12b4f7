"""Quantization configs: ``aikit.quant.Int8Dynamic(per_channel=True)``, ``Int4WeightOnly(group_size=64)``...

The classes live in the ``aikit_quant`` plugin and are loaded on first use, so ``import aikit``
stays free of torch. Shorthands for ``Model.compress`` and the CLI: ``int8-dynamic``,
``int8-static``, ``int8-weight-only``, ``int4-weight-only``, ``fp16``, ``bf16``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aikit._lazy_configs import plugin_configs

if TYPE_CHECKING:  # the names for type checkers; at run time __getattr__ loads them on first use
    from aikit_quant.configs import Bf16, Fp16, Int4WeightOnly, Int8Dynamic, Int8Static, Int8WeightOnly

__all__ = ["Bf16", "Fp16", "Int4WeightOnly", "Int8Dynamic", "Int8Static", "Int8WeightOnly"]


__getattr__ = plugin_configs("aikit.quant", "aikit_quant.configs", __all__)


def __dir__() -> list[str]:
    return sorted(__all__)
