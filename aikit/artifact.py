"""Artifact folders: the ``aikit.json`` manifest, file hashes, and crash-safe writing.

Layout of an artifact::

    out/
      aikit.json            manifest: format version, task, backend, source, transformations,
                            compression report, sha256 of every other file, library versions
      model.safetensors     weights (or model.onnx [+ model.onnx.data] for ONNX Runtime)
      config.json, tokenizer.json, ...   whatever the backend and task need

Writing goes to a temporary sibling folder that is renamed into place only when complete, so a
reader never sees a half-written artifact: after a crash the destination holds either the
previous artifact or nothing.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .errors import ArtifactError, IntegrityError, ModelLoadError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "hash_file",
    "library_versions",
    "read_manifest",
    "verify_files",
    "write_artifact",
]

MANIFEST_NAME = "aikit.json"
FORMAT_VERSION = 1
logger = logging.getLogger("aikit.artifact")

_VERSIONED = ("aikit", "torch", "transformers", "onnxruntime", "numpy", "safetensors", "tokenizers")


def hash_file(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of Python and the installed libraries that affect outputs (without importing them)."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(root)


def _is_replaceable(directory: Path) -> bool:
    """We only ever replace an earlier artifact or an empty folder, never unrelated user files."""
    return (directory / MANIFEST_NAME).is_file() or not any(directory.iterdir())


def write_artifact(directory: str | os.PathLike[str], fill: Callable[[Path], Mapping[str, Any]]) -> Path:
    """Write an artifact atomically.

    ``fill(tmp)`` writes every payload file into the temporary folder ``tmp`` and returns the
    manifest fields; this function adds ``format_version``, ``files`` (sha256 of each file),
    ``versions`` and ``created``, writes ``aikit.json``, syncs to disk and renames into place.
    Any exception (or a killed process) leaves ``directory`` as it was before.
    """
    dest = Path(directory).resolve()
    if dest.exists() and not dest.is_dir():
        raise ArtifactError(f"cannot save to {dest}: it exists and is not a folder")
    if dest.is_dir() and not _is_replaceable(dest):
        raise ArtifactError(
            f"cannot save to {dest}: the folder is not empty and holds no {MANIFEST_NAME}; "
            "choose a new or empty folder (aikit only replaces its own artifacts)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        fields = dict(fill(tmp))
        files = {p.relative_to(tmp).as_posix(): hash_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {
            "format_version": FORMAT_VERSION,
            **fields,
            "files": files,
            "versions": library_versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        _fsync_tree(tmp)
        _swap_into_place(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _remove_stale_temporaries(dest: Path) -> None:
    # Leftovers of a process killed mid-save; they were never visible at ``dest``.
    for stale in dest.parent.glob(f".{dest.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in dest.parent.glob(f".{dest.name}.*.old"):
        if dest.exists():
            shutil.rmtree(stale, ignore_errors=True)
        else:  # killed between the two renames below: put the previous artifact back
            os.rename(stale, dest)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported.

    With it, ``dest`` names a complete artifact at every instant of a replacement; without it the
    two-rename fallback below leaves a moment where ``dest`` is absent (recovered on next save).
    """
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:  # glibc < 2.28, musl
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EXDEV):  # old kernel or filesystem
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap_into_place(tmp: Path, dest: Path) -> None:
    if not dest.exists():
        os.rename(tmp, dest)
        _fsync_dir(dest.parent)
        return
    if _exchange(tmp, dest):
        _fsync_dir(dest.parent)
        shutil.rmtree(tmp, ignore_errors=True)  # ``tmp`` now holds the previous artifact
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
    os.rmdir(old)
    os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    _fsync_dir(dest.parent)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(directory: Path) -> dict[str, Any]:
    """Parse and sanity-check ``directory/aikit.json`` (no hash checks: see ``verify_files``)."""
    path = directory / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(
            f"{directory} is not an aikit artifact: {MANIFEST_NAME} is missing", source=directory
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}", source=directory) from exc
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"{path} must hold a JSON object", source=directory)
    fmt = manifest.get("format_version")
    if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
        raise ModelLoadError(
            f"{path} has format_version {fmt!r}; this aikit reads up to {FORMAT_VERSION}: upgrade aikit",
            source=directory,
        )
    for key in ("task", "backend", "files"):
        if key not in manifest:
            raise ModelLoadError(f"{path} lacks the required field {key!r}", source=directory)
    files = manifest["files"]
    if not isinstance(files, dict):
        raise ModelLoadError(f"{path}: 'files' must map file names to sha256 digests", source=directory)
    root = directory.resolve()
    for name in files:
        target = (root / name).resolve()
        if not isinstance(name, str) or os.path.isabs(name) or not target.is_relative_to(root):
            raise IntegrityError(
                f"{path} lists {name!r}, which points outside the artifact folder; refusing to load",
                source=directory,
                file=str(name),
            )
    return manifest


def verify_files(directory: Path, manifest: Mapping[str, Any], *, verify: bool = True) -> None:
    """Check every listed file's sha256, and that no unlisted file sits in the folder.

    With ``verify=False`` nothing is checked and a warning is logged.
    """
    if not verify:
        logger.warning("loading %s WITHOUT verifying file hashes (verify=False)", directory)
        return
    files: Mapping[str, str] = manifest["files"]
    for name, digest in files.items():
        path = directory / name
        if not path.is_file():
            raise IntegrityError(
                f"artifact {directory}: file {name!r} listed in the manifest is missing", source=directory, file=name
            )
        actual = hash_file(path)
        if actual != digest:
            raise IntegrityError(
                f"artifact {directory}: file {name!r} was changed after saving "
                f"(sha256 {actual[:12]}..., manifest says {str(digest)[:12]}...)",
                source=directory,
                file=name,
            )
    extra = [
        p.relative_to(directory).as_posix()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME and p.relative_to(directory).as_posix() not in files
    ]
    if extra:
        raise IntegrityError(
            f"artifact {directory}: unexpected file(s) not in the manifest: {', '.join(extra)}",
            source=directory,
            file=extra[0],
        )
