"""aikit: one typed API to load, compress, convert, measure and serve AI models.

``import aikit`` is light: torch, transformers and every runtime load only when a model does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from aikit.contracts.hookspecs import hookimpl
from aikit.errors import (
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

from . import prune as prune  # config namespaces; their classes load lazily (no torch)
from . import quant as quant

__version__ = "0.1.0"

if TYPE_CHECKING:
    from aikit.contracts.backend import Backend
    from aikit.contracts.loader import Loader
    from aikit.contracts.options import BackendOptions, GenerationOptions, LoadOptions
    from aikit.contracts.parts import ModelParts, SourceInfo
    from aikit.contracts.predict_call import PredictCall
    from aikit.contracts.preprocess import ImagePreprocess
    from aikit.contracts.results import Classification, Embedding, Entity, Generation, TokenTags
    from aikit.contracts.strategy import CompressionConfig, CompressionContext, Strategy
    from aikit.contracts.task import Example, Task
    from aikit.measure.benchmark_report import BenchmarkReport
    from aikit.measure.comparison import ComparisonReport, compare
    from aikit.measure.evaluate import EvaluationReport
    from aikit.measure.explain import Explainer, ExplainOptions, Explanation, FaithfulnessReport
    from aikit.model import Model
    from aikit.optimize import Candidate, CandidateResult, OptimizationReport
    from aikit.plugins.host import get_backend, get_loader, get_metric, get_strategy, get_task

    from . import plugins as plugins

# Public names loaded on first use, by the module that defines them. ``import aikit`` stays at the
# errors, the hook marker and the config namespaces: numpy, the plugin host and the reports cost
# ~100 ms that a script using only ``aikit.Model`` pays once, when it touches it, and ``aikit --help``
# never. tests/test_core_import.py checks that each name resolves and that nothing heavy loads early.
_LAZY: dict[str, str] = {
    "Backend": ".contracts.backend",
    "BenchmarkReport": ".measure.benchmark_report",
    "ComparisonReport": ".measure.comparison",
    "compare": ".measure.comparison",
    "EvaluationReport": ".measure.evaluate",
    "Loader": ".contracts.loader",
    "Model": ".model",
    "Candidate": ".contracts.candidate",
    "CandidateResult": ".optimize",
    "OptimizationReport": ".optimize",
    "BackendOptions": ".contracts.options",
    "GenerationOptions": ".contracts.options",
    "LoadOptions": ".contracts.options",
    "ModelParts": ".contracts.parts",
    "SourceInfo": ".contracts.parts",
    "get_backend": ".plugins.host",
    "get_loader": ".plugins.host",
    "get_metric": ".plugins.host",
    "get_strategy": ".plugins.host",
    "get_task": ".plugins.host",
    "PredictCall": ".contracts.predict_call",
    "ImagePreprocess": ".contracts.preprocess",
    "Classification": ".contracts.results",
    "Embedding": ".contracts.results",
    "Entity": ".contracts.results",
    "Generation": ".contracts.results",
    "TokenTags": ".contracts.results",
    "CompressionConfig": ".contracts.strategy",
    "CompressionContext": ".contracts.strategy",
    "Strategy": ".contracts.strategy",
    "Example": ".contracts.task",
    "Task": ".contracts.task",
    **{name: ".measure.explain" for name in ("Explainer", "ExplainOptions", "Explanation", "FaithfulnessReport")},
}


def __getattr__(name: str) -> Any:
    """Resolve a lazily loaded public name, or a submodule (``aikit.plugins.host``) not imported yet."""
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
