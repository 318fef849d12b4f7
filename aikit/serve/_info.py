"""What ``GET /info`` shows, and the rule that keeps local paths out of it.

``/info`` shows local filesystem paths (the model's location, cache folders, files named in a
manifest) only to a request that presented the server's bearer token. Without a token
configured, no request is authenticated, so nobody sees them: a server started without a token
may still be reachable from other machines (``--host 0.0.0.0``), and a path names users, mount
points and folder layout, which helps an attacker and no API client. The operator who needs the
path has it already (it is on the command line). ``sha256`` of the weights stays visible, so a
client can still tell which model answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["HIDDEN", "hide_paths"]

HIDDEN = "<hidden>"

# Keys whose string values name places on disk, whatever their form (relative, hub-style, absolute).
_PATH_KEYS = frozenset({"location", "path", "dir", "directory", "cache_dir", "file", "filename", "root"})
_PATH_SUFFIXES = ("_path", "_dir", "_file", "_folder")
# A path inside any other string: absolute POSIX, home-relative, file URL, Windows drive or UNC.
_EMBEDDED_PATH = re.compile(r"""(?:(?<=^)|(?<=[\s'"(=,:]))(?:file:/+|~[/\\]|[A-Za-z]:[/\\]|\\\\|/)[^\s'",;)]+""")


def hide_paths(value: Any) -> Any:
    """A copy of ``value`` (JSON-like) with local paths replaced by ``HIDDEN``.

    Replaced: every string under a path-like key (``location``, ``path``, ``cache_dir``, ``*_dir``,
    ``*_path``, ...), and inside any other string each absolute path, ``~/`` path, ``file:`` URL,
    drive or UNC path. Keys, numbers and other strings are kept, so the shape stays the same.
    """
    if isinstance(value, Mapping):
        return {k: HIDDEN if _is_path_key(k) and isinstance(v, str) else hide_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [hide_paths(v) for v in value]
    if isinstance(value, str):
        return _EMBEDDED_PATH.sub(HIDDEN, value)
    return value


def _is_path_key(key: object) -> bool:
    return isinstance(key, str) and (key.lower() in _PATH_KEYS or key.lower().endswith(_PATH_SUFFIXES))
