"""The plugin host: discovers plugins through entry points, registers what they add, and calls their
hooks through pluggy (``host``); ``_core`` holds the core's own innermost ``aikit_predict``.

The host's public names are re-exported here (``aikit.plugins.get_backend`` ...).
"""

from aikit.plugins.host import *  # noqa: F403  (the public surface is host's __all__, listed once)
from aikit.plugins.host import __all__ as __all__
