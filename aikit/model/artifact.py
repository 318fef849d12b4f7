"""Artifact folders: the ``aikit.json`` manifest, file hashes, and crash-safe writing.

Layout of an artifact::

    out/
      aikit.json            manifest: format version, task, backend, source, transformations,
                            compression report, sha256 of every other file, library versions
      aikit.json.sha256     the manifest's own sha256 (``sha256sum`` format)
      model.safetensors     weights (or model.onnx [+ model.onnx.data] for ONNX Runtime)
      config.json, tokenizer.json, ...   whatever the backend and task need

Writing goes to a temporary sibling folder that is renamed into place only when complete, so a
reader never sees a half-written artifact: after a crash the destination holds either the
previous artifact or nothing. Temporary siblings are named ``.NAME.aikit-HEX.tmp`` (``.old``
for a parked previous artifact), HEX being random hex digits, so a save to ``m`` recognises
exactly its own leftovers and never touches those of a sibling such as ``m.int8``.

Reading (``read_manifest``, ``verify_files``) walks the folder without following links and
refuses symbolic links, special files (FIFOs, sockets, devices), nested manifests and, when
verifying, any entry the manifest does not list.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import logging
import os
import platform
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from aikit.errors import ArtifactError, IntegrityError
from aikit.model.manifest import (
    DIGEST_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    describe_mode,
    digest_line,
    listed_file,
    open_regular,
    read_manifest,
)

__all__ = [
    "DIGEST_NAME",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "hash_file",
    "library_versions",
    "listed_file",
    "read_manifest",
    "verify_files",
    "write_artifact",
]

logger = logging.getLogger("aikit.artifact")

_VERSIONED = ("aikit", "torch", "transformers", "onnxruntime", "numpy", "safetensors", "tokenizers")


def hash_file(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a regular file (links followed), read in 1 MiB chunks.

    The file is opened non-blocking and checked with ``fstat`` first, so a FIFO or device raises
    ``OSError`` instead of hanging or reading forever.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    return _hash_fd(fd, path, chunk)


def _hash_fd(fd: int, path: Path, chunk: int = 1 << 20) -> str:
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"{describe_mode(mode)}, not a regular file", str(path))
        h = hashlib.sha256()
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
    tmp = _make_sibling(dest, "tmp")
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
        raw = (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode("utf-8")
        (tmp / MANIFEST_NAME).write_bytes(raw)
        (tmp / DIGEST_NAME).write_text(digest_line(raw), encoding="utf-8")
        _fsync_tree(tmp)
        _swap_into_place(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


_SIBLING_TAG = ".aikit-"
_TOKEN_HEX = 16  # random hex digits: they can never contain the "." the name is parsed on


def _sibling_name(dest: Path, kind: str, token: str) -> str:
    return f".{dest.name}{_SIBLING_TAG}{token}.{kind}"


def _sibling_owner(name: str) -> tuple[str, str] | None:
    """``(target name, "tmp" | "old")`` when ``name`` is a temporary sibling written by a save, else None."""
    stem, dot, kind = name.rpartition(".")
    if not (name.startswith(".") and dot and kind in ("tmp", "old")):
        return None
    target, tag, token = stem[1:].rpartition(_SIBLING_TAG)
    if not (tag and target and len(token) == _TOKEN_HEX and all(c in "0123456789abcdef" for c in token)):
        return None
    return target, kind


def _make_sibling(dest: Path, kind: str) -> Path:
    while True:
        path = dest.parent / _sibling_name(dest, kind, secrets.token_hex(_TOKEN_HEX // 2))
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # 64 random bits: practically never
            continue
        return path


def _remove_stale_temporaries(dest: Path) -> None:
    # Leftovers of a process killed mid-save; they were never visible at ``dest``. Names are matched
    # exactly (see ``_sibling_owner``): ``m``'s clean-up must not touch ``m.int8``'s live save.
    with os.scandir(dest.parent) as entries:
        stale = sorted(
            (entry.name, owner[1])
            for entry in entries
            if (owner := _sibling_owner(entry.name)) is not None
            and owner[0] == dest.name
            and entry.is_dir(follow_symlinks=False)
        )
    for name, kind in stale:
        path = dest.parent / name
        if kind == "old" and not dest.exists():  # killed between the two renames below: put it back
            os.rename(path, dest)
        else:
            shutil.rmtree(path, ignore_errors=True)


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
    old = _make_sibling(dest, "old")
    os.rmdir(old)
    os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    _fsync_dir(dest.parent)
    shutil.rmtree(old, ignore_errors=True)


def verify_files(directory: Path, manifest: Mapping[str, Any], *, verify: bool = True) -> None:
    """Walk ``directory`` without following links; with ``verify``, check every listed file's sha256.

    Always refused, ``verify`` or not (``IntegrityError`` naming the entry): a symbolic link
    anywhere, a special file (FIFO, socket, device; never opened), a manifest below the top level.
    With ``verify``, also refused: a listed file that is missing or whose sha256 differs, and any
    file or folder the manifest does not list. With ``verify=False`` those checks are skipped and a
    warning is logged. ``manifest`` must come from ``read_manifest`` (names already checked).
    """
    files: Mapping[str, str] = manifest["files"]
    unlisted = _walk(directory, files)
    if not verify:
        logger.warning("loading %s WITHOUT verifying file hashes (verify=False)", directory)
        return
    for name, digest in files.items():
        try:
            fd = open_regular(directory / name, source=directory, name=name)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise IntegrityError(
                f"artifact {directory}: file {name!r} listed in the manifest is missing", source=directory, file=name
            ) from exc
        actual = _hash_fd(fd, directory / name)
        if actual != digest:
            raise IntegrityError(
                f"artifact {directory}: file {name!r} was changed after saving "
                f"(sha256 {actual[:12]}..., manifest says {str(digest)[:12]}...)",
                source=directory,
                file=name,
            )
    if unlisted:
        raise IntegrityError(
            f"artifact {directory}: unexpected file(s) not in the manifest: {', '.join(unlisted)}",
            source=directory,
            file=unlisted[0],
        )


def _walk(directory: Path, files: Mapping[str, str]) -> list[str]:
    """Entries under ``directory`` that the manifest does not list; raises for links and special files."""
    folders = {"/".join(name.split("/")[:i]) for name in files for i in range(1, name.count("/") + 1)}
    unlisted: list[str] = []
    pending = [("", directory)]
    while pending:  # iterative: a deeply nested folder cannot exhaust the stack
        prefix, folder = pending.pop()
        with os.scandir(folder) as entries:
            found = sorted(entries, key=lambda e: e.name)
        for entry in found:
            name = prefix + entry.name
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                if name not in folders:
                    unlisted.append(name + "/")
                pending.append((name + "/", Path(entry.path)))  # links and FIFOs inside are refused too
            elif not stat.S_ISREG(mode):
                raise IntegrityError(
                    f"artifact {directory}: {name!r} is {describe_mode(mode)}; an artifact holds only regular "
                    "files and folders (refused even with verify=False)",
                    source=directory,
                    file=name,
                )
            elif entry.name in (MANIFEST_NAME, DIGEST_NAME):
                if prefix:
                    raise IntegrityError(
                        f"artifact {directory}: {name!r} is a second manifest inside the artifact; refusing to load",
                        source=directory,
                        file=name,
                    )
            elif name not in files:
                unlisted.append(name)
    return sorted(unlisted)
