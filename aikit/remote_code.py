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

from .errors import ModelLoadError, UnsafeModelError

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


def check_remote_code(directory: Path, *, trust_remote_code: bool) -> None:
    """Raise ``UnsafeModelError`` when ``directory`` ships Python code and ``trust_remote_code`` is off.

    Code means a non-empty ``auto_map`` in one of ``CODE_CONFIG_FILES`` or a top-level ``*.py``
    file. The message names each. With ``trust_remote_code=True`` nothing is checked. Raises
    ``ModelLoadError`` for a config file that is not a regular file, too large, or not JSON.
    """
    if trust_remote_code:
        return
    reasons: list[str] = []
    for name in CODE_CONFIG_FILES:
        data = _read_config(directory / name)
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
