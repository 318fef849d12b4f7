"""Refusing Python code shipped in a model folder unless the caller opted in (``trust_remote_code``).

transformers imports code named by an ``auto_map`` entry in a folder's config files. Depending on
the file and the model type it raises, *asks on stdin*, or silently ignores the entry. aikit does
not leave that to transformers: a folder holding an ``auto_map`` in any config file transformers
reads, or any top-level ``.py`` file, is refused up front with ``UnsafeModelError`` unless the
caller passed ``trust_remote_code=True``, whatever transformers would have done with it.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from aikit.errors import ModelLoadError, UnsafeModelError

__all__ = ["CODE_CONFIG_FILES", "check_remote_code"]

# Every config file in which transformers honours an ``auto_map`` (model, tokenizer, processors).
CODE_CONFIG_FILES = (
    "config.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "image_processor_config.json",
    "video_preprocessor_config.json",
    "feature_extractor_config.json",
)
_MAX_CONFIG_BYTES = 64 << 20  # tokenizer configs with large added-token tables reach a few MiB


def _read_config(path: Path) -> object:
    """A config file's JSON, or None when absent; links are followed (the hub cache uses them)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise ModelLoadError(f"{path} is not a regular file; refusing to read it", source=path.parent)
    if info.st_size > _MAX_CONFIG_BYTES:
        raise ModelLoadError(f"{path} is {info.st_size} bytes; refusing a config that large", source=path.parent)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelLoadError(f"cannot read {path}: {type(exc).__name__}: {exc}", source=path.parent) from exc


def _is_file_key(key: str) -> bool:
    return key.endswith(("_file", "_files")) or key in ("vocab", "merges")


def _check_file_references(directory: Path, name: str, config: dict[str, object]) -> None:
    """Refuse config values that make transformers open a file outside ``directory`` or load a
    non-tokenizer class as the tokenizer.

    transformers joins names such as ``fast_tokenizer_files`` / ``tokenizer_file`` / ``vocab_file``
    onto the folder with ``os.path.join``, so an absolute or ``../`` name reads a file outside it
    (and outside the artifact's hashes). ``tokenizer_class`` is looked up among transformers' exports
    and called: anything but a tokenizer class (``AutoModel``) would load model weights, pickles
    included, while reading the tokenizer.
    """
    for key, value in config.items():
        if not _is_file_key(key):
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and (os.path.isabs(item) or ".." in Path(item).parts or "\\" in item):
                raise UnsafeModelError(
                    f"{directory / name}: {key} names {item!r}, a file outside the model folder; refusing to load",
                    source=directory,
                )
    tokenizer_class = config.get("tokenizer_class")
    if tokenizer_class is not None and not _is_tokenizer_class(tokenizer_class):
        raise UnsafeModelError(
            f"{directory / name}: tokenizer_class {tokenizer_class!r} is not a tokenizer class; refusing to load",
            source=directory,
        )


# The generic fast tokenizer's names (transformers 5 calls it ``TokenizersBackend``): what the auto
# lookup resolves them to is the class transformers exports under the same name.
_GENERIC_FAST = frozenset({"TokenizersBackend", "PreTrainedTokenizerFast"})


def _is_tokenizer_class(name: object) -> bool:
    """Whether transformers resolves ``name`` to a tokenizer (unknown names fail in transformers itself)."""
    if not isinstance(name, str):
        return False
    import transformers

    if name in _GENERIC_FAST:  # transformers' own export; the auto module below would import torch for it
        generic = getattr(transformers, name, None)
        return isinstance(generic, type) and issubclass(generic, transformers.PreTrainedTokenizerBase)
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

    for candidate in (name, name.removesuffix("Fast")):
        found = tokenizer_class_from_name(candidate)
        if found is not None:
            return isinstance(found, type) and issubclass(found, transformers.PreTrainedTokenizerBase)
    exported = getattr(transformers, name, None)  # what transformers would fall back to
    return exported is None or (
        isinstance(exported, type) and issubclass(exported, transformers.PreTrainedTokenizerBase)
    )


def check_remote_code(directory: Path, *, trust_remote_code: bool) -> None:
    """Raise ``UnsafeModelError`` when ``directory`` ships Python code and ``trust_remote_code`` is off.

    Whatever ``trust_remote_code`` says, file names in those configs must stay inside the folder
    and ``tokenizer_class`` must name a tokenizer (``UnsafeModelError`` otherwise).
    Code means a non-empty ``auto_map`` in one of ``CODE_CONFIG_FILES`` or a top-level ``*.py``
    file. The message names each. With ``trust_remote_code=True`` nothing is checked. Raises
    ``ModelLoadError`` for a config file that is not a regular file, too large, or not JSON.
    """
    configs = {name: _read_config(directory / name) for name in CODE_CONFIG_FILES}
    for name, data in configs.items():  # checked with or without trust_remote_code: data, not code
        if isinstance(data, dict):
            _check_file_references(directory, name, data)
    if trust_remote_code:
        return
    reasons: list[str] = []
    for name, data in configs.items():
        if isinstance(data, dict) and data.get("auto_map"):
            reasons.append(f"auto_map in {name}")
    with os.scandir(directory) as entries:
        reasons += sorted(e.name for e in entries if e.name.endswith(".py"))
    if reasons:
        raise UnsafeModelError(
            f"{directory} needs custom Python code to load ({', '.join(reasons)}); aikit does not run code "
            "shipped with a model unless you pass trust_remote_code=True after reading that code",
            source=directory,
        )
