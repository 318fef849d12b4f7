"""``KerasBackend``: a Keras 3 model run by PyTorch, saved in Keras' own safe format.

On Keras' torch backend a ``keras.Model`` *is* a ``torch.nn.Module``, so this backend is the torch
backend with three differences: it feeds the model the inputs Keras declared (by name, or the one
feature a task produces), it turns aikit's channels-first images into the channels-last layout a
Keras image model declares, and it saves artifacts as a ``.keras`` file (configuration JSON plus
HDF5 weights) that reloads with safe mode on, so an artifact reloads with no extra arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from aikit_torch.backend import TorchBackend, outputs_to_arrays
from numpy.typing import NDArray
from typing_extensions import override

from aikit.contracts.backend import Arrays, Backend
from aikit.contracts.options import BackendOptions
from aikit.contracts.parts import ModelParts
from aikit.errors import BackendError, ConfigError, UnsafeModelError
from aikit.model.manifest import listed_file
from aikit_keras._import import import_keras, keras_unavailable_reason
from aikit_keras.loader import mark_keras_parts, read_keras_file

if TYPE_CHECKING:  # imported where used: registering the backend must not load torch
    import torch

__all__ = ["KerasBackend", "arrange_inputs", "declared_inputs", "feature_names", "to_declared_layout"]

KERAS_FILE = "model.keras"


def _is_keras_model(module: Any) -> bool:
    keras = import_keras()
    return isinstance(module, keras.Model)


def declared_inputs(module: Any) -> tuple[list[str], list[tuple[int | None, ...]]]:
    """The names and shapes of a Keras model's ``keras.Input`` layers (empty for an unbuilt model)."""
    inputs = getattr(module, "inputs", None) or []
    return [str(t.name) for t in inputs], [tuple(t.shape) for t in inputs]


def arrange_inputs(
    names: list[str], shapes: list[tuple[int | None, ...]], tensors: Mapping[str, torch.Tensor]
) -> list[torch.Tensor]:
    """The positional arguments for a Keras model declaring ``names`` / ``shapes``, from a task's features.

    A single-input model gets the task's one feature, or the one named like its input, else
    ``input_ids`` / ``pixel_values``; a multi-input model gets its inputs by name. Images are put in
    the layout the model declares (``to_declared_layout``). Raises ``BackendError`` naming what is
    missing when the features do not fit the model. Plain Python decisions on shapes only, so the
    ONNX export (plugins/aikit_keras/onnx_export.py) records the same layout as a static transpose.
    """
    picked = feature_names(names, tensors)
    return [to_declared_layout(tensors[n], s) for n, s in zip(picked, shapes or [()])]


def feature_names(names: list[str], tensors: Mapping[str, Any]) -> list[str]:
    """Which of the task's features ``arrange_inputs`` feeds the model, in the model's input order."""
    if len(names) <= 1:
        if len(tensors) == 1:
            return [next(iter(tensors))]
        if names and names[0] in tensors:
            return [names[0]]
        found = [k for k in ("input_ids", "pixel_values") if k in tensors]
        if not found:
            raise BackendError(f"cannot tell which of the features {sorted(tensors)} feeds the Keras model")
        return found[:1]
    missing = [n for n in names if n not in tensors]
    if missing:
        raise BackendError(
            f"the Keras model's inputs are named {names}; the task gave {sorted(tensors)} (missing {missing})"
        )
    return list(names)


def to_declared_layout(value: torch.Tensor, declared: tuple[int | None, ...]) -> torch.Tensor:
    """Channels-first ``(B, C, H, W)`` images become channels-last when the model declares ``(H, W, C)``.

    aikit's image tasks hand every backend channels-first arrays (``ImagePreprocess``, HF processors);
    Keras image models are channels-last by default. A shape that fits the declaration as it is
    (a channels-first model) is left alone.
    """
    if value.ndim != 4 or len(declared) != 4:
        return value

    def fits(shape: tuple[int, ...], wanted: tuple[int | None, ...]) -> bool:
        return all(w is None or w == s for s, w in zip(shape, wanted))

    _, c, h, w = (int(d) for d in value.shape)
    if fits((c, h, w), declared[1:]):  # already what the model declares
        return value
    if fits((h, w, c), declared[1:]):
        return value.permute(0, 2, 3, 1)
    return value


