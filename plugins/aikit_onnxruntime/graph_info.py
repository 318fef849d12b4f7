"""Facts about an ONNX graph read from the file: what it is (encoder, decoder with KV cache) and its interface."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aikit.errors import ModelLoadError

__all__ = ["describe_graph", "graph_files"]

_PAST = re.compile(r"past_key_values\.(\d+)\.(key|value)")


def describe_graph(path: Path) -> dict[str, Any]:
    """``{"kind": "single" | "decoder", "inputs": [...], "outputs": [...], ...}`` for ``path``.

    Decoder graphs (inputs ``past_key_values.N.key|value``) also get ``kv_heads``, ``head_dim``,
    ``layers`` and ``shared`` (a ``GroupQueryAttention`` graph that shares past and present buffers).
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelLoadError(f"cannot parse {path} as an ONNX model: {type(exc).__name__}: {exc}", source=path) from exc
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    facts: dict[str, Any] = {"kind": "single", "inputs": inputs, "outputs": outputs}
    past = [i for i in model.graph.input if _PAST.fullmatch(i.name)]
    if not past:
        return facts
    dims = [d.dim_value if d.HasField("dim_value") else None for d in past[0].type.tensor_type.shape.dim]
    head_dim = dims[3] if len(dims) == 4 else None
    if head_dim is None:  # the builder leaves it symbolic; its config has it
        config = path.parent / "genai_config.json"
        if config.is_file():
            head_dim = int(json.loads(config.read_text(encoding="utf-8"))["model"]["decoder"]["head_size"])
    if head_dim is None or dims[1] is None:
        raise ModelLoadError(
            f"{path}: the KV-cache inputs have a symbolic head count or head size and no genai_config.json "
            "sits next to the file to say what they are",
            source=path,
        )
    facts.update(
        kind="decoder",
        kv_heads=int(dims[1]),
        head_dim=int(head_dim),
        layers=len(past) // 2,
        shared=any(n.op_type == "GroupQueryAttention" for n in model.graph.node),
    )
    return facts


def graph_files(path: Path) -> list[str]:
    """``path``'s name and the external-data files it references, relative to its folder.

    Raises ``ModelLoadError`` when a reference points outside the folder (a crafted file must not
    make aikit read or copy arbitrary files) or names a file that is missing.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelLoadError(f"cannot parse {path} as an ONNX model: {type(exc).__name__}: {exc}", source=path) from exc
    if not model.graph.node or not model.graph.output:  # an empty or truncated file parses as an empty model
        raise ModelLoadError(f"{path} holds no ONNX graph (empty or truncated file)", source=path)
    root = path.parent.resolve()
    names = {path.name}
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (root / location).resolve()
        if not location or not target.is_relative_to(root):
            raise ModelLoadError(
                f"{path}: tensor {tensor.name!r} keeps its data in {location!r}, outside the model's folder; "
                "refusing to load",
                source=path,
            )
        if not target.is_file():
            raise ModelLoadError(
                f"{path}: the external data file {location!r} of tensor {tensor.name!r} is missing", source=path
            )
        names.add(target.relative_to(root).as_posix())
    return sorted(names)


def _tensors(graph: Any) -> list[Any]:
    """Every initializer and constant tensor in ``graph`` and its subgraphs."""
    import onnx

    found = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                found.append(attr.t)
            elif attr.type == onnx.AttributeProto.GRAPH:
                found += _tensors(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    found += _tensors(g)
    return found
