"""Recipe: a compression strategy plugin. Magnitude pruning: zero the smallest weights of every
``torch.nn.Linear`` layer. (Zeros alone do not make a dense model faster or smaller on disk; the
recipe shows the contract, and sparse kernels or compression of the saved file are what pay.)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from typing_extensions import override

from aikit import Backend, CompressionConfig, CompressionContext, ConfigError, Strategy, hookimpl


# --8<-- [start:config]
@dataclass(frozen=True, kw_only=True)
class MagnitudePrune(CompressionConfig):
    """Zero the ``amount`` share (0 <= amount < 1) of smallest-magnitude weights in each Linear layer."""

    strategy: ClassVar[str] = "recipe-magnitude-prune"
    amount: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.amount < 1:
            raise ConfigError(f"{self.strategy}: amount must be in [0, 1), got {self.amount!r}")


# --8<-- [end:config]


# --8<-- [start:strategy]
class MagnitudePruneStrategy(Strategy):
    name = "recipe-magnitude-prune"
    config_class = MagnitudePrune
    backends = frozenset({"torch"})  # it edits a torch module; checked before any work starts
    description = "zero the smallest Linear weights (unstructured)"

    @override
    def apply(self, backend: Backend, config: CompressionConfig, context: CompressionContext) -> Backend:
        import torch

        assert isinstance(config, MagnitudePrune)
        module = copy.deepcopy(backend.torch_module())  # never modify the caller's model
        with torch.no_grad():
            for layer in module.modules():
                if isinstance(layer, torch.nn.Linear) and config.amount > 0:
                    weight = layer.weight
                    k = max(1, int(weight.numel() * config.amount))
                    threshold = weight.abs().flatten().kthvalue(k).values
                    weight[weight.abs() <= threshold] = 0.0
        return backend.with_module(module)

    # restore() keeps its default: pruning changes values, not the module's structure, so the
    # saved weights load straight into a freshly built model.


@hookimpl
def aikit_register_strategies(register: Callable[[type[Strategy]], None]) -> None:
    register(MagnitudePruneStrategy)


# --8<-- [end:strategy]


def linear_sparsity(module: Any) -> float:
    """Share of exactly-zero weights over all Linear layers of ``module``."""
    import torch

    weights = [m.weight for m in module.modules() if isinstance(m, torch.nn.Linear)]
    return float(sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights))
