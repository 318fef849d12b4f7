"""Pruning configs: ``aikit.prune.Structured(ffn=0.3)``, ``Magnitude(sparsity=0.5)``, ``SemiStructured()``.

The classes live in the ``aikit_prune`` plugin and are loaded on first use, so ``import aikit``
stays free of torch. Shorthands: ``prune-magnitude``, ``prune-2:4``, ``prune-structured``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names for type checkers; at run time __getattr__ loads them on first use
    from aikit_prune.configs import Magnitude, SemiStructured, Structured

__all__ = ["Magnitude", "SemiStructured", "Structured"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from .errors import MissingDependencyError

        try:
            configs = importlib.import_module("aikit_prune.configs")
        except ImportError as exc:  # pragma: no cover - the plugin ships with aikit
            raise MissingDependencyError("aikit", feature="aikit.prune (the aikit_prune plugin)") from exc
        return getattr(configs, name)
    raise AttributeError(f"module 'aikit.prune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
