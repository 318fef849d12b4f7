"""Rebuilding torch modules for artifacts: what class to build, and how to fill it with weights."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from aikit.errors import ArtifactError, ModelLoadError
from aikit.parts import ModelParts
from aikit.plugins import get_strategy

WEIGHTS = "model.safetensors"


def is_transformers_model(module: Any) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(module, PreTrainedModel)


def describe_module(module: torch.nn.Module) -> dict[str, Any]:
    """The manifest entry that says how to rebuild ``module``'s structure."""
    if is_transformers_model(module):
        return {"kind": "transformers", "class": type(module).__name__}
    cls = type(module)
    return {"kind": "python", "class": f"{cls.__module__}:{cls.__qualname__}"}


def save_module(module: torch.nn.Module, directory: Path) -> dict[str, Any]:
    """Write ``module``'s weights (safetensors) and, for transformers models, ``config.json``."""
    if is_transformers_model(module):
        module.config.save_pretrained(directory)  # type: ignore[union-attr,operator]
    try:
        save_model(module, str(directory / WEIGHTS))
    except (ValueError, RuntimeError) as exc:
        raise ArtifactError(f"cannot write the weights as safetensors: {exc}") from exc
    return describe_module(module)


def build_skeleton(directory: Path, parts: ModelParts, spec: Mapping[str, Any]) -> torch.nn.Module:
    """A module with the saved structure (weights not loaded yet)."""
    kind = spec.get("kind")
    if kind == "transformers":
        import transformers

        cls = getattr(transformers, str(spec.get("class")), None)
        if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
            raise ModelLoadError(
                f"artifact {directory}: {spec.get('class')!r} is not a transformers model class", source=directory
            )
        config = parts.config
        if config is None:
            config = transformers.AutoConfig.from_pretrained(directory)
        return cls(config)
    if kind == "python":
        given = parts.extras.get("module")
        if isinstance(given, torch.nn.Module):
            return given
        module_name, _, qualname = str(spec.get("class")).partition(":")
        # Import nothing on a manifest's say-so: the class must already be importable in this process.
        owner = sys.modules.get(module_name)
        cls = owner
        for attr in qualname.split("."):
            cls = getattr(cls, attr, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise ModelLoadError(
                f"artifact {directory} holds weights for the plain PyTorch class {spec.get('class')!r}, "
                "which is not imported in this process; import it first or pass module=YourNet(...) to Model.load",
                source=directory,
            )
        try:
            return cls()
        except TypeError as exc:
            raise ModelLoadError(
                f"cannot build {spec.get('class')!r} without arguments ({exc}); pass module=YourNet(...) to Model.load",
                source=directory,
            ) from exc
    raise ModelLoadError(f"artifact {directory}: unknown module kind {kind!r}", source=directory)


def restore_module(directory: Path, parts: ModelParts, state: Mapping[str, Any]) -> torch.nn.Module:
    """Rebuild the saved module: skeleton, then each recorded transformation's structure, then weights."""
    module = build_skeleton(directory, parts, state.get("module", {}))
    manifest = parts.manifest or {}
    for record in manifest.get("transformations", []):
        fields = {k: v for k, v in record.items() if k != "strategy"}
        strategy_cls = get_strategy(str(record.get("strategy")))
        config = strategy_cls.config_class.from_fields(fields)
        module = strategy_cls().restore(module, config)
    dtype = state.get("dtype")
    if isinstance(dtype, str) and hasattr(torch, dtype):
        module = module.to(getattr(torch, dtype))
    try:
        load_model(module, str(directory / WEIGHTS), strict=True)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelLoadError(
            f"artifact {directory}: weights do not fit the saved structure: {exc}", source=directory
        ) from exc
    return module.eval()
