"""``Model`` and what it is made of on disk: loading, saving, artifacts and their manifests.

``Model`` is the facade users hold. Its ``compress``, ``benchmark``, ``evaluate``, ``explain`` and
``optimize`` methods are thin: each hands over to ``aikit.compress``, ``aikit.measure`` or
``aikit.optimize``, the layers above this one (the only imports allowed to point upward, listed in
``pyproject.toml``'s import contract).
"""

from aikit.model.model import Model

__all__ = ["Model"]
