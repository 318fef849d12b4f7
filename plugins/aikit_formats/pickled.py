"""Pickle-based weight files (``.pt``, ``.pth``, ``.bin``, ``.ckpt``): refused unless asked for.

Unpickling runs whatever code the file names, so a weight file from a stranger is a program
from a stranger. This loader refuses such files with ``UnsafeModelError`` unless the caller
passes ``allow_pickle=True``, and even then reads them with ``torch.load(weights_only=True)``,
which only rebuilds tensors and plain containers and raises on anything else. The file must
hold a state dict; ``Model.load(path, module=YourNet(), task=...)`` loads it into the module.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from typing_extensions import override

from aikit.contracts.loader import Loader
from aikit.contracts.options import LoadOptions
from aikit.contracts.parts import ModelParts, SourceInfo
from aikit.errors import ModelLoadError, UnsafeModelError

from .huggingface import PICKLE_SUFFIXES, combined_hash

# Keys under which training frameworks nest the state dict (Lightning, many research repos).
_NESTED_KEYS = ("state_dict", "model_state_dict", "model")


def _state_dict(loaded: Any, path: Path) -> dict[str, Any]:
    """The ``{name: tensor}`` mapping inside what ``torch.load`` returned."""
    import torch

    def is_state(obj: Any) -> bool:
        return (
            isinstance(obj, Mapping)
            and bool(obj)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
        )

    if is_state(loaded):
        return dict(loaded)
    if isinstance(loaded, Mapping):
        for key in _NESTED_KEYS:
            if is_state(loaded.get(key)):
                return dict(loaded[key])
    raise ModelLoadError(
        f"{path} does not hold a state dict (a mapping of names to tensors); got {type(loaded).__name__}",
        source=path,
    )


_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation", "WeightsUnpickler error")


def refusal_reason(exc: BaseException) -> str:
    """The useful line of torch's weights-only refusal, without its advice to retry unsafely."""
    lines = [line.strip() for line in str(exc).splitlines()]
    useful = [line for line in lines if line and not line.startswith(_BOILERPLATE)]
    return useful[0] if useful else type(exc).__name__


class PickleWeightsLoader(Loader):
    """A single pickle-based weight file, loaded only with ``allow_pickle=True`` and ``weights_only``."""

    name = "pickle-weights"
    description = "PyTorch .pt/.pth/.bin/.ckpt state dict (needs allow_pickle=True and module=...)"
    priority = 20

    @override
    def detects(self, source: object) -> bool:
        return (
            isinstance(source, (str, os.PathLike))
            and Path(source).suffix.lower() in PICKLE_SUFFIXES
            and Path(source).is_file()
        )

    @override
    def load(self, source: object, *, task: str | None, options: LoadOptions) -> ModelParts:
        path = Path(os.fspath(source)).resolve()  # type: ignore[call-overload]
        if not options.allow_pickle:
            raise UnsafeModelError(
                f"{path} is a pickle-based weight file ({path.suffix}); unpickling can run arbitrary code, "
                "so aikit does not open it by default. Convert it to safetensors, or pass allow_pickle=True "
                "if you trust its source (it is then read with torch.load(weights_only=True), which "
                "rebuilds tensors only)",
                source=path,
            )
        import torch

        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            # weights_only refuses any global outside torch's allow-list: this is the attack case.
            raise UnsafeModelError(
                f"{path} holds more than tensors (torch.load(weights_only=True) refused it: "
                f"{refusal_reason(exc)}); aikit will not unpickle arbitrary objects. "
                "Re-save only the state dict (torch.save(model.state_dict(), ...)) or convert to safetensors",
                source=path,
            ) from exc
        except (RuntimeError, OSError, EOFError, ValueError) as exc:
            raise ModelLoadError(f"cannot read {path}: {type(exc).__name__}: {exc}", source=path) from exc
        return ModelParts(
            source=SourceInfo(kind=self.name, location=str(path), sha256=combined_hash([path])),
            task_hint=task,
            extras={"state_dict": _state_dict(loaded, path)},
        )
