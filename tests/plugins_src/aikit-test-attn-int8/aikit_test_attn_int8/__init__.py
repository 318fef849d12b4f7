"""A third-party strategy as a plugin author would write it from aikit's docs: int8 weight-only
quantization of the attention projections (``query``/``key``/``value`` Linear layers).

It declares no ``carries_to``: aikit then refuses to move a model it compressed to another backend
instead of exporting the de-quantized weights. It proposes itself to ``Model.optimize`` through
``aikit_optimize_candidates``, with no change to aikit's core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import aikit

__version__ = "0.0.1"
PROJECTIONS = ("query", "key", "value")


@dataclass(frozen=True, kw_only=True)
class AttnInt8(aikit.CompressionConfig):
    strategy: ClassVar[str] = "attn-int8-weight-only"


def _int8_linear(linear: Any) -> Any:
    import torch

    class Int8Linear(torch.nn.Module):
        """int8 weights with one scale per output row, de-quantized in ``forward``."""

        def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
            super().__init__()
            scale = weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-8) / 127
            self.register_buffer("qweight", torch.round(weight / scale).to(torch.int8))
            self.register_buffer("scale", scale)
            self.bias = None if bias is None else torch.nn.Parameter(bias.detach().clone())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.linear(x, self.qweight.float() * self.scale, self.bias)

    return Int8Linear(linear.weight.detach(), linear.bias)


class AttnInt8Strategy(aikit.Strategy):
    name = "attn-int8-weight-only"
    config_class = AttnInt8
    backends: ClassVar[frozenset[str]] = frozenset({"torch"})
    description = "int8 weight-only attention projections (a third-party test plugin)"

    def apply(
        self, backend: aikit.Backend, config: aikit.CompressionConfig, context: aikit.CompressionContext
    ) -> aikit.Backend:
        import copy

        module = copy.deepcopy(backend.torch_module())
        for sub in list(module.modules()):
            for child in PROJECTIONS:
                linear = getattr(sub, child, None)
                if linear is not None and type(linear).__name__ == "Linear":
                    setattr(sub, child, _int8_linear(linear))
        return backend.with_module(module)


@aikit.hookimpl
def aikit_register_strategies(register: Callable[[type[aikit.Strategy]], None]) -> None:
    register(AttnInt8Strategy)


@aikit.hookimpl
def aikit_optimize_candidates(model: aikit.Model, propose: Callable[[aikit.Candidate], None]) -> None:
    if model.backend.torch_module() is not None and not model.task.generative:
        propose(aikit.Candidate(backend="torch", strategies=("attn-int8-weight-only",), note="third-party"))
