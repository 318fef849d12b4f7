"""``KerasFileLoader``: ``Model.load("model.keras", task=...)`` for Keras 3's native format.

A ``.keras`` file is a zip holding the model's configuration (JSON) and weights (HDF5): data, not
pickle. Its configuration can still carry code: a ``Lambda`` layer stores Python bytecode that
Keras runs when it rebuilds the layer. Keras' *safe mode* refuses that, and aikit always loads with
safe mode on unless the caller passes ``trust_remote_code=True`` (the same opt-in, in the same
words, as code shipped with a Hugging Face model). Custom layer classes load only when the
caller's own code registered them (``keras.saving.register_keras_serializable``) before loading:
Keras imports modules by name only from its own packages.

A tokenizer (``tokenizer.json`` / ``tokenizer_config.json``) next to the file is picked up for
text tasks, under the same remote-code rules as a model folder.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

from typing_extensions import override

from aikit.contracts.loader import Loader
from aikit.contracts.options import LoadOptions
from aikit.contracts.parts import ModelParts, SourceInfo
from aikit.errors import ModelLoadError, UnsafeModelError
from aikit.model.artifact import hash_file
from aikit.model.remote_code import check_remote_code

from ._import import import_keras

__all__ = ["KERAS_EXTRA", "ONNX_EXPORT_EXTRA", "KerasFileLoader", "mark_keras_parts", "read_keras_file"]

# ``ModelParts.extras`` key marking parts that hold a Keras model (the keras backend is chosen for them).
KERAS_EXTRA = "keras"
# ``aikit_onnxruntime.export.cached.EXPORT_RECIPE``: how the onnxruntime backend exports a Keras model.
# Spelled out so that this plugin does not import the onnxruntime plugin.
ONNX_EXPORT_EXTRA = "onnx_export"


def mark_keras_parts(parts: ModelParts, *, trust_remote_code: bool) -> None:
    """Mark ``parts`` as holding a Keras model: the keras backend and the Keras ONNX export apply."""
    from .onnx_export import KerasExportRecipe

    parts.extras[KERAS_EXTRA] = {"trust_remote_code": trust_remote_code}
    parts.extras[ONNX_EXPORT_EXTRA] = KerasExportRecipe()


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def read_keras_file(path: Path, *, trust_remote_code: bool) -> Any:
    """Rebuild the ``keras.Model`` in ``path`` with safe mode on unless ``trust_remote_code``.

    Raises ``UnsafeModelError`` when the file holds code (a ``Lambda`` layer) and the caller did not
    opt in, ``ModelLoadError`` for anything else Keras cannot read (the message names the file).
    """
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(
            f"{path} is not a Keras 3 .keras file (not a zip archive); legacy .h5 and SavedModel are not read",
            source=path,
        )
    keras = import_keras()
    try:
        # compile=False: aikit only runs the model; rebuilding the optimizer and losses could need
        # custom objects that inference never uses.
        return keras.saving.load_model(path, compile=False, safe_mode=not trust_remote_code)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "unsafe" in str(exc).lower():
            raise UnsafeModelError(
                f"{path} holds Python code (a Lambda layer or a marshalled function) that Keras would run while "
                "loading it; aikit loads Keras files with Keras' safe mode on. Pass trust_remote_code=True only "
                "after reading that code",
                source=path,
            ) from exc
        raise ModelLoadError(f"Keras cannot read {path}: {exc}", source=path) from exc
    except TypeError as exc:  # unregistered custom classes surface as TypeError("Could not locate class ...")
        raise ModelLoadError(
            f"Keras cannot read {path}: {exc}. A custom layer must be registered by your code "
            "(keras.saving.register_keras_serializable) before loading",
            source=path,
        ) from exc
    except (OSError, KeyError, AttributeError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"Keras cannot read {path}: {type(exc).__name__}: {exc}", source=path) from exc


class KerasFileLoader(Loader):
    """A Keras 3 ``.keras`` file, loaded with Keras' safe mode on and run by the ``keras`` backend."""

    name = "keras"
    description = "Keras 3 .keras file (safe mode; runs on Keras' torch backend)"
    priority = 20

    @override
    def detects(self, source: object) -> bool:
        return (
            isinstance(source, (str, os.PathLike)) and str(source).lower().endswith(".keras") and Path(source).is_file()
        )

    @override
    def load(self, source: object, *, task: str | None, options: LoadOptions) -> ModelParts:
        path = Path(os.fspath(source)).resolve()  # type: ignore[call-overload]
        module = read_keras_file(path, trust_remote_code=options.trust_remote_code)
        parts = ModelParts(
            source=SourceInfo(kind=self.name, location=str(path), sha256=hash_file(path)),
            module=module,
            task_hint=task,
        )
        mark_keras_parts(parts, trust_remote_code=options.trust_remote_code)
        folder = path.parent
        if any((folder / name).is_file() for name in _TOKENIZER_FILES):
            import transformers

            check_remote_code(folder, trust_remote_code=options.trust_remote_code)
            try:
                parts.tokenizer = transformers.AutoTokenizer.from_pretrained(
                    folder, trust_remote_code=options.trust_remote_code
                )
            except (OSError, ValueError) as exc:
                raise ModelLoadError(f"cannot read the tokenizer next to {path}: {exc}", source=folder) from exc
        return parts
