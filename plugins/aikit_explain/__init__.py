"""aikit's built-in attribution methods for ``Model.explain``, registered through the same hook a
third-party plugin uses (``aikit_register_explainers``).

- ``integrated-gradients`` (captum): gradients along a straight path from a baseline (padding
  tokens, black image) to the input; text attributions are taken at the embedding layer.
  Needs a backend holding a torch module (torch, keras, cuda).
- ``occlusion``: hide a token window or an image patch, measure how much the target's probability
  drops. Gradient-free and batched through ``backend.forward``, so it runs on any backend
  (ONNX Runtime included).

Importing this plugin imports neither torch nor captum.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aikit import hookimpl

from .methods import IntegratedGradients, Occlusion

__version__ = "0.1.0"
__all__ = ["IntegratedGradients", "Occlusion"]


@hookimpl
def aikit_register_explainers(register: Callable[[type[Any]], None]) -> None:
    register(IntegratedGradients)
    register(Occlusion)
