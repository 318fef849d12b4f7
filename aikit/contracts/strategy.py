"""The compression contract: a frozen config dataclass plus a ``Strategy`` that applies it.

Configs are dispatched by type, never by parsing strings; the string shorthands used by the CLI
(``"prune-structured:ffn=0.3"``) are parsed once into config objects by ``parse_strategy``.
Only config types registered by installed plugins can be deserialised from a manifest.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from numpy.typing import NDArray

from aikit.errors import ConfigError

if TYPE_CHECKING:
    from aikit.contracts.backend import Backend
    from aikit.contracts.task import Task

__all__ = ["CompressionConfig", "CompressionContext", "Strategy"]


@dataclass(frozen=True, kw_only=True)
class CompressionConfig:
    """Base of every strategy's config. Subclasses are frozen, keyword-only dataclasses.

    ``strategy`` (a class attribute) is the registered shorthand, e.g. ``"int8-dynamic"``.
    Subclasses validate their fields in ``__post_init__`` and raise ``ConfigError``.
    """

    strategy: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form stored in manifests: ``{"strategy": name, **fields}``."""
        data: dict[str, Any] = {"strategy": self.strategy}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            data[f.name] = list(value) if isinstance(value, tuple) else value
        json.dumps(data)  # fail now, not at save time, if a field is not JSON-serialisable
        return data

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> CompressionConfig:
        """Build this config from manifest / CLI fields, converting lists back to tuples."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - set(names))
        if unknown:
            raise ConfigError(
                f"{cls.strategy}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names)) or 'none'}"
            )
        converted = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        try:
            return cls(**converted)
        except TypeError as exc:
            raise ConfigError(f"{cls.strategy}: {exc}") from exc


@dataclass(kw_only=True)
class CompressionContext:
    """What a strategy may use while compressing.

    ``calibration``: collated input batches (already tokenized) from the user's calibration data,
    empty when none was given. ``task``: the model's task. ``progress``: report ``(done, total)``.
    """

    task: Task
    calibration: Sequence[dict[str, NDArray[Any]]] = ()
    progress: Callable[[int, int], None] = field(default=lambda done, total: None)


class Strategy(ABC):
    """Applies one kind of ``CompressionConfig`` to a backend, returning a new backend.

    - ``name``: the shorthand (equal to ``config_class.strategy``).
    - ``backends``: the backend names it can run on; checked before any work starts.
    - ``needs_calibration``: ``compress`` refuses to run it without calibration data.
    - ``carries_to``: the other backends a model compressed by it may move to with ``Model.to``
      while keeping what it did (e.g. pruned weights export to ONNX as they are). A move to any
      backend outside ``backends | carries_to`` raises ``BackendError`` naming the strategy, so a
      conversion never silently drops (for example de-quantizes) a compression step. The default,
      empty, is the safe one for a new strategy.

    Optional, for the accuracy guard (``compress(max_quality_drop=...)``): a config field
    ``exclude: tuple[str, ...]`` (layers kept in full precision) and a method
    ``guard_layers(backend, config) -> list[str]`` naming the layers ``apply`` would compress in
    ``backend``. The guard ranks those by sensitivity and excludes the most sensitive ones.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[CompressionConfig]]
    backends: ClassVar[frozenset[str]] = frozenset()
    needs_calibration: ClassVar[bool] = False
    carries_to: ClassVar[frozenset[str]] = frozenset()
    description: ClassVar[str] = ""

    @abstractmethod
    def apply(self, backend: Backend, config: CompressionConfig, context: CompressionContext) -> Backend:
        """Return a new, compressed backend. Must not modify ``backend`` or its weights."""

    def restore(self, module: Any, config: CompressionConfig) -> Any:
        """Rebuild the structure ``apply`` produced on a freshly built fp32 ``module`` before weights load.

        Called when an artifact is loaded, once per recorded config, in order. Strategies that only
        change values (not shapes or module types) keep this default, which returns ``module``.
        """
        return module
