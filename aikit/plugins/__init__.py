"""The plugin host: discovers plugins through entry points, registers what they add, and calls their
hooks through pluggy (``host``); ``_core`` holds the core's own innermost ``aikit_predict``.

The public functions are re-exported here (``aikit.plugins.get_backend`` ...).
"""

from aikit.plugins.host import (
    PluginHost,
    PluginInfo,
    get_backend,
    get_host,
    get_loader,
    get_metric,
    get_strategy,
    get_task,
    reset_host,
    resolve_task,
    strategies_for,
)

__all__ = [
    "PluginHost",
    "PluginInfo",
    "get_backend",
    "get_host",
    "get_loader",
    "get_metric",
    "get_strategy",
    "get_task",
    "reset_host",
    "resolve_task",
    "strategies_for",
]
