"""aikit artifact folders (``aikit.json`` + files), verified before anything is read."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from aikit.artifact import MANIFEST_NAME, read_manifest, verify_files
from aikit.errors import ModelLoadError
from aikit.loader import Loader
from aikit.options import LoadOptions
from aikit.parts import ModelParts, SourceInfo
from aikit.preprocess import ImagePreprocess


def _importable(ref: str) -> Any:
    """Resolve ``module:qualname`` only among modules already imported (never import on a file's say-so)."""
    module_name, _, qualname = ref.partition(":")
    obj: Any = sys.modules.get(module_name)
    for attr in qualname.split("."):
        obj = getattr(obj, attr, None)
    return obj


class ArtifactLoader(Loader):
    """An artifact written by ``Model.save``: sha256 of every file checked, then restored by the
    backend recorded in the manifest."""

    name = "aikit-artifact"
    description = "aikit artifact folder (aikit.json)"
    priority = 100

    def detects(self, source: object) -> bool:
        return isinstance(source, (str, os.PathLike)) and (Path(source) / MANIFEST_NAME).is_file()

    def load(self, source: object, *, task: str | None, options: LoadOptions) -> ModelParts:
        import transformers

        directory = Path(os.fspath(source)).resolve()  # type: ignore[call-overload]
        manifest = read_manifest(directory)
        verify_files(directory, manifest, verify=options.verify)
        saved_task = str(manifest["task"])
        src = manifest.get("source") or {}
        task_state: dict[str, Any] = dict(manifest.get("task_state") or {})
        parts = ModelParts(
            source=SourceInfo(
                kind=str(src.get("kind", "aikit-artifact")),
                location=str(src.get("location", directory)),
                sha256=src.get("sha256"),
            ),
            labels=manifest.get("labels"),
            artifact_dir=directory,
            manifest=manifest,
            task_hint=task or saved_task,
            task_state=task_state,
        )
        files = manifest["files"]
        try:
            if "config.json" in files:
                parts.config = transformers.AutoConfig.from_pretrained(
                    directory, trust_remote_code=options.trust_remote_code
                )
            if "tokenizer_config.json" in files:
                parts.tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
            if "preprocessor_config.json" in files:
                parts.image_processor = transformers.AutoImageProcessor.from_pretrained(directory)  # type: ignore[no-untyped-call]
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"artifact {directory}: cannot read its config or tokenizer: {exc}", source=directory
            ) from exc
        preprocess = task_state.get("preprocess")
        if isinstance(preprocess, dict):
            parts.preprocess = ImagePreprocess.from_dict(preprocess)
        elif isinstance(preprocess, str):
            parts.preprocess = _importable(preprocess)
        return parts


class ModuleLoader(Loader):
    """A ``torch.nn.Module`` object (a hub model instance or your own network)."""

    name = "torch-module"
    description = "torch.nn.Module object"
    priority = 50

    def detects(self, source: object) -> bool:
        torch = sys.modules.get("torch")  # an nn.Module cannot exist unless torch is imported
        return torch is not None and isinstance(source, torch.nn.Module)

    def load(self, source: object, *, task: str | None, options: LoadOptions) -> ModelParts:
        cls = type(source)
        return ModelParts(
            source=SourceInfo(kind=self.name, location=f"{cls.__module__}.{cls.__qualname__}"),
            module=source,
            config=getattr(source, "config", None),
            task_hint=task,
        )
