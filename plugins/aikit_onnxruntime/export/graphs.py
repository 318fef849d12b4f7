"""Exporting torch modules to ONNX, one graph layout per task.

Every graph takes the arrays aikit's tasks produce and returns the names the tasks read:

- text encoders (feature-extraction, text / token classification): ``input_ids``,
  ``attention_mask`` → ``last_hidden_state`` or ``logits``;
- image classifiers (transformers or plain ``nn.Module``): ``pixel_values`` → ``logits``;
- seq2seq: an encoder graph (``input_ids``, ``attention_mask`` → ``last_hidden_state``) and a
  decoder graph without KV cache (``decoder_input_ids``, ``encoder_hidden_states``,
  ``encoder_attention_mask`` → ``logits``);
- decoder LLMs: see ``aikit_onnxruntime.export.decoder``.

The TorchScript exporter (``torch.onnx.export(dynamo=False)``, opset 17) is used: its BERT graphs
are the ones ONNX Runtime's transformer fusions recognise (the dynamo exporter's graph is exact
too, but the fusions find no attention in it).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.jit._trace import TracerWarning
from typing_extensions import override

from aikit.errors import BackendError

__all__ = ["OPSET", "ExportedGraph", "eager_attention", "export_graph", "graph_for_task"]

OPSET = 17


class ExportedGraph:
    """A wrapper module plus the names and dynamic axes of its ONNX interface."""

    def __init__(
        self,
        module: torch.nn.Module,
        inputs: Sequence[str],
        outputs: Sequence[str],
        dynamic: Mapping[str, Mapping[int, str]],
    ) -> None:
        self.module = module.eval()
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.dynamic = {k: dict(v) for k, v in dynamic.items()}

    def torch_outputs(self, arrays: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        """Run the wrapper in torch on ``arrays`` (the reference for validation)."""
        args = [torch.from_numpy(np.ascontiguousarray(arrays[n])) for n in self.inputs]
        with torch.inference_mode():
            out = self.module(*args)
        values = out if isinstance(out, (tuple, list)) else (out,)
        return {n: v.detach().float().numpy() for n, v in zip(self.outputs, values)}


class _TextEncoder(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, output: str, token_types: bool) -> None:
        super().__init__()
        self.model = model
        self.output = output
        self.token_types = token_types

    @override
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        extra = {"token_type_ids": torch.zeros_like(input_ids)} if self.token_types else {}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra)
        return out[self.output]  # type: ignore[no-any-return]


class _ImageClassifier(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, transformers_model: bool) -> None:
        super().__init__()
        self.model = model
        self.transformers_model = transformers_model

    @override
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.transformers_model:
            return self.model(pixel_values=pixel_values).logits  # type: ignore[no-any-return]
        out = self.model(pixel_values)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out  # type: ignore[no-any-return]


class _Seq2SeqEncoder(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = model.get_encoder()  # type: ignore[operator]

    @override
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # type: ignore[no-any-return]


class _Seq2SeqDecoder(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    @override
    def forward(
        self, decoder_input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor, encoder_attention_mask: torch.Tensor
    ) -> torch.Tensor:
        out = self.model(
            encoder_outputs=(encoder_hidden_states,),
            attention_mask=encoder_attention_mask,
            decoder_input_ids=decoder_input_ids,
            use_cache=False,
        )
        return out.logits  # type: ignore[no-any-return]


def _is_transformers(module: Any) -> bool:
    from aikit_torch.modules import is_transformers_model

    return is_transformers_model(module)


def _takes_token_types(module: Any) -> bool:
    import inspect

    config = getattr(module, "config", None)
    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False
    return "token_type_ids" in params and int(getattr(config, "type_vocab_size", 0) or 0) > 0


_BS = {0: "batch"}
_BT = {0: "batch", 1: "sequence"}


def graph_for_task(module: torch.nn.Module, task: str) -> dict[str, ExportedGraph]:
    """The graphs to export for ``task``, keyed by file stem (``model``, or ``encoder`` + ``decoder``)."""
    if task in ("feature-extraction", "text-classification", "token-classification"):
        output = "last_hidden_state" if task == "feature-extraction" else "logits"
        axes = _BS if task == "text-classification" else _BT  # one row per text, or per token
        inner = _TextEncoder(module, output, _takes_token_types(module))
        names = {"input_ids": _BT, "attention_mask": _BT, output: axes}
        return {"model": ExportedGraph(inner, ["input_ids", "attention_mask"], [output], names)}
    if task == "image-classification":
        return {
            "model": ExportedGraph(
                _ImageClassifier(module, _is_transformers(module)),
                ["pixel_values"],
                ["logits"],
                {"pixel_values": _BS, "logits": _BS},
            )
        }
    if task == "text2text-generation":
        return {
            "encoder": ExportedGraph(
                _Seq2SeqEncoder(module),
                ["input_ids", "attention_mask"],
                ["last_hidden_state"],
                {"input_ids": _BT, "attention_mask": _BT, "last_hidden_state": _BT},
            ),
            "decoder": ExportedGraph(
                _Seq2SeqDecoder(module),
                ["decoder_input_ids", "encoder_hidden_states", "encoder_attention_mask"],
                ["logits"],
                {
                    "decoder_input_ids": {0: "batch", 1: "target"},
                    "encoder_hidden_states": {0: "batch", 1: "sequence"},
                    "encoder_attention_mask": _BT,
                    "logits": {0: "batch", 1: "target"},
                },
            ),
        }
    raise BackendError(f"the onnxruntime backend cannot export models of task {task!r}")


@contextlib.contextmanager
def legacy_exporter_warnings() -> Iterator[None]:
    """Silence exactly the warnings that come with torch's TorchScript ONNX exporter, and say why.

    - Its own ``DeprecationWarning``: aikit still uses it because the graphs it writes are the ones
      ONNX Runtime's transformer fusions and aikit's quantization exclusions are written for, and
      the torch.export-based exporter does not yet export aikit's flat-cache decoders or T5 at the
      opset used here (see docs/how-to/dependencies.md). Any other deprecation still surfaces.
    - The exporter's own internal ``exporter_context`` deprecation ("The feature will be removed"),
      which torch's legacy exporter raises against itself on every call: nothing aikit passes
      triggers it or can avoid it.
    - "Exporting aten::index operator of advanced indexing": a note that the op becomes several ONNX
      ops; the validation below checks the result.
    - ``TracerWarning``: tracing records one path through Python control flow (shape checks in
      transformers' code); the exported graph is validated against the torch model afterwards
      (``validate.py``), which is the real check.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"You are using the legacy TorchScript-based ONNX export", category=DeprecationWarning
        )
        warnings.filterwarnings(
            "ignore",
            message=r"The feature will be removed\. Please remove usage of this function",
            category=DeprecationWarning,
            module=r"torch\.onnx\._internal\.torchscript_exporter",
        )
        warnings.filterwarnings(
            "ignore", message=r"Exporting aten::index operator of advanced indexing", category=UserWarning
        )
        warnings.filterwarnings("ignore", category=TracerWarning)
        yield


@contextlib.contextmanager
def eager_attention(module: Any) -> Iterator[None]:
    """Export with the plain MatMul/Softmax attention (the pattern ORT's fusions match), then restore."""
    config = getattr(module, "config", None)
    before = getattr(config, "_attn_implementation", None)
    setter = getattr(module, "set_attn_implementation", None)
    if before in (None, "eager") or not callable(setter):
        yield
        return
    try:
        setter("eager")
    except (ValueError, ImportError):  # the architecture has no eager path: export what it has
        yield
        return
    try:
        yield
    finally:
        setter(before)


def export_graph(graph: ExportedGraph, sample: Mapping[str, NDArray[Any]], path: Path) -> None:
    """Write ``graph`` to ``path`` (weights above 2 GB go to external data next to it)."""
    args = tuple(torch.from_numpy(np.ascontiguousarray(sample[n])) for n in graph.inputs)
    with legacy_exporter_warnings(), torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            graph.module,
            args,
            str(path),
            input_names=graph.inputs,
            output_names=graph.outputs,
            dynamic_axes=graph.dynamic,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    # The exporter restores the wrapper's "training" flag, which a fresh wrapper has set and which
    # propagates to every submodule: put the model back in eval mode (dropout off).
    graph.module.eval()
