"""Keras models on ONNX Runtime: the export recipe the ``onnxruntime`` backend runs for them.

A Keras model on Keras' torch backend is a ``torch.nn.Module``, so it is exported with the same
TorchScript exporter (opset 17) as every other aikit export, and validated the same way
(``aikit_onnxruntime.export.validate.compare_outputs``, tolerance ``atol + rtol * max|keras|`` from
``backend_options``). Three things differ from a plain module, and are handled here:

- **Inputs.** The graph takes the task's own arrays (``pixel_values`` channels-first;
  ``input_ids`` and whatever else the model's ``keras.Input`` names ask for), fed to the model
  exactly as the ``keras`` backend feeds them (``backend.arrange_inputs``). A channels-last model
  gets a transpose *inside* the graph, decided from the layout the model declares, so the
  graph's interface is the one every other aikit image graph has (no layout guessing at run time).
- **Sequence length.** Keras' recurrent layers (``LSTM``, ``GRU``, masked or not) run a Python
  loop over time steps on the torch backend; tracing unrolls it, so the graph only runs at the
  traced length. Every text export is therefore checked at two lengths. When the dynamic-length
  graph fails that check, it is exported again at a fixed length ``L`` (the tokenizer's
  ``model_max_length``, or ``backend_options={'max_length': L}``) with the inputs padded to ``L``
  inside the graph by the pad token; the reference it must match is the model run on the
  *unpadded* inputs, so a model that does not mask its padding (``Embedding(mask_zero=True)``)
  fails validation instead of being served wrong.
- **Errors.** When the exporter refuses the model, each layer is exported on its own (on the
  inputs it really receives) to name the first one ONNX cannot express.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from typing_extensions import override

from aikit.contracts.parts import ModelParts
from aikit.errors import BackendError, ConfigError

from .backend import arrange_inputs, declared_inputs, feature_names

__all__ = ["KerasExportRecipe", "LayerExportError"]

logger = logging.getLogger("aikit.keras")

# Text inputs of two lengths the sample batch does not have: exported graphs must run at both.
_PROBE_TEXTS = (
    ["one", "two words"],
    ["a longer sentence with quite a few more words than the other samples have in them, to reach a new length"],
)
_TASKS = ("text-classification", "token-classification", "image-classification", "feature-extraction")
# A tokenizer's model_max_length above this is "no limit" (transformers uses 1e30).
_UNBOUNDED = 1_000_000


class LayerExportError(BackendError):
    """A Keras layer that ONNX (opset 17, torch's TorchScript exporter) cannot express."""


def _output_name(task: str) -> str:
    return "last_hidden_state" if task == "feature-extraction" else "logits"


def _first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, Mapping):
        out = next(iter(out.values()))
    if isinstance(out, (list, tuple)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise BackendError(f"the Keras model returned {type(out).__name__}; expected a tensor")
    return out


class _KerasGraph(torch.nn.Module):
    """The exported function: the task's features in, the model's first output out.

    With ``length`` set, every ``(batch, sequence)`` feature is padded to ``length`` first (token
    ids with ``pad_id``, masks with 0) and per-token outputs are cut back to the input's length.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        features: Sequence[str],
        names: list[str],
        shapes: list[tuple[int | None, ...]],
        *,
        length: int | None = None,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.model = model
        self.features = list(features)
        self.names, self.shapes = names, shapes
        self.length, self.pad_id = length, pad_id

    @override
    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        tensors = dict(zip(self.features, args))
        seq = None
        if self.length is not None:
            for name, value in list(tensors.items()):
                if value.ndim == 2 and not value.is_floating_point():
                    seq = value.shape[1]
                    fill = self.pad_id if name == "input_ids" else 0
                    # A negative width (input longer than ``length``) makes ONNX Runtime refuse the run
                    # rather than silently dropping tokens; the task truncates to ``length`` anyway.
                    pad = torch.full((value.shape[0], self.length - value.shape[1]), fill, dtype=value.dtype)
                    tensors[name] = torch.cat([value, pad], dim=1)
        out = _first_tensor(self.model(*arrange_inputs(self.names, self.shapes, tensors)))
        if seq is not None and out.ndim >= 3 and out.shape[1] == self.length:
            out = out[:, :seq]
        return out


def _reference(model: Any, names: list[str], shapes: list[tuple[int | None, ...]], arrays: Mapping[str, Any]) -> Any:
    """The model's first output as the ``keras`` backend computes it (the unpadded inputs)."""
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    with torch.inference_mode():
        out = _first_tensor(model(*arrange_inputs(names, shapes, tensors)))
    return out.detach().float().numpy()


class KerasExportRecipe:
    """``aikit_onnxruntime.export.cached.ExportRecipe`` for a ``keras.Model`` (see the module docstring)."""

    def cache_key(self, module: Any) -> str:
        """The model's architecture (``get_config``): Keras models of one class differ only there."""
        try:
            config = json.dumps(module.get_config(), sort_keys=True, default=repr)
        except (NotImplementedError, TypeError, ValueError):  # a subclassed model without get_config
            config = repr(module)
        return "keras-export-v1:" + hashlib.sha256(config.encode()).hexdigest()

    def build(self, folder: Path, task: Any, parts: ModelParts, settings: Any) -> dict[str, Any]:
        task_name = str(task.name)
        if task_name not in _TASKS:
            raise BackendError(
                f"aikit exports Keras models to ONNX for {', '.join(_TASKS)}, not {task_name!r}; "
                "run it on backend='keras'"
            )
        model = parts.module.eval()
        names, shapes = declared_inputs(model)
        sample = _sample(task, parts, settings, names, shapes)
        features = feature_names(names, sample)
        sample = {k: sample[k] for k in features}
        probes = [sample]
        if task.input_kind == "text":
            probes += [
                {k: v for k, v in task.collate(task.preprocess(texts, max_length=None)).items() if k in features}
                for texts in _PROBE_TEXTS
            ]
        output = _output_name(task_name)
        path = folder / "model.onnx"
        facts: dict[str, Any] = {
            "kind": "single",
            "graphs": {"model": "model.onnx"},
            "exporter": "torch.onnx (keras)",
            "keras_inputs": features,
            "validation": {},
            "fusions": {},
        }
        graph = _KerasGraph(model, features, names, shapes)
        per_token = task_name in ("token-classification", "feature-extraction")
        self._export(graph, features, output, sample, path, sequence=task.input_kind == "text", per_token=per_token)
        problem = _check(path, model, names, shapes, probes, output, settings, facts)
        if problem is not None and task.input_kind == "text":
            length = self._fixed_length(parts, settings)
            logger.info("Keras export at a dynamic length failed (%s); exporting at a fixed length %d", problem, length)
            pad = getattr(parts.tokenizer, "pad_token_id", None)
            graph = _KerasGraph(
                model, features, names, shapes, length=length, pad_id=pad if isinstance(pad, int) else 0
            )
            self._export(graph, features, output, sample, path, sequence=True, per_token=per_token)
            facts["sequence_length"] = length
            problem = _check(path, model, names, shapes, probes, output, settings, facts)
        if problem is not None:
            from aikit_onnxruntime.export.validate import ExportMismatchError

            raise ExportMismatchError(f"the ONNX export of this Keras model does not reproduce it: {problem}")
        return facts

    def _fixed_length(self, parts: ModelParts, settings: Any) -> int:
        """The unrolled length: at least what the task can hand the graph (the tokenizer's limit)."""
        limit = getattr(parts.tokenizer, "model_max_length", None)
        limit = limit if isinstance(limit, int) and 0 < limit < _UNBOUNDED else None
        asked = settings.max_length
        if asked is not None and limit is not None and asked < limit:
            raise ConfigError(
                f"backend_options max_length={asked} is below the tokenizer's limit ({limit} tokens): longer "
                "inputs would reach the fixed-length Keras graph; leave max_length unset"
            )
        length = asked or limit
        if length is None:
            raise ConfigError(
                "this Keras model's ONNX graph only runs at the length it was traced at (a recurrent layer is "
                "unrolled), and its tokenizer sets no model_max_length: pass backend_options={'max_length': N} "
                "to export it for inputs of up to N tokens"
            )
        return int(length)

    def _export(
        self,
        graph: _KerasGraph,
        features: list[str],
        output: str,
        sample: Mapping[str, NDArray[Any]],
        path: Path,
        *,
        sequence: bool,
        per_token: bool,
    ) -> None:
        from aikit_onnxruntime.export.graphs import OPSET, legacy_exporter_warnings

        axes: dict[str, dict[int, str]] = {
            name: ({0: "batch", 1: "sequence"} if sequence and sample[name].ndim == 2 else {0: "batch"})
            for name in features
        }
        axes[output] = {0: "batch", 1: "sequence"} if per_token else {0: "batch"}
        args = tuple(torch.from_numpy(np.ascontiguousarray(sample[n])) for n in features)
        try:
            with legacy_exporter_warnings(), torch.inference_mode(False), torch.no_grad():
                torch.onnx.export(
                    graph,
                    args,
                    str(path),
                    input_names=features,
                    output_names=[output],
                    dynamic_axes=axes,
                    opset_version=OPSET,
                    dynamo=False,
                    do_constant_folding=True,
                )
        except Exception as exc:  # the tracer and the exporter raise many types
            raise _explain_failure(graph.model, graph, sample, exc) from exc
        finally:
            graph.eval()  # the exporter restores the wrapper's training flag, which propagates down


def _fits(shape: tuple[int, ...], declared: tuple[int | None, ...]) -> bool:
    """``shape`` (batch first) is what the model declares, as it is or channels-first for a channels-last model."""
    if len(shape) != len(declared):
        return False
    rest = shape[1:]
    variants = [rest] + ([(rest[1], rest[2], rest[0])] if len(rest) == 3 else [])
    return any(all(d is None or d == s for s, d in zip(v, declared[1:])) for v in variants)


def _sample(
    task: Any, parts: ModelParts, settings: Any, names: list[str], shapes: list[tuple[int | None, ...]]
) -> dict[str, NDArray[Any]]:
    """Two real inputs to trace and validate with: the task's own sample batch (aikit_onnxruntime.export.sample_inputs)
    when its arrays fit the model's declared inputs, else random values of the declared shape.

    The task's sample runs the model's ``preprocess`` on random photos; a preprocess written for
    other inputs (the 64 pixels of a digit) cannot take them, and then the declared shape is the
    one source of truth. A declared image shape is ambiguous about the layout the task hands over,
    so it needs ``backend_options={'input_shape': (C, H, W)}``.
    """
    from aikit_onnxruntime.export.sample_inputs import sample_batch

    try:
        sample = sample_batch(task, parts, settings.input_shape)
        picked = feature_names(names, sample)
        if all(_fits(sample[n].shape, d) for n, d in zip(picked, shapes)) or not shapes:
            return sample
    except Exception:  # user preprocess code, fed photos it was not written for
        logger.debug("the task's sample batch does not fit this Keras model; using its declared input shape")
    if task.input_kind != "image" or len(shapes) != 1 or any(d is None for d in shapes[0][1:]):
        raise BackendError(
            f"cannot build a sample input for exporting this Keras model (declared inputs {shapes}) from the task's "
            "own sample; run it on backend='keras'"
        )
    declared = tuple(int(d) for d in shapes[0][1:] if d is not None)
    if len(declared) == 3:
        if settings.input_shape is None:
            raise BackendError(
                f"this Keras image model declares {declared}, and its preprocess does not take an RGB image, so "
                "aikit cannot tell the layout it produces: pass backend_options={'input_shape': (C, H, W)}"
            )
        declared = tuple(settings.input_shape)
    rng = np.random.default_rng(0)
    return {"pixel_values": rng.uniform(0.0, 1.0, (2, *declared)).astype(np.float32)}


def _check(
    path: Path,
    model: Any,
    names: list[str],
    shapes: list[tuple[int | None, ...]],
    probes: Sequence[Mapping[str, NDArray[Any]]],
    output: str,
    settings: Any,
    facts: dict[str, Any],
) -> str | None:
    """Run the graph on every probe batch and compare with Keras; the first problem, or None.

    With ``settings.validate`` off the graph still has to run at every probe length (a graph that
    cannot is unusable), but its numbers are not compared.
    """
    import onnxruntime
    from aikit_onnxruntime.export.validate import ExportMismatchError, compare_outputs
    from aikit_onnxruntime.session import OrtRunner

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # a graph failing a probe is an expected outcome here, not a log line
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own error types
        raise BackendError(f"ONNX Runtime cannot load the Keras export: {type(exc).__name__}: {exc}") from exc
    runner = OrtRunner(session)
    worst: dict[str, float] = {}
    for i, arrays in enumerate(probes):
        shape = "x".join(str(d) for d in next(iter(arrays.values())).shape)
        try:
            got = runner.run(arrays)
        except Exception as exc:  # onnxruntime's own error types
            return f"ONNX Runtime cannot run it on a {shape} batch ({type(exc).__name__}: {str(exc)[:200]})"
        if not settings.validate:
            continue
        try:
            report = compare_outputs(
                f"ONNX export of the Keras model ({shape} batch)",
                {output: got[output]},
                {output: _reference(model, names, shapes, arrays)},
                atol=settings.atol,
                rtol=settings.rtol,
            )
        except ExportMismatchError as exc:
            if i == 0:  # wrong at the traced shape itself: not a length problem, report it as is
                raise
            return str(exc)
        worst[output] = max(worst.get(output, 0.0), report[output])
    facts["validation"] = {"export": worst} if settings.validate else {}
    return None


class _LayerCall(torch.nn.Module):
    def __init__(self, layer: Any) -> None:
        super().__init__()
        self.layer = layer

    @override
    def forward(self, *args: torch.Tensor) -> Any:
        return self.layer(args[0] if len(args) == 1 else list(args))


def _explain_failure(
    model: Any, graph: _KerasGraph, sample: Mapping[str, NDArray[Any]], exc: Exception
) -> BackendError:
    """A ``LayerExportError`` naming the first layer that fails to export on its own, else a general error."""
    found = _failing_layer(model, graph, sample)
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}" if str(exc) else type(exc).__name__
    if found is None:
        return BackendError(
            f"torch.onnx.export cannot export this Keras model ({reason}). Run it on the keras backend "
            "(backend='keras', the default for .keras files)"
        )
    layer, layer_reason = found
    return LayerExportError(
        f"Keras layer {layer.name!r} ({type(layer).__name__}) cannot be exported to ONNX: {layer_reason}. "
        f"Run this model on the keras backend (backend='keras', the default for .keras files), or move what "
        f"{type(layer).__name__} computes out of the model (into preprocess) and export the rest"
    )