class KerasBackend(TorchBackend):
    """Runs a Keras 3 model on Keras' torch backend (CPU), and saves it as a ``.keras`` file.

    Chosen for models read by the ``keras`` loader; ``dtype`` is refused (a Keras model computes in
    its own dtype policy). A model with several inputs gets the task's features by the names of
    its ``keras.Input`` layers; a single-input model gets the task's one feature (``input_ids`` for
    text, ``pixel_values`` for images). Artifacts reload with Keras' safe mode on: a model with a
    ``Lambda`` layer cannot be reloaded from an artifact (load its ``.keras`` file again instead).
    """

    name = "keras"
    description = "Keras 3 models on Keras' torch backend (CPU)"
    accepts = frozenset({"torch"})
    can_generate = False
    priority = 0  # below "torch": only chosen for Keras parts (see aikit_choose_backend)
    devices: ClassVar[frozenset[str]] = frozenset({"cpu"})

    def __init__(self, module: torch.nn.Module, options: BackendOptions) -> None:
        if options.dtype not in (None, "float32"):
            raise ConfigError(
                f"backend {self.name!r} runs Keras models in their own dtype; got dtype={options.dtype!r}"
            )
        super().__init__(module, options)
        self._input_names, self._input_shapes = declared_inputs(module)

    @classmethod
    @override
    def unavailable_reason(cls) -> str | None:
        return keras_unavailable_reason()

    @classmethod
    @override
    def from_parts(cls, parts: ModelParts, options: BackendOptions) -> Backend:
        if not _is_keras_model(parts.module):
            raise BackendError(f"backend {cls.name!r} runs keras.Model objects, got {type(parts.module).__name__}")
        return cls(parts.module, options)

    def model_inputs(self, tensors: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """The positional arguments for the Keras model, from a task's named features (``arrange_inputs``)."""
        return arrange_inputs(self._input_names, self._input_shapes, tensors)

    def torch_forward(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The model's first output for named features, differentiable (``aikit.measure.explain`` uses it)."""
        import torch

        out = self.module(*self.model_inputs(tensors))
        if isinstance(out, (list, tuple)):
            out = out[0]
        if isinstance(out, Mapping):
            out = next(iter(out.values()))
        if not isinstance(out, torch.Tensor):
            raise BackendError(f"the Keras model returned {type(out).__name__}; expected a tensor")
        return out

    @override
    def forward(self, inputs: Arrays) -> dict[str, NDArray[Any]]:
        import torch

        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in inputs.items()}
        with torch.inference_mode():
            out = self.module(*self.model_inputs(tensors))
        return outputs_to_arrays(out)

    @override
    def save(self, directory: Path) -> dict[str, Any]:
        try:
            self.module.save(directory / KERAS_FILE)  # type: ignore[operator]
        except (ValueError, TypeError, OSError) as exc:
            raise BackendError(f"Keras cannot save this model as {KERAS_FILE}: {exc}") from exc
        return {"file": KERAS_FILE}

    @classmethod
    @override
    def load(cls, directory: Path, parts: ModelParts, state: Mapping[str, Any], options: BackendOptions) -> Backend:
        path = listed_file(directory, parts.manifest or {}, state.get("file"), what="the Keras model")
        try:
            # An artifact is data: its manifest never switches safe mode off (see SECURITY.md).
            module = read_keras_file(path, trust_remote_code=False)
        except UnsafeModelError as exc:
            raise UnsafeModelError(
                f"artifact {directory} holds a Keras model with Python code (a Lambda layer); artifacts are "
                "reloaded with Keras' safe mode on. Load the original .keras file with trust_remote_code=True",
                source=directory,
            ) from exc
        mark_keras_parts(parts, trust_remote_code=False)
        return cls(module, options)

    @override
    def with_module(self, module: Any) -> Backend:
        return type(self)(module, self.options)

    @override
    def describe(self) -> dict[str, Any]:
        keras = import_keras()
        return {**super().describe(), "keras": str(keras.__version__)}
