"""``backend_options`` the CUDA backend reads, as one validated, frozen dataclass."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aikit.errors import ConfigError

__all__ = ["COMPILE_MODES", "CudaOptions"]

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3")


@dataclass(frozen=True, kw_only=True)
class CudaOptions:
    """Settings passed as ``Model.load(..., backend="cuda", backend_options={...})``.

    - ``compile``: ``False`` (default), ``True`` (= ``"reduce-overhead"``: torch.compile with CUDA
      graphs) or a torch.compile mode. Applies to the decoding step of text generation and to encoder
      forwards; the first calls compile (tens of seconds), later ones replay.
    - ``static_cache``: decode with a preallocated ``transformers.StaticCache`` (default True; needed
      for compiled decoding). Models that cannot use one fall back to the dynamic cache.
    - ``cache_bucket``: the static cache length is rounded up to a multiple of this, so that prompts of
      different lengths reuse one cache and one compiled graph.
    - ``attn_implementation``: transformers attention kernel (default ``"sdpa"``; ``"eager"``,
      ``"flash_attention_2"`` when the flash-attn package is installed).
    - ``pin_memory``: copy inputs and outputs through page-locked host memory (default True).
    - ``pad_to_multiple``: pad encoder batches' sequence length to a multiple of this and their batch
      size to a power of two, so that shapes repeat (compiled graphs are reused). ``None``: 64 when
      ``compile`` is on, else no padding; ``1`` turns padding off.
    """

    compile: bool | str = False
    static_cache: bool = True
    cache_bucket: int = 256
    attn_implementation: str | None = "sdpa"
    pin_memory: bool = True
    pad_to_multiple: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.compile, bool) and self.compile not in COMPILE_MODES:
            raise ConfigError(
                f"backend_options compile must be True, False or one of {', '.join(COMPILE_MODES)}; "
                f"got {self.compile!r}"
            )
        for name in ("static_cache", "pin_memory"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"backend_options {name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.cache_bucket, int) or isinstance(self.cache_bucket, bool) or self.cache_bucket < 1:
            raise ConfigError(f"backend_options cache_bucket must be a positive integer, got {self.cache_bucket!r}")
        if self.attn_implementation is not None and self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ConfigError(
                f"backend_options attn_implementation must be one of {', '.join(ATTN_IMPLEMENTATIONS)}, "
                f"got {self.attn_implementation!r}"
            )
        pad = self.pad_to_multiple
        if pad is not None and (not isinstance(pad, int) or isinstance(pad, bool) or pad < 1):
            raise ConfigError(f"backend_options pad_to_multiple must be a positive integer or None, got {pad!r}")

    @classmethod
    def from_mapping(cls, extra: Mapping[str, Any]) -> CudaOptions:
        """Build from ``backend_options``; an unknown key is a ``ConfigError`` listing the valid ones."""
        names = sorted(f.name for f in dataclasses.fields(cls))
        unknown = sorted(set(extra) - set(names))
        if unknown:
            raise ConfigError(
                f"backend 'cuda' got unknown backend_options {', '.join(unknown)}; valid: {', '.join(names)}"
            )
        return cls(**dict(extra))

    @property
    def compile_mode(self) -> str | None:
        """The torch.compile mode to use, or None when compilation is off."""
        if self.compile is True:
            return "reduce-overhead"
        return self.compile or None

    @property
    def padding_multiple(self) -> int:
        """The sequence-length multiple encoder batches are padded to (1: no padding)."""
        if self.pad_to_multiple is not None:
            return self.pad_to_multiple
        return 64 if self.compile_mode else 1
