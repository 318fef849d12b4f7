"""aikit artifact folders (``aikit.json`` + files), verified before anything is read."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from typing_extensions import override

from aikit.contracts.loader import Loader
from aikit.contracts.options import LoadOptions
from aikit.contracts.parts import ModelParts, SourceInfo
from aikit.contracts.preprocess import ImagePreprocess
from aikit.errors import AikitError, ModelLoadError, UnknownNameError
from aikit.model.artifact import MANIFEST_NAME, read_manifest, verify_files
from aikit.model.remote_code import check_remote_code
from aikit.plugins.host import get_backend, get_task
from aikit_formats.light import generic_fast_tokenizer, read_config


class ArtifactLoader(Loader):
    """An artifact written by ``Model.save``: the manifest's digest and every file's sha256 checked,
    then restored by the backend recorded in the manifest.

    The manifest is data: an ``ImagePreprocess`` is rebuilt from its fields, while a preprocess
    function recorded by name is never resolved (``Model.load`` asks the caller for it).
    """

    name = "aikit-artifact"
    description = "aikit artifact folder (aikit.json)"
    priority = 100

    @override
    def detects(self, source: object) -> bool:
        # lexists: a manifest that is a link or a FIFO still routes here, to be refused, not elsewhere
        return isinstance(source, (str, os.PathLike)) and os.path.lexists(Path(source) / MANIFEST_NAME)

    @override
    def load(self, source: object, *, task: str | None, options: LoadOptions) -> ModelParts:
        import transformers  # lazy: its Auto* classes (which import torch) load on first use

        directory = Path(os.fspath(source)).resolve()  # type: ignore[call-overload]
        manifest = read_manifest(directory, verify=options.verify, expected_sha256=options.expected_sha256)
        verify_files(directory, manifest, verify=options.verify)
        check_remote_code(directory, trust_remote_code=options.trust_remote_code)
        saved_task = str(manifest["task"])
        try:  # names only registered plugins provide; refused here rather than deep in Model.load
            get_task(saved_task)
            get_backend(str(manifest["backend"]))
        except UnknownNameError as exc:
            raise ModelLoadError(
                f"artifact {directory}: {MANIFEST_NAME} names an unknown {exc.kind} {exc.name!r:.100}: {exc}",
                source=directory,
            ) from exc
        src = manifest["source"] or {"kind": "aikit-artifact", "location": str(directory)}
        task_state: dict[str, Any] = dict(manifest["task_state"])
        parts = ModelParts(
            source=SourceInfo(kind=src["kind"], location=src["location"], sha256=src.get("sha256")),
            labels=manifest.get("labels"),
            artifact_dir=directory,
            manifest=manifest,
            task_hint=task or saved_task,
            task_state=task_state,
        )
        files = manifest["files"]
        trust = options.trust_remote_code
        # A text-generation model saved from ONNX Runtime needs its config only as data and, for a
        # generic fast tokenizer, no AutoTokenizer: read both without torch (``light``), as a warm GGUF
        # load does. Any other model gets transformers' classes, which its task or backend may rely on.
        light = (
            manifest["backend"] == "onnxruntime"
            and saved_task == "text-generation"
            and (task is None or get_task(task).name == saved_task)
            and not trust
        )
        try:
            if "config.json" in files:
                parts.config = read_config(directory) if light else None
                if parts.config is None:
                    parts.config = transformers.AutoConfig.from_pretrained(directory, trust_remote_code=trust)
            if "tokenizer_config.json" in files:
                parts.tokenizer = generic_fast_tokenizer(directory) if light else None
                if parts.tokenizer is None:
                    parts.tokenizer = transformers.AutoTokenizer.from_pretrained(directory, trust_remote_code=trust)
            if "preprocessor_config.json" in files:
                parts.image_processor = transformers.AutoImageProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                    directory, trust_remote_code=trust
                )
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            raise ModelLoadError(
                f"artifact {directory}: cannot read its config or tokenizer: {type(exc).__name__}: {exc}",
                source=directory,
            ) from exc
        preprocess = task_state.get("preprocess")
        if isinstance(preprocess, dict):  # a str is a function's name only: Model.load asks the caller
            try:
                parts.preprocess = ImagePreprocess.from_dict(preprocess)
            except (TypeError, ValueError, AikitError) as exc:
                raise ModelLoadError(
                    f"artifact {directory}: {MANIFEST_NAME} holds an invalid ImagePreprocess: {exc}", source=directory
                ) from exc
        return parts


class ModuleLoader(Loader):
    """A ``torch.nn.Module`` object (a hub model instance or your own network)."""

    name = "torch-module"
    description = "torch.nn.Module object"
    priority = 50

    @override
    def detects(self, source: object) -> bool:
        torch = sys.modules.get("torch")  # an nn.Module cannot exist unless torch is imported
        return torch is not None and isinstance(source, torch.nn.Module)

    @override
    def load(self, source: object, *, task: str | None, options: LoadOptions) -> ModelParts:
        cls = type(source)
        return ModelParts(
            source=SourceInfo(kind=self.name, location=f"{cls.__module__}.{cls.__qualname__}"),
            module=source,
            config=getattr(source, "config", None),
            task_hint=task,
        )
