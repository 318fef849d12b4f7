"""The ``aikit.json`` manifest as data: read without following links, bounded, digest-checked, validated.

A manifest is untrusted input. Reading one never opens anything but a regular file inside the
artifact, refuses files over ``MAX_MANIFEST_BYTES`` before parsing and JSON nested deeper than
``MAX_DEPTH`` or holding NUL characters, and validates every field against ``Manifest`` (pydantic,
strict: no type coercion, no unknown fields). The manifest names data only: file names (relative,
inside the folder), registered task / backend / strategy names and JSON settings. It never names
code to import: a plain-PyTorch class or a preprocess function is recorded by name for error
messages only, and must be passed to ``Model.load`` by the caller.

``aikit.json.sha256`` (format 2 and later) holds the manifest's sha256 in ``sha256sum`` format
and is checked before the manifest is parsed. It sits beside the manifest, so it catches
accidental or partial changes only; pin the digest (``Model.load(..., expected_sha256=...)``)
against someone who can rewrite both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aikit.errors import IntegrityError, ModelLoadError

__all__ = [
    "DIGEST_NAME",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MAX_DEPTH",
    "MAX_MANIFEST_BYTES",
    "check_file_name",
    "describe_mode",
    "digest_line",
    "listed_file",
    "open_regular",
    "read_manifest",
]

MANIFEST_NAME = "aikit.json"
DIGEST_NAME = "aikit.json.sha256"
# 2: aikit.json.sha256 beside the manifest; task_state["preprocess"] / a python module "class" are
# names only (format 1 artifacts load too: see ``read_manifest``).
FORMAT_VERSION = 2
MAX_MANIFEST_BYTES = 4 << 20  # real manifests are a few KiB; a compression report a few more
MAX_DEPTH = 32  # the deepest real field (compression_report) is about 5 levels
_MAX_DIGEST_BYTES = 256
_DIGEST_LINE = re.compile(rb"([0-9a-f]{64})  " + re.escape(MANIFEST_NAME.encode()) + rb"\n?")
_RESERVED = frozenset({MANIFEST_NAME, DIGEST_NAME})
logger = logging.getLogger("aikit.artifact")


def digest_line(manifest_bytes: bytes) -> str:
    """The content of ``aikit.json.sha256`` for a manifest (``sha256sum -c`` reads it)."""
    return f"{hashlib.sha256(manifest_bytes).hexdigest()}  {MANIFEST_NAME}\n"


def open_regular(path: Path, *, source: object, name: str) -> int:
    """An ``os.open`` descriptor for ``path`` if it is a regular file that is not a symbolic link.

    Never blocks: a FIFO is opened non-blocking and refused, so a named pipe cannot hang a load.
    Raises ``IntegrityError`` naming ``name`` otherwise, ``FileNotFoundError`` when it is missing.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:  # ELOOP: a symbolic link (O_NOFOLLOW); ENXIO: a socket
        raise IntegrityError(
            f"artifact {source}: {name!r} is not a regular file ({exc.strerror}); refusing to read it",
            source=source,
            file=name,
        ) from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise IntegrityError(
            f"artifact {source}: {name!r} is {describe_mode(mode)}, not a regular file; refusing to read it",
            source=source,
            file=name,
        )
    return fd


def describe_mode(mode: int) -> str:
    """Words for a file type (for error messages)."""
    for check, words in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if check(mode):
            return words
    return "a special file"


