"""Pruning configs: ``aikit.prune.Structured(ffn=0.3)``, ``Magnitude(sparsity=0.5)``, ``SemiStructured()``.

The classes live in the ``aikit_prune`` plugin and are loaded on first use, so ``import aikit``
stays free of torch. Shorthands: ``prune-magnitude``, ``prune-2:4``, ``prune-structured``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aikit._lazy_configs import plugin_configs

if TYPE_CHECKING:  # the names for type checkers; at run time __getattr__ loads them on first use
    from aikit_prune.configs import Magnitude, SemiStructured, Structured

__all__ = ["Magnitude", "SemiStructured", "Structured"]


__getattr__ = plugin_configs("aikit.prune", "aikit_prune.configs", __all__)


def __dir__() -> list[str]:
    return sorted(__all__)
