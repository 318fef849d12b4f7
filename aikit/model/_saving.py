"""``save_model``: what ``Model.save`` writes (see ``aikit.model.artifact`` for the folder format)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aikit.contracts.preprocess import ImagePreprocess
from aikit.model.artifact import write_artifact

if TYPE_CHECKING:
    from aikit.model.model import Model

__all__ = ["save_model"]


def _preprocess_entry(preprocess: Any) -> Any:
    """``ImagePreprocess`` fields (data, restored on load), or a function's ``module:qualname``.

    The name is recorded only so that ``Model.load`` can say which function to pass again: an
    artifact never makes aikit import or call anything (see ``aikit.model.manifest``).
    """
    if preprocess is None:
        return None
    if isinstance(preprocess, ImagePreprocess):
        return preprocess.to_dict()
    module = getattr(preprocess, "__module__", None) or "?"
    qualname = getattr(preprocess, "__qualname__", None) or type(preprocess).__qualname__
    return f"{module}:{qualname}"


def _report_dict(report: Any) -> Any:
    to_dict = getattr(report, "to_dict", None)
    return to_dict() if callable(to_dict) else report


def save_model(model: Model, directory: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``directory`` as an artifact, atomically."""

    def fill(tmp: Path) -> Mapping[str, Any]:
        backend_state = model.backend.save(tmp)
        parts = model.parts
        if parts.tokenizer is not None:
            with model._lock:
                # A fast tokenizer remembers the last call's truncation/padding; saving that would make
                # artifacts depend on what was predicted before, so save the tokenizer's neutral state.
                backend_tokenizer = getattr(parts.tokenizer, "_tokenizer", None)
                if backend_tokenizer is not None:
                    backend_tokenizer.no_truncation()
                    backend_tokenizer.no_padding()
                parts.tokenizer.save_pretrained(tmp)
        if parts.image_processor is not None:
            parts.image_processor.save_pretrained(tmp)
        task_state = model.task.state()
        entry = _preprocess_entry(parts.preprocess)
        if entry is not None:
            task_state["preprocess"] = entry
        return {
            "task": model.task.name,
            "task_state": task_state,
            "labels": parts.labels,
            "backend": model.backend.name,
            "backend_state": backend_state,
            "backend_info": model.backend.describe(),
            "source": parts.source.to_dict(),
            "transformations": list(model.transformations),
            "compression_report": _report_dict(model.compression_report),
            "optimization_report": _report_dict(model.optimization_report),
        }

    return write_artifact(directory, fill)
