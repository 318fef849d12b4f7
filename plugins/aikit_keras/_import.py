"""Importing Keras on its torch backend, once per process.

Keras fixes its backend when ``keras`` is first imported, from ``KERAS_BACKEND`` (or
``~/.keras/keras.json``). aikit runs Keras models as ``torch.nn.Module`` objects, which only the
torch backend gives, so this module sets ``KERAS_BACKEND=torch`` before the first import and
refuses, with an aikit error, a process where Keras was already imported with another backend or
where the user asked for another one: switching silently would break that user's other code.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

from aikit.errors import BackendUnavailableError, MissingDependencyError

__all__ = ["INSTALL", "import_keras", "keras_unavailable_reason"]

INSTALL = "pip install 'aikit[keras]'"
# Keras records the backend it chose here; it stays in sys.modules even when a later part of
# ``import keras`` failed (for example the TensorFlow default without TensorFlow installed).
_CONFIG_MODULE = "keras.src.backend.config"


def _imported_backend() -> str | None:
    """The backend of a Keras already imported in this process, or None when none was."""
    config = sys.modules.get(_CONFIG_MODULE)
    if config is None:
        return None
    backend = getattr(config, "backend", None)
    return str(backend()) if callable(backend) else None


def keras_unavailable_reason() -> str | None:
    """Why Keras models cannot run in this process, or None when they can. Never imports Keras."""
    imported = _imported_backend()
    if imported is not None and imported != "torch":
        return (
            f"keras was already imported in this process with its {imported!r} backend; aikit runs Keras "
            "models on the torch backend, which Keras fixes at import: set KERAS_BACKEND=torch before "
            "anything imports keras"
        )
    if imported is None:
        requested = os.environ.get("KERAS_BACKEND", "")
        if requested not in ("", "torch"):
            return (
                f"KERAS_BACKEND is {requested!r}; aikit runs Keras models on the torch backend: "
                "unset KERAS_BACKEND or set it to 'torch'"
            )
        if importlib.util.find_spec("keras") is None:
            return f"the optional package 'keras' is not installed: run `{INSTALL}`"
    return None


def import_keras() -> ModuleType:
    """``keras``, imported on the torch backend.

    Raises ``MissingDependencyError`` when Keras is not installed and ``BackendUnavailableError``
    when Keras runs (or was asked to run) on another backend in this process.
    """
    reason = keras_unavailable_reason()
    if reason is not None and "not installed" in reason:
        raise MissingDependencyError("keras", feature="Keras 3 models (.keras files)", install=INSTALL)
    if reason is not None:
        raise BackendUnavailableError(reason)
    if _imported_backend() is None:
        # Set only when Keras has not chosen yet: from here on this process's Keras is torch-backed.
        os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError as exc:
        raise MissingDependencyError("keras", feature="Keras 3 models (.keras files)", install=INSTALL) from exc
    backend = str(keras.backend.backend())
    if backend != "torch":  # e.g. a keras.json pinned it and KERAS_BACKEND was ignored
        raise BackendUnavailableError(f"keras imported with its {backend!r} backend; aikit needs 'torch'")
    return keras  # type: ignore[no-any-return]  # keras ships no type information
