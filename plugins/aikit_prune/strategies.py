"""``prune-structured``: the strategy class (the work is in ``structured`` and ``recovery``)."""

from __future__ import annotations

from typing import Any, ClassVar

from typing_extensions import override

from aikit.contracts.backend import Backend
from aikit.contracts.strategy import CompressionConfig, CompressionContext, Strategy

from .configs import Structured
from .unstructured import MagnitudeStrategy, SemiStructuredStrategy

__all__ = ["STRATEGIES", "StructuredStrategy"]


class StructuredStrategy(Strategy):
    name = "prune-structured"
    config_class = Structured
    backends: ClassVar[frozenset[str]] = frozenset({"torch"})
    # The pruned model is a smaller model of plain layers: exports and device moves keep it.
    carries_to: ClassVar[frozenset[str]] = frozenset({"onnxruntime", "cuda"})
    description = "remove attention heads, FFN neurons, layers (smaller matrices; optional self-distillation)"

    @override
    def apply(self, backend: Backend, config: CompressionConfig, context: CompressionContext) -> Backend:
        from aikit.compress.tools import add_note, copy_module, module_of

        from .recovery import distill
        from .structured import prune_blocks

        assert isinstance(config, Structured)
        original = module_of(backend, self.name)
        module, notes = prune_blocks(copy_module(original), config, context.calibration)
        for note in notes:
            add_note(context, note)
        if config.recovery_seconds > 0 and context.calibration:
            result = distill(
                module,
                original,
                context.calibration,
                seconds=float(config.recovery_seconds),
                learning_rate=float(config.learning_rate),
                progress=context.progress,
            )
            add_note(
                context,
                f"prune-structured recovery: {result.steps} distillation steps in {result.seconds:.0f} s, "
                f"training loss {result.first_loss:.4f} -> {result.last_loss:.4f}, held-out loss "
                f"{result.held_out_before:.4f} -> {result.held_out_after:.4f} (kept step {result.kept_step})",
            )
        elif config.recovery_seconds > 0:
            add_note(context, "prune-structured recovery skipped: it needs calibration data (calibration=[...])")
        return backend.with_module(module.eval())

    @override
    def restore(self, module: Any, config: CompressionConfig) -> Any:
        from .structured import shrink_skeleton

        return shrink_skeleton(module, config)


STRATEGIES: tuple[type[Strategy], ...] = (MagnitudeStrategy, SemiStructuredStrategy, StructuredStrategy)
