"""``ModelParts``: what a loader hands to a task and a backend.

A loader reads a source (a folder, a file, a module) into parts; the task turns inputs into
arrays with the tokenizer / processor held here; a backend turns the weights held here into
something it can run. Parts are plain data so that any plugin can produce or consume them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ModelParts", "SourceInfo"]


@dataclass(frozen=True, kw_only=True)
class SourceInfo:
    """Where a model came from: ``kind`` is the loader's name, ``sha256`` hashes its weight files."""

    kind: str
    location: str
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "location": self.location, "sha256": self.sha256}


@dataclass(kw_only=True)
class ModelParts:
    """Everything known about a loaded model before a backend runs it.

    Exactly one weight payload is usually set: ``module`` (a ``torch.nn.Module``), ``onnx_path``
    (an ONNX file), or ``artifact_dir`` + ``manifest`` (an aikit artifact, restored by the backend
    named in its manifest). ``task_state`` carries task settings such as pooling or labels.

    A loader whose weights are none of these (a plugin's own format) sets ``payload_kind`` to a
    name of its choosing and puts the weights in ``extras``; any backend that lists that name in
    ``Backend.accepts`` can then run it, exactly as the built-in kinds are matched.

    A loader may defer the torch module: ``module_loader`` builds it on first need
    (:meth:`require_module`), so that a backend that never needs it (ONNX Runtime opening a GGUF
    file's cached graph) never imports torch. The payload is ``"torch"`` either way; code that
    reads ``module`` from freshly loaded parts calls :meth:`require_module` first.
    """

    source: SourceInfo
    module: Any = None
    config: Any = None
    tokenizer: Any = None
    image_processor: Any = None
    preprocess: Callable[[Any], Any] | None = None
    labels: list[str] | None = None
    onnx_path: Path | None = None
    artifact_dir: Path | None = None
    manifest: dict[str, Any] | None = None
    task_hint: str | None = None
    task_state: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    payload_kind: str | None = None
    module_loader: Callable[[], Any] | None = None

    @property
    def payload(self) -> str:
        """The kind of weights held: ``payload_kind`` when the loader set one, else ``"artifact"``,
        ``"torch"``, ``"onnx"`` or ``"none"`` from the payload fields."""
        if self.payload_kind is not None:
            return self.payload_kind
        if self.artifact_dir is not None:
            return "artifact"
        if self.module is not None or self.module_loader is not None:
            return "torch"
        if self.onnx_path is not None:
            return "onnx"
        return "none"

    def require_module(self) -> Any:
        """``module``, built now by ``module_loader`` when the loader deferred it (once: the loader is
        then dropped); None when these parts hold no torch module. Errors are the loader's own."""
        if self.module is None and self.module_loader is not None:
            self.module = self.module_loader()
            self.module_loader = None
        return self.module
