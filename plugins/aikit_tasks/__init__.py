"""aikit's built-in tasks, registered through the same hook a third-party plugin uses."""

from __future__ import annotations

from collections.abc import Callable

from aikit import Task, hookimpl

from .classification import TextClassification, TokenClassification
from .embeddings import FeatureExtraction
from .generation import Text2TextGeneration, TextGeneration
from .vision import ImageClassification

__version__ = "0.1.0"

TASKS: tuple[type[Task], ...] = (
    FeatureExtraction,
    TextClassification,
    TokenClassification,
    TextGeneration,
    Text2TextGeneration,
    ImageClassification,
)


@hookimpl
def aikit_register_tasks(register: Callable[[type[Task]], None]) -> None:
    for task in TASKS:
        register(task)
