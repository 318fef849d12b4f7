"""The on-disk cache of exported and optimised ONNX models: ``$AIKIT_CACHE_DIR/onnx/<key>/``.

A key hashes everything that decides the bytes of an export: the weights (a hash of the torch
state, so a model compressed on torch gets its own entry), the task, the export settings and
the versions of the libraries that produce the graph (``aikit.model.artifact.library_versions``).
Entries are written into a temporary sibling folder and renamed into place, so a reader sees
either a complete entry or none. The cache's size bound (``aikit.cache.prune``) applies after every
write; a reused entry is marked used, so the least recently used ones go first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aikit.cache import cache_dir, cache_limit, mark_used, prune, settle
from aikit.model.artifact import library_versions

__all__ = ["cache_root", "cached_entry", "entry_key", "module_digest"]

COMPLETE = "entry.json"  # written last: an entry without it is ignored and rebuilt


def cache_root() -> Path:
    """The ``onnx`` folder of aikit's cache (``aikit.cache.cache_dir``: ``$AIKIT_CACHE_DIR``, else the
    platform's user cache, such as ``$XDG_CACHE_HOME/aikit``)."""
    return cache_dir("onnx")


def module_digest(module: Any) -> str:
    """sha256 over a torch module's class, parameter and buffer names, dtypes, shapes and bytes."""
    import torch

    h = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    config = getattr(module, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        h.update(config.to_json_string(use_diff=False).encode())
    state = module.state_dict(keep_vars=False)
    for name in sorted(state):
        value = state[name]
        h.update(name.encode())
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:  # packed params of quantized modules and the like
            h.update(repr(value).encode())
    return h.hexdigest()


def entry_key(*, weights: str, task: str, settings: Mapping[str, Any]) -> str:
    """The folder name of a cache entry (64 hex digits)."""
    versions = {k: v for k, v in library_versions().items() if k != "aikit"}
    for extra in ("onnx", "onnxruntime-genai", "onnxscript"):
        try:
            from importlib.metadata import version

            versions[extra] = version(extra)
        except Exception:  # not installed: not part of the key
            continue
    blob = json.dumps(
        {"weights": weights, "task": task, "settings": dict(settings), "versions": versions}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_entry(
    key: str, build: Callable[[Path], Mapping[str, Any]], *, use_cache: bool = True
) -> tuple[Path, dict[str, Any]]:
    """The folder of entry ``key`` and its recorded facts, building it with ``build(tmp)`` when absent.

    ``build`` writes its files into ``tmp`` and returns JSON-serialisable facts (file names,
    validation figures) stored in ``entry.json``. With ``use_cache=False`` the entry is rebuilt
    in a fresh temporary folder that is not shared.
    """
    root = cache_root()
    folder = root / key
    marker = folder / COMPLETE
    if use_cache and marker.is_file():
        try:
            facts = dict(json.loads(marker.read_text(encoding="utf-8")))
            mark_used(folder)
            return folder, facts
        except (OSError, ValueError):  # damaged entry: rebuild it
            shutil.rmtree(folder, ignore_errors=True)
    limit = cache_limit()  # a bad AIKIT_CACHE_MAX_GB fails here, before a long build
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=root))
    try:
        facts = dict(build(tmp))
        (tmp / COMPLETE).write_text(json.dumps(facts, indent=2), encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not use_cache:
        return tmp, facts
    if folder.exists():  # another process finished first, or a damaged entry: keep one complete copy
        shutil.rmtree(folder, ignore_errors=True)
    settle(tmp)  # on disk and out of the page cache: later processes map only what they touch
    try:
        os.rename(tmp, folder)
    except OSError:  # lost a race to a concurrent writer: theirs is complete too
        shutil.rmtree(tmp, ignore_errors=True)
    prune(keep=folder, limit=limit)
    return folder, facts
