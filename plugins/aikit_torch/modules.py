"""Rebuilding torch modules for artifacts: what class to build, and how to fill it with weights.

The backend state in a manifest is data, validated by ``TorchState``: a transformers model names
a ``PreTrainedModel`` subclass that transformers exports; a plain-PyTorch model's class is
recorded by name only, for the error message, and the skeleton always comes from the caller
(``Model.load(..., module=Net())``). Nothing named by a manifest is ever imported or called.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from aikit.contracts.parts import ModelParts
from aikit.errors import AikitError, ArtifactError, ModelLoadError
from aikit.model.artifact import MANIFEST_NAME, listed_file
from aikit.plugins.host import get_strategy

WEIGHTS = "model.safetensors"
# A module whose layers aikit replaced (int8 / int4 modules, torchao tensors) is saved under this name:
# transformers' from_pretrained would read model.safetensors, miss the replaced weights and fill them with
# fresh random values while reporting success. Without model.safetensors it refuses the folder instead.
COMPRESSED_WEIGHTS = "aikit-weights.safetensors"


class ModuleSpec(BaseModel):
    """How to rebuild the module's structure: ``{"kind": "transformers" | "python", "class": name}``."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    kind: Literal["transformers", "python"]
    class_name: str = Field(alias="class", min_length=1, max_length=300)


class TorchState(BaseModel):
    """The torch backends' ``backend_state``; ``weights`` is set by the CUDA backend."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    module: ModuleSpec
    dtype: Literal["float32", "float16", "bfloat16", "float64"] | None = None
    weights: Literal["plain", "torchao"] | None = None


def parse_state(directory: Path, state: Mapping[str, Any]) -> TorchState:
    """Validate a torch backend state read from ``directory``'s manifest (``ModelLoadError`` if invalid)."""
    try:
        return TorchState.model_validate(dict(state))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise ModelLoadError(
            f"artifact {directory}: {MANIFEST_NAME} has an invalid torch backend_state: {problems}", source=directory
        ) from exc


def is_transformers_model(module: Any) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(module, PreTrainedModel)


def decoder_start_token_id(module: Any) -> int | None:
    """The token a seq2seq model's decoder starts from: its generation config's, else its config's
    ``decoder_start_token_id``, else the pad token (T5's convention); None when none is set."""
    config = getattr(module, "config", None)
    start = getattr(getattr(module, "generation_config", None), "decoder_start_token_id", None)
    if start is None:
        start = getattr(config, "decoder_start_token_id", None)
    if start is None:
        start = getattr(config, "pad_token_id", None)
    return None if start is None else int(start)


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
        save_model(module, str(directory / weights_file(module)))
    except (ValueError, RuntimeError) as exc:
        raise ArtifactError(f"cannot write the weights as safetensors: {exc}") from exc
    return describe_module(module)


def build_skeleton(directory: Path, parts: ModelParts, spec: ModuleSpec) -> torch.nn.Module:
    """A module with the saved structure (weights not loaded yet).

    A transformers model is built from its config; a plain-PyTorch model is the ``module`` the
    caller passed to ``Model.load`` (``ModelLoadError`` naming the saved class when there is none).
    """
    if spec.kind == "transformers":
        import transformers

        cls = getattr(transformers, spec.class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
            raise ModelLoadError(
                f"artifact {directory}: {spec.class_name!r} is not a transformers model class", source=directory
            )
        config = parts.config
        if config is None:
            config = transformers.AutoConfig.from_pretrained(directory, trust_remote_code=False)
        # Only a concrete model class made for this config: base classes (PreTrainedModel itself)
        # have no config class, and building one caches class-wide flags in transformers that then
        # break every later model in the process.
        config_class = getattr(cls, "config_class", None)
        if not (isinstance(config_class, type) and isinstance(config, config_class)):
            raise ModelLoadError(
                f"artifact {directory}: {spec.class_name!r} is not a model class for its "
                f"{type(config).__name__} config",
                source=directory,
            )
        return cls(config)  # type: ignore[arg-type]  # an instance of cls.config_class, checked above
    given = parts.extras.get("module")
    if isinstance(given, torch.nn.Module):
        return given
    raise ModelLoadError(
        f"artifact {directory} holds weights for the plain PyTorch class `{spec.class_name}`; artifacts store "
        "data, never code, so pass an instance to fill: Model.load(..., module=YourNet(...))",
        source=directory,
    )


def restore_transformations(directory: Path, parts: ModelParts, module: torch.nn.Module) -> torch.nn.Module:
    """Re-apply each recorded transformation's structure, with configs only registered strategies define."""
    for record in (parts.manifest or {}).get("transformations", []):
        fields = {k: v for k, v in record.items() if k != "strategy"}
        try:
            strategy_cls = get_strategy(str(record.get("strategy")))
            config = strategy_cls.config_class.from_fields(fields)
            module = strategy_cls().restore(module, config)
        except (AikitError, ValueError, TypeError) as exc:  # unknown strategy, invalid config fields
            raise ModelLoadError(
                f"artifact {directory}: {MANIFEST_NAME} records a transformation aikit cannot rebuild: {exc}",
                source=directory,
            ) from exc
    return module


def plain_layout(module: torch.nn.Module) -> bool:
    """Whether the module holds only torch.nn / transformers layers and plain tensors, so that another
    library rebuilding the model from its config reads every weight (no layer aikit replaced)."""
    for sub in module.modules():
        origin = type(sub).__module__
        if not (origin.startswith("torch.nn.") or origin.startswith("transformers.")):
            return False
    return all(type(t) in (torch.Tensor, torch.nn.Parameter) for t in module.state_dict().values())


def weights_file(module: torch.nn.Module) -> str:
    """``model.safetensors``, or ``COMPRESSED_WEIGHTS`` for a transformers model whose layers aikit replaced."""
    return WEIGHTS if not is_transformers_model(module) or plain_layout(module) else COMPRESSED_WEIGHTS


def weights_path(directory: Path, parts: ModelParts) -> Path:
    """The weight file, which an artifact's manifest must list (``IntegrityError`` otherwise)."""
    if parts.manifest is None:  # called on a folder this process wrote, not on an artifact
        compressed = directory / COMPRESSED_WEIGHTS
        return compressed if compressed.is_file() else directory / WEIGHTS
    name = COMPRESSED_WEIGHTS if COMPRESSED_WEIGHTS in (parts.manifest.get("files") or {}) else WEIGHTS
    return listed_file(directory, parts.manifest, name, what="the weights")


def load_weights(directory: Path, parts: ModelParts, module: torch.nn.Module) -> torch.nn.Module:
    """Fill ``module`` strictly from the artifact's listed weight file; any failure is a ``ModelLoadError``."""
    path = weights_path(directory, parts)
    try:
        load_model(module, str(path), strict=True)
    except (SafetensorError, OSError) as exc:  # truncated or malformed header, offsets, shapes
        raise ModelLoadError(f"artifact {directory}: cannot read {path.name}: {exc}", source=directory) from exc
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(
            f"artifact {directory}: the weights in {path.name} do not fit the saved structure: {exc}", source=directory
        ) from exc
    return module.eval()


def restore_module(directory: Path, parts: ModelParts, state: Mapping[str, Any]) -> torch.nn.Module:
    """Rebuild the saved module: skeleton, then each recorded transformation's structure, then weights."""
    parsed = parse_state(directory, state)
    module = restore_transformations(directory, parts, build_skeleton(directory, parts, parsed.module))
    if parsed.dtype is not None:
        module = module.to(getattr(torch, parsed.dtype))
    return load_weights(directory, parts, module)