def _read_bounded(path: Path, *, limit: int, source: Path, name: str) -> bytes:
    fd = open_regular(path, source=source, name=name)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise ModelLoadError(
                f"artifact {source}: {name} is {size} bytes; refusing to read more than {limit}", source=source
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # grew after the size check
        raise ModelLoadError(f"artifact {source}: {name} is over {limit} bytes; refusing it", source=source)
    return data


def _check_shape(value: Any, path: Path) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH`` and NUL characters anywhere (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise ModelLoadError(f"{path} nests deeper than {MAX_DEPTH} levels; refusing it", source=path.parent)
            children = list(item.items()) if isinstance(item, dict) else [(None, v) for v in item]
            for key, child in children:
                if isinstance(key, str) and "\0" in key:
                    raise ModelLoadError(f"{path} has a NUL character in the key {key!r}", source=path.parent)
                stack.append((child, depth + 1))
        elif isinstance(item, str) and "\0" in item:
            raise ModelLoadError(f"{path} has a NUL character in the value {item!r:.80}", source=path.parent)


def check_file_name(name: str, *, directory: Path, manifest_path: Path) -> None:
    """A listed file name must be a plain relative POSIX path inside the folder (``IntegrityError``)."""
    parts = name.split("/")
    if name.startswith("/") or os.path.isabs(name) or ".." in parts:
        raise IntegrityError(
            f"{manifest_path} lists {name!r}, which points outside the artifact folder; refusing to load",
            source=directory,
            file=name,
        )
    if not name or len(name) > 1024 or "\\" in name or any(p in ("", ".") for p in parts):
        raise IntegrityError(f"{manifest_path} lists the malformed file name {name!r}", source=directory, file=name)
    if parts[-1] in _RESERVED:
        raise IntegrityError(
            f"{manifest_path} lists {name!r}: an artifact holds one manifest, at its top level",
            source=directory,
            file=name,
        )


def _check_digest(directory: Path, raw: bytes, expected_sha256: str | None, *, verify: bool) -> bool:
    """Check the pin and, with ``verify``, ``aikit.json.sha256``; False when that file is absent."""
    actual = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and actual != expected_sha256:
        raise IntegrityError(
            f"artifact {directory}: {MANIFEST_NAME} has sha256 {actual}, not the pinned {expected_sha256}",
            source=directory,
            file=MANIFEST_NAME,
        )
    if not verify:
        return True
    try:
        line = _read_bounded(directory / DIGEST_NAME, limit=_MAX_DIGEST_BYTES, source=directory, name=DIGEST_NAME)
    except FileNotFoundError:
        return False
    match = _DIGEST_LINE.fullmatch(line)
    if match is None:
        raise IntegrityError(f"artifact {directory}: {DIGEST_NAME} is malformed", source=directory, file=DIGEST_NAME)
    if match.group(1).decode() != actual:
        raise IntegrityError(
            f"artifact {directory}: {MANIFEST_NAME} was changed after saving (sha256 {actual[:12]}..., "
            f"{DIGEST_NAME} says {match.group(1).decode()[:12]}...)",
            source=directory,
            file=MANIFEST_NAME,
        )
    return True


def _require_digest(directory: Path, raw: bytes, fmt: int) -> None:
    """Format 2 artifacts always have a digest; older ones load with a warning (they predate it)."""
    if fmt >= 2:
        raise IntegrityError(
            f"artifact {directory}: {DIGEST_NAME}, the digest of its manifest, is missing",
            source=directory,
            file=DIGEST_NAME,
        )
    logger.warning(
        "%s was written by an older aikit (format %d): its %s is not covered by a digest; "
        "save it again to upgrade, or pin it with expected_sha256=%s",
        directory,
        fmt,
        MANIFEST_NAME,
        hashlib.sha256(raw).hexdigest(),
    )


def read_manifest(directory: Path, *, verify: bool = True, expected_sha256: str | None = None) -> dict[str, Any]:
    """Read, check and validate ``directory/aikit.json``; return it as plain JSON data.

    In order, before anything else in the folder is read: the manifest must be a regular file (not
    a link, FIFO, ...) of at most ``MAX_MANIFEST_BYTES``; before it is parsed, its sha256 must
    equal ``expected_sha256`` when given and, with ``verify``, the digest in ``aikit.json.sha256``
    (required from format 2; a format 1 artifact without one loads with a logged warning); it
    must parse as UTF-8 JSON no deeper than ``MAX_DEPTH`` without NUL characters, have a
    ``format_version`` this aikit reads, match ``Manifest``, and list only file names inside the
    folder. File hashes are checked by
    ``aikit.model.artifact.verify_files``.

    Raises ``ModelLoadError`` (unreadable, malformed, too big, too new) or ``IntegrityError``
    (digest mismatch, a name outside the folder), naming the file.
    """
    path = directory / MANIFEST_NAME
    try:
        raw = _read_bounded(path, limit=MAX_MANIFEST_BYTES, source=directory, name=MANIFEST_NAME)
    except FileNotFoundError as exc:
        raise ModelLoadError(
            f"{directory} is not an aikit artifact: {MANIFEST_NAME} is missing", source=directory
        ) from exc
    except (IntegrityError, ModelLoadError):
        raise
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}", source=directory) from exc
    has_digest = _check_digest(directory, raw, expected_sha256, verify=verify)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        reason = "it nests too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ModelLoadError(f"cannot read {path}: {reason}", source=directory) from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} must hold a JSON object", source=directory)
    fmt = data.get("format_version")
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt > FORMAT_VERSION:
        raise ModelLoadError(
            f"{path} has format_version {fmt!r:.40}; this aikit reads up to {FORMAT_VERSION}: upgrade aikit",
            source=directory,
        )
    if not has_digest:
        _require_digest(directory, raw, fmt)
    _check_shape(data, path)
    files = data.get("files")
    if isinstance(files, dict):
        for name in files:
            check_file_name(name, directory=directory, manifest_path=path)
    # The schema is built on first use: pydantic's schema for it costs about 15 MB of memory, which a
    # process that never reads an artifact (a GGUF file run by ONNX Runtime) should not pay.
    from pydantic import ValidationError

    from aikit.model._manifest_schema import Manifest

    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'manifest'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise ModelLoadError(f"{path} is not a valid aikit manifest: {problems}", source=directory) from exc
    out: dict[str, Any] = manifest.model_dump()
    return out


def listed_file(directory: Path, manifest: Mapping[str, Any], name: object, *, what: str) -> Path:
    """The path of ``name`` if the manifest lists (and so hashes) it; ``IntegrityError`` otherwise.

    Backends call this for every file name they read from their ``backend_state``, so a manifest
    cannot point them at an unhashed file or anything outside the artifact folder.
    """
    files = manifest.get("files") or {}
    if not isinstance(name, str) or name not in files:
        raise IntegrityError(
            f"artifact {directory}: its manifest names {name!r:.200} as {what}, which is not one of its "
            "listed (hashed) files; refusing to load",
            source=directory,
            file=name if isinstance(name, str) else None,
        )
    return directory / name


def __getattr__(name: str) -> Any:
    """``Manifest`` and ``SourceEntry`` (the schema) are still reachable here, built on first access."""
    if name in ("Manifest", "SourceEntry"):
        from aikit.model import _manifest_schema

        return getattr(_manifest_schema, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
