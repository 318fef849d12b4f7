"""Recovery after structured pruning: short self-distillation on unlabeled calibration inputs.

The original model is the teacher; the pruned one learns to reproduce its final hidden states
(masked MSE, scaled by the teacher's variance), so no labels are needed. Runs until the time
budget is spent or ``max_epochs`` passes over the data are done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from numpy.typing import NDArray
from torch import nn

from aikit.compression_tools import forward_module, to_tensors

__all__ = ["RecoveryResult", "distill"]


@dataclass
class RecoveryResult:
    steps: int
    seconds: float
    first_loss: float
    last_loss: float


def _hidden(module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The final hidden states (before any task head: big vocabularies would make logits costly)."""
    base = getattr(module, "base_model", module)
    out = forward_module(base, batch)
    value = getattr(out, "last_hidden_state", None)
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(out, torch.Tensor):
        return out
    return next(v for v in (out.values() if isinstance(out, dict) else out) if isinstance(v, torch.Tensor))


def distill(
    student: nn.Module,
    teacher: nn.Module,
    batches: Sequence[dict[str, NDArray[Any]]],
    *,
    seconds: float,
    learning_rate: float,
    progress: Callable[[int, int], None],
    max_epochs: int = 50,
) -> RecoveryResult:
    """Train ``student`` (in place) towards ``teacher``'s hidden states on ``batches``."""
    tensors = [to_tensors(b) for b in batches]
    with torch.no_grad():
        targets = [_hidden(teacher, t).detach().float() for t in tensors]
    masks = [t["attention_mask"].bool() if "attention_mask" in t else None for t in tensors]
    scale = torch.cat([y.reshape(-1) for y in targets]).var().clamp_min(1e-8)
    params = [p for p in student.parameters() if p.is_floating_point()]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    start = time.perf_counter()
    steps, first, last = 0, float("nan"), float("nan")
    student.eval()  # no dropout: the student should match the deterministic teacher
    try:
        for _ in range(max_epochs):
            for batch, target, mask in zip(tensors, targets, masks):
                with torch.enable_grad():
                    error = (_hidden(student, batch).float() - target).pow(2).mean(-1)
                    loss = (error[mask].mean() if mask is not None else error.mean()) / scale
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()  # type: ignore[no-untyped-call]
                    optimizer.step()
                steps += 1
                last = float(loss.detach())
                first = last if steps == 1 else first
                elapsed = time.perf_counter() - start
                progress(min(int(elapsed), int(seconds)), int(seconds) or 1)
                if elapsed >= seconds:
                    return RecoveryResult(steps, elapsed, first, last)
    finally:
        for p in params:
            p.requires_grad_(False)
            p.grad = None
    return RecoveryResult(steps, time.perf_counter() - start, first, last)