def _failing_layer(model: Any, graph: _KerasGraph, sample: Mapping[str, NDArray[Any]]) -> tuple[Any, str] | None:
    """Export each layer alone on the inputs it receives for ``sample``; the first that fails, with why."""
    from ._import import import_keras

    keras = import_keras()
    layers = [layer for layer in getattr(model, "layers", []) if not isinstance(layer, keras.layers.InputLayer)]
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sample.items()}
    args = arrange_inputs(graph.names, graph.shapes, tensors)
    scratch = Path(tempfile.mkdtemp(prefix="aikit-keras-layer-"))
    try:
        return _first_failing(keras, model, layers, args, scratch / "layer.onnx")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _first_failing(
    keras: Any, model: Any, layers: list[Any], args: list[torch.Tensor], path: Path
) -> tuple[Any, str] | None:
    """The first of ``layers`` whose export to ``path`` fails on the inputs it receives from ``args``."""
    from aikit_onnxruntime.export.graphs import OPSET, legacy_exporter_warnings

    for layer in layers:
        try:
            # The layer's real inputs: the functional graph up to it, run on the sample.
            upstream = keras.Model(model.inputs, layer.input)
            with torch.no_grad():
                given = upstream(args[0] if len(args) == 1 else args)
        except Exception:  # shared or nested layers have no single input: not diagnosable this way
            continue
        given_list = list(given) if isinstance(given, (list, tuple)) else [given]
        try:
            with legacy_exporter_warnings(), torch.inference_mode(False), torch.no_grad():
                torch.onnx.export(
                    _LayerCall(layer).eval(),
                    tuple(given_list),
                    str(path),
                    opset_version=OPSET,
                    dynamo=False,
                    do_constant_folding=False,  # a diagnosis: only whether it exports matters
                )
        except Exception as exc:
            text = str(exc).splitlines()[0][:300] if str(exc) else ""
            return layer, f"{type(exc).__name__}: {text}"
    return None
