"""aikit's built-in evaluation metrics and dataset formats, registered through the same hooks a
third-party plugin uses (``aikit_register_metrics``, ``aikit_register_dataset_formats``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aikit import hookimpl

from .classification import accuracy, confusion_matrix, f1, precision, recall
from .formats import read_csv, read_huggingface, read_json, read_jsonl, read_text, read_tsv
from .similarity import cosine_agreement, exact_match, perplexity

__version__ = "0.1.0"

METRICS: dict[str, Callable[..., Any]] = {
    "accuracy": accuracy,
    "precision": precision,
    "recall": recall,
    "f1": f1,
    "confusion_matrix": confusion_matrix,
    "exact_match": exact_match,
    "cosine_agreement": cosine_agreement,
    "perplexity": perplexity,
}

# Names are file suffixes (``data.jsonl``) or prefixes (``hf:imdb``).
FORMATS: dict[str, Callable[..., Any]] = {
    "jsonl": read_jsonl,
    "ndjson": read_jsonl,
    "json": read_json,
    "csv": read_csv,
    "tsv": read_tsv,
    "txt": read_text,
    "hf": read_huggingface,
}


@hookimpl
def aikit_register_metrics(register: Callable[..., None]) -> None:
    for name, function in METRICS.items():
        register(name, function)


@hookimpl
def aikit_register_dataset_formats(register: Callable[..., None]) -> None:
    for name, reader in FORMATS.items():
        register(name, reader)
