"""Typed option objects: frozen, keyword-only dataclasses validated in ``__post_init__``."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aikit.errors import ConfigError

__all__ = ["SPECULATIVE", "BackendOptions", "GenerationOptions", "LoadOptions", "options_from_kwargs"]

_DTYPES = ("float32", "float16", "bfloat16")

_DEVICE = re.compile(r"[a-z][a-z0-9_]*(:[0-9]+)?")  # which kinds exist is for the backends to say


@dataclass(frozen=True, kw_only=True)
class BackendOptions:
    """How a backend should run a model.

    ``device``: a device kind, optionally with an index (``"cpu"``, ``"cuda"``, ``"cuda:N"``); backends
    declare the kinds they run on (``Backend.devices``), so a plugin's own kind works the same way.
    None lets the backend choose.
    ``threads``: intra-op threads; None means every core of this machine.
    ``dtype``: compute dtype; None keeps the model's own (float32 for most checkpoints).
    ``extra``: backend-specific settings (for example ONNX Runtime providers); each backend
    documents and validates the keys it reads.
    """

    device: str | None = None
    threads: int | None = None
    dtype: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer, got {self.threads!r}")
        if self.dtype is not None and self.dtype not in _DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        if self.device is not None and (not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device)):
            raise ConfigError(
                f"device must be a device kind with an optional index, such as 'cpu', 'cuda' or 'cuda:1'; "
                f"got {self.device!r}"
            )


@dataclass(frozen=True, kw_only=True)
class LoadOptions:
    """Safety and integrity switches for ``Model.load``.

    ``allow_pickle``: load pickle-based weights (.bin/.pt/.pth/.ckpt), and then only with
    ``torch.load(weights_only=True)``. Off by default: pickle can run arbitrary code.
    ``trust_remote_code``: let transformers import Python code shipped with the model. Off by default.
    ``verify``: check the sha256 of an artifact's manifest and of every file it lists. Turning it
    off is logged; links, special files and paths outside the folder are refused either way.
    ``expected_sha256``: the pinned sha256 of an artifact's ``aikit.json`` (lowercase hex); the
    manifest lists every other file's sha256, so this pins the whole artifact. Needs ``verify``.
    """

    allow_pickle: bool = False
    trust_remote_code: bool = False
    verify: bool = True
    expected_sha256: str | None = None

    def __post_init__(self) -> None:
        for name in ("allow_pickle", "trust_remote_code", "verify"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        pin = self.expected_sha256
        if pin is not None:
            if not (isinstance(pin, str) and len(pin) == 64 and all(c in "0123456789abcdef" for c in pin)):
                raise ConfigError(f"expected_sha256 must be 64 lowercase hex digits, got {pin!r}")
            if not self.verify:
                raise ConfigError(
                    "expected_sha256 pins an artifact through the file hashes that verify=False skips; drop one of them"
                )


@dataclass(frozen=True, kw_only=True)
class GenerationOptions:
    """Decoding settings for text generation. Greedy unless ``do_sample`` is true.

    ``chat_template``: wrap a plain-string prompt as a user message in the model's chat template;
    None means "when the tokenizer has one". Message lists always use the template.
    ``stop``: strings that end generation (excluded from the returned text).
    ``speculative``: ``"prompt-lookup"`` proposes up to ``draft_tokens`` tokens per step by finding
    the latest n-gram (3, then 2 tokens) that ends the text so far earlier in the prompt or the
    generated text, and checks them all in one model call; the accepted prefix is kept (a backend
    may draft less often when its drafts keep failing). Greedy only
    (the model's own choices decide every token, so the text is the same as without it), and with
    ``do_sample`` or ``repetition_penalty`` it raises ``ConfigError``. Backends or graphs without
    it decode one token per step, with the same result; so do graphs where checking several
    positions in one call could change the text (kernels that quantize activations per call, such
    as ONNX Runtime's at ``accuracy_level=4``), with a warning.
    """

    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    chat_template: bool | None = None
    speculative: str | None = None
    draft_tokens: int = 8

    def __post_init__(self) -> None:
        _check_types(self, _GENERATION_TYPES)
        if self.speculative is not None:
            if self.speculative not in SPECULATIVE:
                raise ConfigError(
                    f"speculative must be None or one of {', '.join(map(repr, SPECULATIVE))}, got {self.speculative!r}"
                )
            if self.do_sample or self.repetition_penalty not in (None, 1.0):
                raise ConfigError(
                    f"speculative={self.speculative!r} is exact only for plain greedy decoding: drop do_sample / "
                    "repetition_penalty, or drop speculative"
                )
        if not 1 <= self.draft_tokens <= 64:
            raise ConfigError(f"draft_tokens must be in [1, 64], got {self.draft_tokens!r}")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature!r}")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {self.top_k!r}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.repetition_penalty is not None and not self.repetition_penalty > 0:
            raise ConfigError(f"repetition_penalty must be > 0, got {self.repetition_penalty!r}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed must be in [0, 2**63), got {self.seed!r}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        if not isinstance(self.stop, (tuple, list)) or not all(isinstance(s, str) and s for s in self.stop):
            raise ConfigError(f"stop must be a string or a list of non-empty strings, got {self.stop!r}")
        object.__setattr__(self, "stop", tuple(self.stop))


# Option types checked before values, so that e.g. top_k=2.5 or seed="x" is a ConfigError up front
# rather than a TypeError deep inside a decoding loop. numpy scalars are accepted and converted.
_GENERATION_TYPES: dict[str, tuple[type, bool]] = {  # name: (int, float or bool; None allowed)
    "max_new_tokens": (int, False),
    "do_sample": (bool, False),
    "temperature": (float, False),
    "top_k": (int, True),
    "top_p": (float, True),
    "repetition_penalty": (float, True),
    "seed": (int, True),
    "chat_template": (bool, True),
    "draft_tokens": (int, False),
}
SPECULATIVE = ("prompt-lookup",)  # GenerationOptions.speculative's values


def _check_types(options: object, types: Mapping[str, tuple[type, bool]]) -> None:
    import numbers

    abstract = {int: numbers.Integral, float: numbers.Real, bool: bool}
    for name, (kind, optional) in types.items():
        value = getattr(options, name)
        if value is None and optional:
            continue
        # bool is an Integral: True is not a token count, and 1 is not a switch.
        if isinstance(value, abstract[kind]) and (kind is bool or not isinstance(value, bool)):
            object.__setattr__(options, name, kind(value))
            continue
        expected = {int: "an integer", float: "a number", bool: "True or False"}[kind] + (
            " or None" if optional else ""
        )
        raise ConfigError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")


_O = TypeVar("_O")


def options_from_kwargs(cls: type[_O], kwargs: Mapping[str, Any], *, what: str) -> _O:
    """Build the options dataclass ``cls`` from keyword arguments, rejecting unknown names clearly."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ConfigError(f"unknown {what} option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(names))}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid {what} options: {exc}") from exc
