"""``OnnxFileLoader``: ``Model.load("model.onnx", task=..., labels=[...])`` for ONNX files from any framework.

The file is checked before anything runs it: it must parse, pass ``onnx.checker``, and keep its
external data inside its own folder. A tokenizer (``tokenizer.json`` / ``tokenizer_config.json``),
a transformers ``config.json`` and an image ``preprocessor_config.json`` next to the file are
picked up; otherwise pass ``preprocess=aikit.ImagePreprocess(...)`` and ``labels=[...]``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from typing_extensions import override

from aikit.contracts.loader import Loader
from aikit.contracts.options import LoadOptions
from aikit.contracts.parts import ModelParts, SourceInfo
from aikit.errors import MissingDependencyError, ModelLoadError
from aikit.model.artifact import hash_file
from aikit.model.remote_code import check_remote_code
from aikit_onnxruntime.graph_info import describe_graph, graph_files

__all__ = ["OnnxFileLoader", "check_onnx_file"]


def check_onnx_file(path: Path, *, checker: bool = True) -> list[str]:
    """Validate ``path`` (parse, external data inside its folder, and ``onnx.checker`` unless
    ``checker=False``); return its files. Failures are ``ModelLoadError`` naming the file."""
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError(
            "onnx", feature="loading .onnx files", install="pip install 'aikit[onnx]'"
        ) from exc
    files = graph_files(path)  # parses the file and checks every external-data reference
    if not checker:
        return files
    try:
        onnx.checker.check_model(str(path), full_check=False)
    except Exception as exc:  # onnx raises ValidationError and friends
        raise ModelLoadError(f"{path} is not a valid ONNX model: {exc}", source=path) from exc
    return files


class OnnxFileLoader(Loader):
    """A ``.onnx`` file (from torch, TensorFlow/Keras via tf2onnx, onnxruntime-genai, ...)."""

    name = "onnx"
    description = "ONNX file (runs on the onnxruntime backend)"
    priority = 20

    @override
    def detects(self, source: object) -> bool:
        return isinstance(source, (str, os.PathLike)) and str(source).endswith(".onnx") and Path(source).is_file()

    @override
    def load(self, source: object, *, task: str | None, options: LoadOptions) -> ModelParts:
        path = Path(os.fspath(source)).resolve()  # type: ignore[call-overload]
        files = check_onnx_file(path)
        facts = describe_graph(path)
        facts["graphs"] = {"model": path.name}
        if (
            len(facts["outputs"]) == 1
            and facts["kind"] == "single"
            and facts["outputs"][0]
            not in (
                "logits",
                "last_hidden_state",
                "sentence_embedding",
            )
        ):
            facts["rename_outputs"] = {facts["outputs"][0]: "logits"}  # e.g. Keras's "dense_1"
        digest = hashlib.sha256("".join(hash_file(path.parent / f) for f in files).encode()).hexdigest()
        parts = ModelParts(
            source=SourceInfo(kind=self.name, location=str(path), sha256=digest),
            onnx_path=path,
            task_hint=task or ("text-generation" if facts["kind"] == "decoder" else None),
        )
        parts.extras["onnx_facts"] = facts
        self._read_neighbours(path.parent, parts, options)
        return parts

    @staticmethod
    def _read_neighbours(folder: Path, parts: ModelParts, options: LoadOptions) -> None:
        import transformers

        trust = options.trust_remote_code
        check_remote_code(folder, trust_remote_code=trust)
        try:
            if (folder / "config.json").is_file():
                parts.config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=trust)
            if (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file():
                parts.tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=trust)
            if (folder / "preprocessor_config.json").is_file():
                parts.image_processor = transformers.AutoImageProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                    folder, trust_remote_code=trust
                )
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot read the files next to the ONNX model in {folder}: {exc}", source=folder
            ) from exc
