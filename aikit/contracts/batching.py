"""Length-sorted batching: pad each batch only to its own longest item, restore input order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aikit.errors import AikitError, BackendError
from aikit.progress import progress_bar

if TYPE_CHECKING:
    from aikit.contracts.backend import Backend
    from aikit.contracts.task import Example, Task

__all__ = ["run_batches", "sorted_batches"]

# Below this many items a progress bar is noise; above it, a user at a terminal wants one.
_PROGRESS_MIN_ITEMS = 256


def sorted_batches(examples: Sequence[Example], batch_size: int) -> list[list[Example]]:
    """Group examples into batches of similar length (longest first, so memory peaks early)."""
    ordered = sorted(examples, key=lambda e: e.length, reverse=True)
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


def run_batches(
    task: Task,
    backend: Backend,
    items: Sequence[Any],
    *,
    options: Any,
    batch_size: int,
    max_length: int | None,
    progress: bool | None = None,
) -> list[Any]:
    """Preprocess ``items``, run them in length-sorted batches, return results in input order."""
    if not items:
        return []
    examples = task.preprocess(items, max_length=max_length)
    results: list[Any] = [None] * len(examples)
    batches = sorted_batches(examples, batch_size)
    bar = progress_bar(len(examples), desc=task.name, unit="item", enabled=progress, min_items=_PROGRESS_MIN_ITEMS)
    try:
        for batch in batches:
            try:
                outputs = task.run_batch(backend, batch, options)
            except AikitError:
                raise
            except Exception as exc:  # a runtime failure deep in torch / ORT gets named context
                first = min(e.index for e in batch)
                raise BackendError(
                    f"backend {backend.name!r} failed on a batch of {len(batch)} item(s) "
                    f"(first input index {first}): {type(exc).__name__}: {exc}"
                ) from exc
            for example, result in zip(batch, outputs, strict=True):
                results[example.index] = result
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    return results
