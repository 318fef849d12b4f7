"""The explainer plugin contract (``Explainer``) and the registry of the installed methods."""

from __future__ import annotations

import threading
import weakref
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from aikit.errors import ConfigError, RegistrationError, UnknownNameError
from aikit.measure.explain._types import ExplainOptions

if TYPE_CHECKING:
    from aikit.contracts.task import Example
    from aikit.model.model import Model
    from aikit.plugins.host import PluginHost


# ---------------------------------------------------------------------- the plugin contract
class Explainer(ABC):
    """One attribution method. Register subclasses with the ``aikit_register_explainers`` hook.

    ``attribute`` receives one preprocessed example and the target class index and returns the
    raw attributions: one per token position (text, ``input_ids`` length) or a ``(C, H, W)`` /
    ``(H, W)`` array (images; channels are summed). ``unsupported_reason`` says why a model cannot
    be explained by this method (for example no torch module to take gradients of), or None.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def unsupported_reason(self, model: Model) -> str | None:
        return None

    @abstractmethod
    def attribute(
        self, model: Model, example: Example, target: int, options: ExplainOptions
    ) -> NDArray[np.floating[Any]]:
        """Attributions of ``target``'s probability for ``example`` (shape as described above)."""

    def attribute_pair(
        self, model: Model, first: Example, second: Example, options: ExplainOptions
    ) -> NDArray[np.floating[Any]]:
        """A ``(tokens of first, tokens of second)`` matrix: how each token pair drives the two texts'
        cosine similarity under an embedding model. Methods that do not explain pairs keep this default,
        which raises ``ConfigError``."""
        raise ConfigError(f"explainer {self.name!r} does not explain text pairs; use method='occlusion'")


_registries: weakref.WeakKeyDictionary[PluginHost, tuple[frozenset[str], dict[str, type[Explainer]]]] = (
    weakref.WeakKeyDictionary()
)
_registry_lock = threading.Lock()


def registered_explainers() -> dict[str, type[Explainer]]:
    """Every explainer registered by the loaded plugins, by name (collected once per plugin host).

    Each plugin's ``aikit_register_explainers`` runs through pluggy's call loop
    (``PluginHost.call_plugin``), and what it registered is listed under ``explainers`` in its
    ``PluginInfo.registered`` (``aikit plugins``). Raises ``RegistrationError`` for an object that is
    not an ``Explainer`` or a duplicate name.
    """
    from aikit.plugins.host import get_host

    host = get_host()
    plugins = frozenset(host.plugins)  # a plugin added later (aikit_host.add_plugin) is seen too
    with _registry_lock:
        cached = _registries.get(host)
        if cached is not None and cached[0] == plugins:
            return dict(cached[1])
        table: dict[str, type[Explainer]] = {}
        owners: dict[str, str] = {}
        for plugin in [n for n in host.plugins if host.implements(n, "aikit_register_explainers")]:

            def register(cls: type[Explainer], plugin: str = plugin) -> None:
                if not (isinstance(cls, type) and issubclass(cls, Explainer)):
                    raise RegistrationError(
                        f"plugin {plugin!r} registered {cls!r}, which is not a subclass of aikit.Explainer",
                        plugin=plugin,
                    )
                name = getattr(cls, "name", None)
                if not isinstance(name, str) or not name:
                    raise RegistrationError(f"{cls.__name__} has no 'name' class attribute", plugin=plugin)
                if name in table:
                    raise RegistrationError(
                        f"plugin {plugin!r} registered explainer {name!r}, which plugin {owners[name]!r} already "
                        "registered",
                        plugin=plugin,
                    )
                table[name], owners[name] = cls, plugin

            host.call_plugin("aikit_register_explainers", plugin, register=register)
        for name, info in host.plugins.items():
            mine = [explainer for explainer, owner in owners.items() if owner == name]
            if mine:
                info.registered["explainers"] = mine
            else:
                info.registered.pop("explainers", None)
        _registries[host] = (plugins, table)
        return dict(table)


def get_explainer(name: str) -> type[Explainer]:
    """The explainer registered as ``name``; ``UnknownNameError`` lists the choices."""
    table = registered_explainers()
    if name not in table:
        raise UnknownNameError("explainer", name, table, "install aikit's explain extra: pip install 'aikit[explain]'")
    return table[name]
