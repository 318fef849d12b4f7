"""Recovery after structured pruning: short self-distillation on unlabeled calibration inputs.

The original model is the teacher; the pruned one learns to reproduce its final hidden states,
so no labels are needed. The loss is cosine distance, per token and of the masked-mean pooled
vector: unlike MSE it is not dominated by the few outlier dimensions transformers carry, and the
pooled term is what sentence embeddings are made of (all-MiniLM-L6-v2 with 40% of FFN neurons
removed, 120 s: mean embedding cosine 0.961 with this loss at lr 1e-4 on 1,200 sentences; the
earlier variance-scaled MSE at lr 5e-5 on 256 sentences reached 0.947, so loss, rate and data
all changed between those two runs).
Batches are visited in a seeded random order each epoch. Runs until the time budget is spent or
``max_epochs`` passes over the data are done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from numpy.typing import NDArray
from torch import nn

from aikit.compress.tools import forward_module, to_tensors

__all__ = ["RecoveryResult", "cosine_loss", "distill"]


@dataclass
class RecoveryResult:
    """What recovery did: steps, seconds, training loss, and the held-out loss it kept."""

    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    held_out_before: float = float("nan")
    held_out_after: float = float("nan")
    kept_step: int = 0  # the step whose weights were kept (0: the pruned model as it came in)


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


def cosine_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean per-token cosine distance plus the cosine distance of the masked-mean pooled vectors."""
    from torch.nn.functional import cosine_similarity

    per_token = (1.0 - cosine_similarity(student, teacher, dim=-1))[mask].mean()
    weights = mask[..., None].to(student.dtype)
    count = weights.sum(1).clamp_min(1.0)
    pooled = 1.0 - cosine_similarity((student * weights).sum(1) / count, (teacher * weights).sum(1) / count, dim=-1)
    return per_token + pooled.mean()


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
    """Train ``student`` (in place) towards ``teacher``'s hidden states on ``batches``.

    With four or more batches, every eighth (at least one) is held out: its loss is measured
    before training and after every epoch, and the student ends with the weights that scored best
    there, so recovery never ends with a higher held-out loss than it started from (MiniLM with
    10% of FFN neurons removed, 1,200 evaluation sentences: min embedding cosine 0.930 with no
    training (256 calibration sentences), 0.879 after 240 s of unchecked training and 0.947 with
    this check (1,200 calibration sentences each).
    """
    tensors = [to_tensors(b) for b in batches]
    with torch.no_grad():
        targets = [_hidden(teacher, t).detach().float() for t in tensors]
    masks = [
        t["attention_mask"].bool() if "attention_mask" in t else torch.ones(y.shape[:2], dtype=torch.bool)
        for t, y in zip(tensors, targets)
    ]
    held = set(range(0, len(tensors), 8)) if len(tensors) >= 4 else set()
    train = [k for k in range(len(tensors)) if k not in held]

    def held_out_loss() -> float:
        if not held:
            return float("nan")
        with torch.no_grad():
            losses = [float(cosine_loss(_hidden(student, tensors[k]).float(), targets[k], masks[k])) for k in held]
        return sum(losses) / len(losses)

    result = RecoveryResult(0, 0.0, float("nan"), float("nan"))
    student.eval()  # no dropout: the student should match the deterministic teacher
    result.held_out_before = best = held_out_loss()
    best_state = {k: v.detach().clone() for k, v in student.state_dict().items()} if held else None
    order = torch.Generator().manual_seed(0)
    params = [p for p in student.parameters() if p.is_floating_point()]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    start = time.perf_counter()
    try:
        for _ in range(max_epochs):
            out_of_time = False
            for k in (train[i] for i in torch.randperm(len(train), generator=order).tolist()):
                with torch.enable_grad():
                    loss = cosine_loss(_hidden(student, tensors[k]).float(), targets[k], masks[k])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()  # type: ignore[no-untyped-call]
                    optimizer.step()
                result.steps += 1
                result.last_loss = float(loss.detach())
                if result.steps == 1:
                    result.first_loss = result.last_loss
                elapsed = time.perf_counter() - start
                progress(min(int(elapsed), int(seconds)), int(seconds) or 1)
                if out_of_time := elapsed >= seconds:
                    break
            current = held_out_loss()
            if best_state is not None and current < best:
                best, result.kept_step = current, result.steps
                best_state = {k: v.detach().clone() for k, v in student.state_dict().items()}
            if out_of_time:
                break
    finally:
        for p in params:
            p.requires_grad_(False)
            p.grad = None
    if best_state is not None:
        student.load_state_dict(best_state)
        result.held_out_after = best
    else:
        result.kept_step = result.steps
    result.seconds = time.perf_counter() - start
    return result
