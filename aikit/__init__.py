"""aikit: one typed API to load, compress, convert, measure and serve AI models.

``import aikit`` is light: torch, transformers and every runtime load only when a model does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import prune as prune  # config namespaces; their classes load lazily (no torch)
from . import quant as quant
from .errors import (
    AikitError,
    AikitWarning,
    ArtifactError,
    BackendError,
    BackendUnavailableError,
    CompressionError,
    ConfigError,
    InputError,
    IntegrityError,
    MissingDependencyError,
    ModelLoadError,
    PerformanceWarning,
    PluginError,
    PluginLoadError,
    QualityWarning,
    RegistrationError,
    ResourceError,
    ServingError,
    TruncationWarning,
    UnknownNameError,
    UnsafeModelError,
)
from .hookspecs import hookimpl

__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import plugins as plugins
    from .backend import Backend
    from .benchmark_report import BenchmarkReport
    from .comparison import ComparisonReport, compare
    from .evaluate import EvaluationReport
    from .explain import Explainer, ExplainOptions, Explanation, FaithfulnessReport
    from .loader import Loader
    from .model import Model
    from .optimize import Candidate, CandidateResult, OptimizationReport
    from .options import BackendOptions, GenerationOptions, LoadOptions
    from .parts import ModelParts, SourceInfo
    from .plugins import get_backend, get_loader, get_metric, get_strategy, get_task
    from .predict_call import PredictCall
    from .preprocess import ImagePreprocess
    from .results import Classification, Embedding, Entity, Generation, TokenTags
    from .strategy import CompressionConfig, CompressionContext, Strategy
    from .task import Example, Task

# Public names loaded on first use, by the module that defines them. ``import aikit`` stays at the
# errors, the hook marker and the config namespaces: numpy, the plugin host and the reports cost
# ~100 ms that a script using only ``aikit.Model`` pays once, when it touches it, and ``aikit --help``
# never. tests/test_core_import.py checks that each name resolves and that nothing heavy loads early.
_LAZY: dict[str, str] = {
    "Backend": ".backend",
    "BenchmarkReport": ".benchmark_report",
    "ComparisonReport": ".comparison",
    "compare": ".comparison",
    "EvaluationReport": ".evaluate",
    "Loader": ".loader",
    "Model": ".model",
    "Candidate": ".optimize",
    "CandidateResult": ".optimize",
    "OptimizationReport": ".optimize",
    "BackendOptions": ".options",
    "GenerationOptions": ".options",
    "LoadOptions": ".options",
    "ModelParts": ".parts",
    "SourceInfo": ".parts",
    "get_backend": ".plugins",
    "get_loader": ".plugins",
    "get_metric": ".plugins",
    "get_strategy": ".plugins",
    "get_task": ".plugins",
    "PredictCall": ".predict_call",
    "ImagePreprocess": ".preprocess",
    "Classification": ".results",
    "Embedding": ".results",
    "Entity": ".results",
    "Generation": ".results",
    "TokenTags": ".results",
    "CompressionConfig": ".strategy",
    "CompressionContext": ".strategy",
    "Strategy": ".strategy",
    "Example": ".task",
    "Task": ".task",
    **{name: ".explain" for name in ("Explainer", "ExplainOptions", "Explanation", "FaithfulnessReport")},
}


def __getattr__(name: str) -> Any:
    """Resolve a lazily loaded public name, or a submodule (``aikit.plugins``) not imported yet."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise  # the submodule exists but something it imports does not
    raise AttributeError(f"module 'aikit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AikitError",
    "AikitWarning",
    "ArtifactError",
    "Backend",
    "BackendError",
    "BackendOptions",
    "BackendUnavailableError",
    "BenchmarkReport",
    "Candidate",
    "CandidateResult",
    "Classification",
    "ComparisonReport",
    "CompressionConfig",
    "CompressionContext",
    "CompressionError",
    "ConfigError",
    "Embedding",
    "Entity",
    "EvaluationReport",
    "Example",
    "ExplainOptions",
    "Explainer",
    "Explanation",
    "FaithfulnessReport",
    "Generation",
    "GenerationOptions",
    "ImagePreprocess",
    "InputError",
    "IntegrityError",
    "LoadOptions",
    "Loader",
    "MissingDependencyError",
    "Model",
    "ModelLoadError",
    "ModelParts",
    "OptimizationReport",
    "PerformanceWarning",
    "PluginError",
    "PluginLoadError",
    "PredictCall",
    "QualityWarning",
    "RegistrationError",
    "ResourceError",
    "ServingError",
    "SourceInfo",
    "Strategy",
    "Task",
    "TokenTags",
    "TruncationWarning",
    "UnknownNameError",
    "UnsafeModelError",
    "__version__",
    "compare",
    "get_backend",
    "get_loader",
    "get_metric",
    "get_strategy",
    "get_task",
    "hookimpl",
]
