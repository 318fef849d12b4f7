"""Helpers for testing aikit plugins: a fresh plugin registry, a mock backend, tiny models.

Use them from pytest with ``pytest_plugins = ["aikit.testing.fixtures"]`` (fixtures
``aikit_host``, ``tiny_model_dir``) or directly::

    with fresh_host(MyPlugin()) as host:
        assert "my-backend" in host.backends
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aikit.plugins.host import PluginHost, reset_host
from aikit.testing.doubles import MockBackend
from aikit.testing.tiny import TINY_KINDS, TINY_WORDS, save_tiny_model, tiny_tokenizer

__all__ = ["TINY_KINDS", "TINY_WORDS", "MockBackend", "fresh_host", "save_tiny_model", "tiny_tokenizer"]


@contextmanager
def fresh_host(*plugins: object, autoload: bool = True, strict: bool = False) -> Iterator[PluginHost]:
    """Install a new plugin host for the duration of the block, then restore the previous one.

    ``autoload`` loads the installed entry-point plugins (aikit's built-ins included); each of
    ``plugins`` (modules or objects with ``@hookimpl`` functions) is added on top, unless an
    installed entry point already registered that very object (a plugin testing itself after
    ``pip install``).
    """
    host = PluginHost(autoload=autoload, strict=strict)
    previous = reset_host(host)
    try:
        host.ensure_loaded()
        for i, plugin in enumerate(plugins):
            if not host.pm.is_registered(plugin):
                host.add_plugin(plugin, name=getattr(plugin, "__name__", f"test-plugin-{i}"))
        yield host
    finally:
        reset_host(previous)
