"""aikit: one typed API to load, compress, convert, measure and serve AI models.

``import aikit`` is light: torch, transformers and every runtime load only when a model does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import prune as prune  # config namespaces; their classes load lazily (no torch)
from . import quant as quant
from .backend import Backend
from .benchmark_report import BenchmarkReport
from .compare import ComparisonReport, compare
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
from .evaluate import EvaluationReport
from .hookspecs import hookimpl
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

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .explain import Explainer, ExplainOptions, Explanation, FaithfulnessReport

# Loaded on first use: aikit.explain's rendering code would add ~18 ms to every ``import aikit``.
_LAZY = {name: ".explain" for name in ("Explainer", "ExplainOptions", "Explanation", "FaithfulnessReport")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'aikit' has no attribute {name!r}")

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
