"""Implements a hook whose name is misspelled (``aikit_register_backend``, missing the "s")."""

from typing import Any

from aikit import hookimpl


@hookimpl
def aikit_register_backend(register: Any) -> None:
    raise AssertionError("a misspelled hook must never be called")
