"""The loader contract: recognise a model source and read it into ``ModelParts``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from aikit.contracts.options import LoadOptions
    from aikit.contracts.parts import ModelParts

__all__ = ["Loader"]


class Loader(ABC):
    """Reads one kind of source (an HF folder, a GGUF file, an artifact, ...).

    ``Model.load`` asks every registered loader, highest ``priority`` first, whether it
    ``detects`` the source; the first that does loads it. ``detects`` must be cheap and must not
    raise for sources it does not understand.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    priority: ClassVar[int] = 0

    @abstractmethod
    def detects(self, source: object) -> bool:
        """Whether this loader understands ``source`` (a path, a string id, an object)."""

    @abstractmethod
    def load(self, source: object, *, task: str | None, options: LoadOptions) -> ModelParts:
        """Read ``source``; raise ``ModelLoadError`` (or a subclass) naming the file when it cannot."""
