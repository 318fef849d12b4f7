"""Module ``__getattr__`` for config namespaces whose classes live in a plugin (``aikit.quant``,
``aikit.prune``): the plugin is imported on first attribute access, so ``import aikit`` stays torch-free."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from aikit.errors import MissingDependencyError


def plugin_configs(namespace: str, plugin_module: str, names: list[str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` serving ``names`` from ``plugin_module``."""

    def get_config_class(name: str) -> Any:
        if name in names:
            try:
                configs = importlib.import_module(plugin_module)
            except ImportError as exc:  # pragma: no cover - the plugins ship with aikit
                raise MissingDependencyError("aikit", feature=f"{namespace} (the {plugin_module} plugin)") from exc
            return getattr(configs, name)
        raise AttributeError(f"module {namespace!r} has no attribute {name!r}")

    return get_config_class
