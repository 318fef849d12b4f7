"""Where aikit keeps what it can reuse across processes, and how big that may grow: the one home of
the cache location and of its size bound.

``cache_dir()`` is ``$AIKIT_CACHE_DIR`` when set, else the platform's user cache folder for aikit
(``platformdirs``): ``$XDG_CACHE_HOME/aikit`` on Linux, ``~/.cache/aikit`` when that is unset,
``~/Library/Caches/aikit`` on macOS, ``%LOCALAPPDATA%\\aikit\\Cache`` on Windows. Plugins keep their
entries in a sub-folder of it (``cache_dir("onnx")``, ``cache_dir("gguf")``), one folder per entry.
Nothing is created here: the code that writes an entry creates its folder.

The entry folders of ``ENTRY_KINDS`` share one size bound (``cache_limit``: ``$AIKIT_CACHE_MAX_GB``,
default ``DEFAULT_LIMIT_GB``). Code that reuses an entry calls ``mark_used``; code that has just
written one calls ``prune(keep=that_folder)``, which removes the least recently used entries until
the total fits, never the one just written (so one entry larger than the bound still works).
Entries are removed by renaming them to a hidden temporary name first, so a reader looking an entry
up finds it whole or not at all; a process that already opened an entry's files keeps reading them
on POSIX systems, where an open file outlives its name.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aikit.errors import ConfigError

__all__ = [
    "DEFAULT_LIMIT_GB",
    "LIMIT_VARIABLE",
    "STALE_TMP_SECONDS",
    "ENTRY_KINDS",
    "CacheEntry",
    "cache_dir",
    "cache_entries",
    "cache_limit",
    "clear",
    "mark_used",
    "prune",
    "settle",
]

logger = logging.getLogger(__name__)

ENTRY_KINDS = ("onnx", "gguf")  # sub-folders holding one folder per entry
DEFAULT_LIMIT_GB = 20.0
LIMIT_VARIABLE = "AIKIT_CACHE_MAX_GB"
STALE_TMP_SECONDS = 24 * 3600  # a hidden build folder this old belongs to a process that died


def cache_dir(*parts: str) -> Path:
    """aikit's cache folder, or the path ``parts`` below it; read from the environment on each call."""
    override = os.environ.get("AIKIT_CACHE_DIR")
    if override:
        root = Path(override)
    else:
        from platformdirs import user_cache_path

        root = user_cache_path("aikit", appauthor=False)
    return root.joinpath(*parts)


def cache_limit() -> float:
    """The size bound in bytes: ``$AIKIT_CACHE_MAX_GB`` gigabytes (10^9 bytes; ``unlimited`` for none),
    else ``DEFAULT_LIMIT_GB``. Raises ``ConfigError`` for a value that is neither."""
    raw = os.environ.get(LIMIT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_LIMIT_GB * 1e9
    if raw.lower() in ("unlimited", "none", "inf"):
        return math.inf
    try:
        gb = float(raw)
    except ValueError:
        gb = -1.0
    if not gb >= 0 or math.isinf(gb):
        raise ConfigError(
            f"{LIMIT_VARIABLE}={raw!r} is not a size: give gigabytes as a number >= 0 (such as 20 or 2.5), "
            "or 'unlimited'"
        )
    return gb * 1e9


@dataclass(frozen=True)
class CacheEntry:
    """One entry folder: its kind (``ENTRY_KINDS``), bytes on disk and when it was last used (epoch s)."""

    path: Path
    kind: str
    size: int
    last_used: float


def _size(folder: Path) -> int:
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                total += Path(parent, name).lstat().st_size
            except OSError:  # removed meanwhile
                continue
    return total


def cache_entries() -> list[CacheEntry]:
    """Every complete-or-not entry folder under ``ENTRY_KINDS`` (hidden build folders excluded), least
    recently used first."""
    found = []
    for kind in ENTRY_KINDS:
        root = cache_dir(kind)
        try:
            children = list(root.iterdir())
        except OSError:  # no such folder yet
            continue
        for child in children:
            if child.name.startswith(".") or not child.is_dir() or child.is_symlink():
                continue
            try:
                used = child.stat().st_mtime
            except OSError:
                continue
            found.append(CacheEntry(child, kind, _size(child), used))
    return sorted(found, key=lambda e: e.last_used)


def mark_used(folder: Path) -> None:
    """Record that ``folder`` (an entry) was just reused: the least recently used entries go first."""
    with contextlib.suppress(OSError):  # a read-only cache still serves its entries
        os.utime(folder)


def settle(folder: Path) -> None:
    """Write ``folder``'s files (a new entry) to disk and drop them from the page cache.

    Why: pages written a moment ago sit in the page cache as large folios, and a later process that
    memory-maps the file (ONNX Runtime maps external weights) gets a whole folio mapped around every
    byte it touches, so a lookup of a few embedding rows keeps megabytes resident. Read back from disk,
    the pages come in small readahead units instead. Measured on SmolLM2's GGUF graph (Linux 6.18):
    a later load's peak RSS 239 MB with the entry freshly written, 221 MB once it had been read from
    disk. Advisory: where ``posix_fadvise`` is missing or refused, nothing happens."""
    if not hasattr(os, "posix_fadvise"):
        return
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                fd = os.open(Path(parent, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)  # DONTNEED drops clean pages only
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass
            finally:
                os.close(fd)


def _remove(folder: Path) -> bool:
    """Take ``folder`` out of the cache: renamed away first (atomic), then deleted."""
    doomed = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.removed.tmp")
    try:
        os.rename(folder, doomed)
    except OSError:  # removed by another process, or not ours to remove
        return False
    shutil.rmtree(doomed, ignore_errors=True)
    return True


def _remove_stale_builds(now: float) -> None:
    for kind in ENTRY_KINDS:
        try:
            children = list(cache_dir(kind).iterdir())
        except OSError:
            continue
        for child in children:
            if not (child.name.startswith(".") and child.is_dir()):
                continue
            try:
                old = now - child.stat().st_mtime > STALE_TMP_SECONDS
            except OSError:
                continue
            if old or child.name.endswith(".removed.tmp"):
                shutil.rmtree(child, ignore_errors=True)


def prune(*, keep: Path | None = None, limit: float | None = None) -> list[CacheEntry]:
    """Remove least recently used entries until the cache fits ``limit`` bytes (default ``cache_limit()``);
    never ``keep``. Also removes hidden build folders left by processes that died a day or more ago.
    Returns the entries removed (each logged at INFO)."""
    bound = cache_limit() if limit is None else limit
    _remove_stale_builds(time.time())
    if math.isinf(bound):
        return []
    entries = cache_entries()
    total = sum(e.size for e in entries)
    keep_resolved = keep.resolve() if keep is not None else None
    removed = []
    for entry in entries:
        if total <= bound:
            break
        if keep_resolved is not None and entry.path.resolve() == keep_resolved:
            continue
        if _remove(entry.path):
            total -= entry.size
            removed.append(entry)
            logger.info(
                "aikit cache: removed %s (%.2f GB, least recently used) to stay under %.1f GB (%s)",
                entry.path,
                entry.size / 1e9,
                bound / 1e9,
                LIMIT_VARIABLE,
            )
    return removed


def clear() -> list[CacheEntry]:
    """Remove every entry and the build folders of dead processes (a build in progress elsewhere is left
    to finish); returns the entries removed."""
    removed = [e for e in cache_entries() if _remove(e.path)]
    _remove_stale_builds(time.time())
    return removed
