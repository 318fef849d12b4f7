"""``Candidate``: one variant ``Model.optimize`` may try (a backend plus a chain of strategies).

Plugins propose candidates through the ``aikit_optimize_candidates`` hook; the core holds no list
of backend or strategy names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aikit.errors import ConfigError

if TYPE_CHECKING:
    from aikit.contracts.strategy import CompressionConfig

__all__ = ["Candidate"]


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """A backend, the options to open it with, and strategies applied in order on it.

    - ``backend``: a registered backend name (``"torch"``, ``"onnxruntime"``...).
    - ``strategies``: shorthands (``"int8-dynamic:per_token=false"``) or config objects; empty for
      the uncompressed model on that backend.
    - ``backend_options``: passed to ``Model.to(backend, backend_options=...)``.
    - ``guard``: when the chain's quality drop exceeds the budget, let the accuracy guard keep the
      most sensitive layers of its last strategy in full precision (costs one build per layer).
    - ``note``: why the proposer thinks it is worth trying (shown in the report).
    """

    backend: str
    strategies: tuple[str | CompressionConfig, ...] = ()
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    guard: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.backend, str) or not self.backend:
            raise ConfigError(f"Candidate.backend must be a backend name, got {self.backend!r}")
        if isinstance(self.strategies, (str, bytes)) or not isinstance(self.strategies, tuple):
            raise ConfigError(f"Candidate.strategies must be a tuple of strategies, got {self.strategies!r}")
        try:
            json.dumps(dict(self.backend_options), sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Candidate.backend_options must be plain JSON values: {exc}") from exc

    @property
    def label(self) -> str:
        """A readable, unique name: ``onnxruntime[opt=1] + ort-int8-dynamic:per_channel=false``."""
        options = ",".join(f"{k}={v}" for k, v in sorted(self.backend_options.items()))
        head = f"{self.backend}[{options}]" if options else self.backend
        steps = [_step_text(s) for s in self.strategies]
        return " + ".join([head, *steps]) + (" (guarded)" if self.guard else "")

    def key(self) -> str:
        """Identity for de-duplication: two proposals with the same key are one candidate."""
        return json.dumps(
            {
                "backend": self.backend,
                "options": dict(self.backend_options),
                "strategies": [_step_text(s) for s in self.strategies],
                "guard": self.guard,
            },
            sort_keys=True,
        )


def _step_text(step: str | CompressionConfig) -> str:
    if isinstance(step, str):
        return step
    fields = {k: v for k, v in step.to_dict().items() if k != "strategy"}
    defaults = type(step)().to_dict() if _has_defaults(step) else {}
    changed = {k: v for k, v in fields.items() if defaults.get(k, object()) != v}
    opts = ",".join(f"{k}={_value_text(v)}" for k, v in changed.items())
    return f"{step.strategy}:{opts}" if opts else step.strategy


def _has_defaults(step: CompressionConfig) -> bool:
    try:
        type(step)()
    except (TypeError, ConfigError):
        return False
    return True


def _value_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "|".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)
