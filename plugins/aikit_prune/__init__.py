"""aikit's pruning strategies: magnitude, 2:4 semi-structured, and structured (heads, FFN, layers).

Registered through ``aikit_register_strategies``. Importing this package does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable

from aikit import Strategy, hookimpl

from .configs import Magnitude, SemiStructured, Structured
from .strategies import STRATEGIES

__version__ = "0.1.0"
__all__ = ["Magnitude", "SemiStructured", "Structured"]


@hookimpl
def aikit_register_strategies(register: Callable[[type[Strategy]], None]) -> None:
    for strategy in STRATEGIES:
        register(strategy)
