"""Saving and loading modules whose weights are torchao quantized tensors, as safetensors.

torchao's own (allow-listed) flattening splits each quantized tensor into plain tensors plus JSON
metadata; loading rebuilds only the tensor classes torchao allow-lists, so no pickle is involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from aikit_torch.modules import (
    build_skeleton,
    describe_module,
    is_transformers_model,
    parse_state,
    restore_transformations,
    weights_file,
    weights_path,
)

from aikit.contracts.parts import ModelParts
from aikit.errors import ArtifactError, MissingDependencyError, ModelLoadError

__all__ = ["has_quantized_weights", "load_quantized_module", "save_quantized_module"]

_PLAIN = (torch.Tensor, torch.nn.Parameter)


def has_quantized_weights(module: torch.nn.Module) -> bool:
    """Whether any entry of ``module``'s state dict is a tensor subclass (a torchao quantized weight)."""
    return any(type(v) not in _PLAIN for v in module.state_dict().values())


def _torchao_safetensors() -> Any:
    try:
        from torchao.prototype.safetensors import safetensors_support
    except ImportError as exc:
        raise MissingDependencyError(
            "torchao", feature="saving GPU-quantized weights", install="pip install torchao"
        ) from exc
    return safetensors_support


def save_quantized_module(module: torch.nn.Module, directory: Path) -> dict[str, Any] | None:
    """Write ``module``'s quantized weights to ``directory``; None (nothing written) when it has none."""
    if not has_quantized_weights(module):
        return None
    from safetensors.torch import save_file

    support = _torchao_safetensors()
    # Plain tensors are cloned so that tied weights do not share storage (safetensors refuses that).
    state = {k: v.detach() if type(v) not in _PLAIN else v.detach().clone() for k, v in module.state_dict().items()}
    try:
        tensors, metadata = support.flatten_tensor_state_dict(state)
    except ValueError as exc:
        raise ArtifactError(f"cannot write these quantized weights as safetensors: {exc}") from exc
    if is_transformers_model(module):
        config: Any = module.config
        config.save_pretrained(directory)
    target = directory / weights_file(module)
    save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(target), metadata=metadata)
    return {"module": describe_module(module), "weights": "torchao"}


def load_quantized_module(directory: Path, parts: ModelParts, state: Mapping[str, Any]) -> torch.nn.Module:
    """Rebuild a module saved by ``save_quantized_module``: skeleton, recorded structure, then weights."""
    from safetensors import SafetensorError, safe_open

    support = _torchao_safetensors()
    parsed = parse_state(directory, state)
    module = restore_transformations(directory, parts, build_skeleton(directory, parts, parsed.module))
    path = weights_path(directory, parts)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open is not a dict
    except (SafetensorError, OSError) as exc:
        raise ModelLoadError(f"artifact {directory}: cannot read {path.name}: {exc}", source=directory) from exc
    try:
        quantized, plain = support.unflatten_tensor_state_dict(tensors, metadata)
        module.load_state_dict({**plain, **quantized}, strict=True, assign=True)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelLoadError(
            f"artifact {directory}: quantized weights do not fit the saved structure: {exc}", source=directory
        ) from exc
    return module.eval()
