"""``export_parts``: the cached export behind ``OrtBackend.from_parts`` for torch payloads.

A format plugin whose modules need their own export (Keras models take channels-last images and
unroll recurrent layers: plugins/aikit_keras/onnx_export.py) puts an ``ExportRecipe`` in
``parts.extras[EXPORT_RECIPE]``; the cache, the compressed-module note and the facts' use are the
same as for every other export, and the recipe must validate what it writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from aikit.contracts.parts import ModelParts
from aikit.errors import BackendError
from aikit.plugins.host import resolve_task
from aikit_onnxruntime.export.cache import cached_entry, entry_key, module_digest
from aikit_onnxruntime.settings import OrtSettings

__all__ = ["EXPORT_RECIPE", "ExportRecipe", "export_parts"]

EXPORT_RECIPE = "onnx_export"


class ExportRecipe(Protocol):
    """A plugin's own export of ``parts.module`` (see the module docstring)."""

    def cache_key(self, module: Any) -> str:
        """What decides ``module``'s graph besides its weights (``module_digest``), e.g. its architecture."""
        ...

    def build(self, folder: Path, task: Any, parts: ModelParts, settings: OrtSettings) -> dict[str, Any]:
        """Write ``model.onnx`` for ``parts.module`` into ``folder``, validated against it; return the facts
        (``kind``, ``graphs``, ``validation``) as ``build.build_export`` does."""
        ...


def _compressed_modules(module: Any) -> list[str]:
    """Names of modules swapped in by torch-side compression plugins (they rarely export to ONNX)."""
    return [
        f"{name} ({type(m).__name__})"
        for name, m in module.named_modules()
        if not type(m).__module__.startswith(("torch.", "transformers.")) and type(m).__module__.startswith("aikit")
    ]


def export_parts(parts: ModelParts, settings: OrtSettings) -> tuple[Path, dict[str, Any]]:
    """Folder and facts of the validated export of ``parts.module`` for its task (built once, then cached)."""
    import torch

    from aikit_onnxruntime.export.build import build_export, export_settings

    module = parts.module
    if not isinstance(module, torch.nn.Module):
        raise BackendError(f"the onnxruntime backend needs a torch.nn.Module to export, got {type(module).__name__}")
    task_cls = resolve_task(parts, None)
    task = task_cls(parts)
    recipe: ExportRecipe | None = parts.extras.get(EXPORT_RECIPE)
    weights = module_digest(module) + (recipe.cache_key(module) if recipe is not None else "")
    key = entry_key(weights=weights, task=task.name, settings=export_settings(settings))
    config = getattr(module, "config", None)

    def build(tmp: Path) -> dict[str, Any]:
        try:
            if recipe is not None:
                facts = recipe.build(tmp, task, parts, settings)
            else:
                facts = build_export(tmp, module, task, parts, settings)
        except BackendError as exc:
            swapped = _compressed_modules(module)
            if swapped:
                exc.add_note(
                    "this model was compressed on torch and holds modules ONNX cannot express: "
                    + ", ".join(swapped[:4])
                    + (" ..." if len(swapped) > 4 else "")
                    + ". Move the uncompressed model to onnxruntime and compress there "
                    "(model.to('onnxruntime').compress('ort-int8-dynamic'))"
                )
            raise
        if task.name == "text2text-generation":
            from aikit_torch.modules import decoder_start_token_id

            facts["decoder_start_token_id"] = decoder_start_token_id(module)
        if task.name == "text-generation":
            facts["context"] = getattr(config, "max_position_embeddings", None)
        return facts

    folder, facts = cached_entry(key, build, use_cache=settings.cache)
    if task.name == "text-generation":
        # The torch module's generation config may name extra end-of-turn ids; keep them with the model.
        gen = getattr(module, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None)
        if eos is not None:
            parts.task_state["eos_token_ids"] = [eos] if isinstance(eos, int) else list(eos)
    return folder, facts
