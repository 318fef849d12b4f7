"""aikit's quantization strategies (int8 dynamic / static / weight-only, int4 weight-only, fp16, bf16).

Registered through ``aikit_register_strategies`` like any third-party plugin. Importing this
package does not import torch: configs are plain dataclasses; kernels load when a strategy runs.
"""

from __future__ import annotations

from collections.abc import Callable

from aikit import Candidate, Model, Strategy, hookimpl

from .configs import Bf16, Fp16, Int4WeightOnly, Int8Dynamic, Int8Static, Int8WeightOnly
from .strategies import STRATEGIES

__version__ = "0.1.0"
__all__ = ["Bf16", "Fp16", "Int4WeightOnly", "Int8Dynamic", "Int8Static", "Int8WeightOnly"]


@hookimpl
def aikit_register_strategies(register: Callable[[type[Strategy]], None]) -> None:
    for strategy in STRATEGIES:
        register(strategy)


@hookimpl
def aikit_optimize_candidates(model: Model, propose: Callable[[Candidate], None]) -> None:
    from .candidates import propose_candidates

    propose_candidates(model, propose)
