"""Hugging Face model folders (safetensors) and hub ids resolved from the local cache."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

from typing_extensions import override

from aikit.contracts.loader import Loader
from aikit.contracts.options import LoadOptions
from aikit.contracts.parts import ModelParts, SourceInfo
from aikit.errors import MissingDependencyError, ModelLoadError, UnsafeModelError
from aikit.model.artifact import MANIFEST_NAME, hash_file
from aikit.model.remote_code import check_remote_code
from aikit.plugins.host import resolve_task

from ._quiet import quiet_transformers

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def weight_files(directory: Path) -> tuple[list[Path], list[Path]]:
    """(safetensors files, pickle-based weight files) directly inside ``directory``."""
    safe = sorted(directory.glob("*.safetensors"))
    pickled = sorted(p for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    return safe, pickled


def combined_hash(paths: list[Path]) -> str | None:
    if not paths:
        return None
    if len(paths) == 1:
        return hash_file(paths[0])
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + hash_file(p).encode())
    return h.hexdigest()


def sentence_transformers_state(directory: Path) -> dict[str, Any]:
    """Pooling, normalisation and max length from a sentence-transformers folder ({} if none)."""
    modules_file = directory / "modules.json"
    if not modules_file.is_file():
        return {}
    state: dict[str, Any] = {"pooling": "mean", "normalize": False}
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        for module in modules:
            kind = str(module.get("type", ""))
            if kind.endswith("Pooling"):
                pooling = json.loads((directory / module.get("path", "") / "config.json").read_text(encoding="utf-8"))
                for key, mode in (
                    ("pooling_mode_cls_token", "cls"),
                    ("pooling_mode_max_tokens", "max"),
                    ("pooling_mode_lasttoken", "lasttoken"),
                    ("pooling_mode_mean_tokens", "mean"),
                ):
                    if pooling.get(key):
                        state["pooling"] = mode
                        break
            elif kind.endswith("Normalize"):
                state["normalize"] = True
        bert_config = directory / "sentence_bert_config.json"
        if bert_config.is_file():
            max_len = json.loads(bert_config.read_text(encoding="utf-8")).get("max_seq_length")
            if isinstance(max_len, int):
                state["max_seq_length"] = max_len
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelLoadError(f"{directory}: unreadable sentence-transformers config: {exc}", source=directory) from exc
    return state


def load_hf_folder(directory: Path, *, task: str | None, options: LoadOptions, kind: str, location: str) -> ModelParts:
    """Load a transformers model folder into parts, choosing the Auto class from the task."""
    import transformers
    from safetensors import SafetensorError

    safe, pickled = weight_files(directory)
    if not safe and pickled and not options.allow_pickle:
        names = ", ".join(p.name for p in pickled)
        raise UnsafeModelError(
            f"{directory} holds only pickle-based weights ({names}); unpickling can run arbitrary code. "
            "Convert them to safetensors, or pass allow_pickle=True if you trust the source "
            "(they are then loaded with torch.load(weights_only=True))",
            source=directory,
        )
    if not safe and not pickled:
        raise ModelLoadError(f"{directory} has a config.json but no weight files (*.safetensors)", source=directory)
    check_remote_code(directory, trust_remote_code=options.trust_remote_code)
    try:
        config = transformers.AutoConfig.from_pretrained(directory, trust_remote_code=options.trust_remote_code)
    except ValueError as exc:
        raise ModelLoadError(f"cannot read {directory / 'config.json'}: {exc}", source=directory) from exc
    parts = ModelParts(
        source=SourceInfo(kind=kind, location=location, sha256=combined_hash(safe or pickled)),
        config=config,
        task_state=sentence_transformers_state(directory),
    )
    trust = options.trust_remote_code
    parts.tokenizer = _optional(
        directory,
        "tokenizer_config.json",
        "tokenizer.json",
        "vocab.txt",
        "tokenizer.model",
        loader="AutoTokenizer",
        trust_remote_code=trust,
    )
    parts.image_processor = _optional(
        directory, "preprocessor_config.json", loader="AutoImageProcessor", trust_remote_code=trust
    )
    task_cls = resolve_task(parts, task)
    parts.task_hint = task_cls.name
    auto_name = task_cls.hf_auto_class
    if auto_name is None:
        raise ModelLoadError(f"task {task_cls.name!r} cannot be loaded from a Hugging Face folder", source=directory)
    auto = getattr(transformers, auto_name)
    try:
        with quiet_transformers():
            parts.module = auto.from_pretrained(
                directory,
                use_safetensors=bool(safe),
                trust_remote_code=options.trust_remote_code,
            )
    except pickle.UnpicklingError as exc:  # allow_pickle=True, and torch's weights_only loader refused
        from .pickled import refusal_reason

        raise UnsafeModelError(
            f"the pickle-based weights in {directory} hold more than tensors ({refusal_reason(exc)}); "
            "aikit will not unpickle arbitrary objects. Convert the weights to safetensors",
            source=directory,
        ) from exc
    except ValueError as exc:
        raise ModelLoadError(
            f"cannot load {directory} for task {task_cls.name!r} with transformers.{auto_name}: {exc}", source=directory
        ) from exc
    except (OSError, SafetensorError) as exc:
        raise ModelLoadError(f"cannot read the weights in {directory}: {exc}", source=directory) from exc
    return parts


def _optional(directory: Path, *markers: str, loader: str, trust_remote_code: bool) -> Any:
    if not any((directory / m).is_file() for m in markers):
        return None
    import transformers

    try:
        return getattr(transformers, loader).from_pretrained(directory, trust_remote_code=trust_remote_code)
    except ImportError as exc:
        raise MissingDependencyError(
            str(exc).split("`")[1] if "`" in str(exc) else "a tokenizer library", feature=f"{loader} for {directory}"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot read the {loader[4:].lower()} files in {directory}: {exc}", source=directory
        ) from exc


class HuggingFaceFolderLoader(Loader):
    """A local folder with ``config.json`` and safetensors weights (``save_pretrained`` output)."""

    name = "huggingface"
    description = "local Hugging Face model folder"
    priority = 10

    @override
    def detects(self, source: object) -> bool:
        if not isinstance(source, (str, os.PathLike)):
            return False
        path = Path(source)
        return path.is_dir() and (path / "config.json").is_file() and not os.path.lexists(path / MANIFEST_NAME)

    @override
    def load(self, source: object, *, task: str | None, options: LoadOptions) -> ModelParts:
        path = Path(os.fspath(source)).resolve()  # type: ignore[call-overload]
        return load_hf_folder(path, task=task, options=options, kind=self.name, location=str(path))


class HubCacheLoader(Loader):
    """A hub id (``org/name``) whose files are already in the local Hugging Face cache.

    aikit never downloads at load time; the error for a missing id says how to provide the files.
    """

    name = "hub-cache"
    description = "Hugging Face hub id, from the local cache only"
    priority = 0

    @override
    def detects(self, source: object) -> bool:
        return isinstance(source, str) and not Path(source).exists() and bool(_HUB_ID.match(source))

    @override
    def load(self, source: object, *, task: str | None, options: LoadOptions) -> ModelParts:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        repo_id = str(source)
        try:
            folder = Path(snapshot_download(repo_id, local_files_only=True))
        except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError) as exc:
            raise ModelLoadError(
                f"model {repo_id!r} is not a local folder and is not in the Hugging Face cache "
                f"({os.environ.get('HF_HUB_CACHE') or os.environ.get('HF_HOME') or '~/.cache/huggingface'}). "
                "aikit does not download models at load time: fetch it where a network is available "
                f"(`hf download {repo_id}`) and copy the cache, or pass the path of a folder holding its files",
                source=repo_id,
            ) from exc
        return load_hf_folder(folder, task=task, options=options, kind=self.name, location=repo_id)
