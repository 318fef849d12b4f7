"""Every error aikit raises, in one tree.

```
AikitError                      base class: catch this to catch everything aikit raises
├── ConfigError                 (also ValueError) an option or config object is invalid
├── UnknownNameError            (also KeyError) no backend / task / strategy / loader / metric by that name
├── MissingDependencyError      (also ImportError) an optional package is needed: says what to pip install
├── ModelLoadError              a model source cannot be read or understood
│   ├── UnsafeModelError        the source needs pickle or remote code and the caller did not opt in
│   ├── IntegrityError          an artifact's files do not match the sha256 in its manifest
│   └── ResourceError           the model clearly needs more memory than is available
├── ArtifactError               an artifact cannot be written, or its manifest is invalid
├── InputError                  (also ValueError) bad input to predict: says which item and why
├── BackendError                a backend cannot run here or failed while running
│   └── BackendUnavailableError the backend exists but this machine cannot run it (no GPU, ...)
├── CompressionError            a strategy cannot be applied, or broke the quality bound
├── PluginError                 a plugin misbehaved while registering or running
│   ├── PluginLoadError         a plugin failed to import or register (reported, not fatal)
│   └── RegistrationError       a plugin registered something invalid or a duplicate name
└── ServingError                the HTTP service cannot start or was misconfigured

AikitWarning (UserWarning)
├── TruncationWarning           an input was truncated to the model's maximum length
├── PerformanceWarning          a transformation made the model slower or larger here
└── QualityWarning              a transformation changed outputs more than expected
```

Errors carry context (plugin, file, input index) as attributes as well as in the message, and
errors raised inside plugin code are chained (``raise ... from exc``), never swallowed.
"""

from __future__ import annotations

from collections.abc import Iterable

from typing_extensions import override

__all__ = [
    "AikitError",
    "AikitWarning",
    "ArtifactError",
    "BackendError",
    "BackendUnavailableError",
    "CompressionError",
    "ConfigError",
    "InputError",
    "IntegrityError",
    "MissingDependencyError",
    "ModelLoadError",
    "PerformanceWarning",
    "PluginError",
    "PluginLoadError",
    "QualityWarning",
    "RegistrationError",
    "ResourceError",
    "ServingError",
    "TruncationWarning",
    "UnknownNameError",
    "UnsafeModelError",
]


class AikitError(Exception):
    """Base class of every error aikit raises."""


class ConfigError(AikitError, ValueError):
    """An option, argument or config object has an invalid value."""


class UnknownNameError(AikitError, KeyError):
    """No registered item of ``kind`` is called ``name``; the message lists the valid choices."""

    def __init__(self, kind: str, name: str, choices: Iterable[str], hint: str = "") -> None:
        self.kind = kind
        self.name = name
        self.choices = sorted(choices)
        listed = ", ".join(repr(c) for c in self.choices) or "(none registered)"
        message = f"unknown {kind} {name!r}; choose one of: {listed}"
        if hint:
            message += f". {hint}"
        super().__init__(message)

    @override
    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class MissingDependencyError(AikitError, ImportError):
    """An optional package is not installed; the message says what to ``pip install``."""

    def __init__(self, package: str, *, feature: str, install: str | None = None) -> None:
        self.package = package
        self.feature = feature
        self.install = install or f"pip install {package}"
        super().__init__(f"{feature} needs the optional package {package!r}: run `{self.install}`")


class ModelLoadError(AikitError):
    """A model source cannot be read or understood."""

    def __init__(self, message: str, *, source: object = None) -> None:
        self.source = source
        super().__init__(message)


class UnsafeModelError(ModelLoadError):
    """Loading would run pickle or remote code and the caller did not explicitly allow it."""


class IntegrityError(ModelLoadError):
    """An artifact's file is changed, missing or unexpected compared with its manifest."""

    def __init__(self, message: str, *, source: object = None, file: str | None = None) -> None:
        self.file = file
        super().__init__(message, source=source)


class ResourceError(ModelLoadError):
    """Loading would clearly need more memory than the OS reports as available (numbers attached)."""

    def __init__(self, message: str, *, source: object = None, needed_bytes: int, available_bytes: int) -> None:
        self.needed_bytes = needed_bytes
        self.available_bytes = available_bytes
        super().__init__(message, source=source)


class ArtifactError(AikitError):
    """An artifact cannot be written, or its manifest is malformed."""


class InputError(AikitError, ValueError):
    """Input to ``predict`` is invalid; ``index`` names the offending item when there is one."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        self.index = index
        if index is not None:
            message = f"input {index}: {message}"
        super().__init__(message)


class BackendError(AikitError):
    """A backend failed to prepare or run a model."""


class BackendUnavailableError(BackendError):
    """The backend is registered but cannot run on this machine (the message says why)."""


class CompressionError(AikitError):
    """A compression strategy cannot be applied or broke the requested quality bound."""


class PluginError(AikitError):
    """A plugin misbehaved; ``plugin`` names it."""

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        self.plugin = plugin
        super().__init__(message)


class PluginLoadError(PluginError):
    """A plugin failed to import or register. Reported by ``aikit plugins``; never fatal by default."""


class RegistrationError(PluginError):
    """A plugin registered an object of the wrong type or a name that is already taken."""


class ServingError(AikitError):
    """The model server cannot start or is misconfigured."""


class AikitWarning(UserWarning):
    """Base class of aikit's warnings (tests turn these into errors)."""


class TruncationWarning(AikitWarning):
    """An input was longer than the model's maximum length and was truncated."""


class PerformanceWarning(AikitWarning):
    """A transformation made the model slower (or larger) on this machine."""


class QualityWarning(AikitWarning):
    """A transformation changed the model's outputs more than a caller may expect."""
