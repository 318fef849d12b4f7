"""Evaluation datasets: records read through a registered format, split into inputs and references.

A format is chosen by an explicit ``format=``, else a ``name:`` prefix (``"hf:imdb"``), else the
file suffix (``data.jsonl``), else a folder saved by Hugging Face ``datasets``. Plugins add formats
through the ``aikit_register_dataset_formats`` hook.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aikit.errors import ConfigError, InputError
from aikit.plugins.host import get_host

__all__ = ["INPUT_FIELDS", "REFERENCE_FIELDS", "Dataset", "load_dataset"]

# Column names tried in order when the caller names none (common in public datasets).
INPUT_FIELDS = ("text", "input", "sentence", "prompt", "question", "image", "content")
REFERENCE_FIELDS = ("label", "target", "reference", "answer", "output", "completion", "labels")


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """Inputs and (optionally) one reference per input, with where they came from."""

    inputs: list[Any]
    references: list[Any] | None
    source: str
    input_field: str
    reference_field: str | None

    def __len__(self) -> int:
        return len(self.inputs)

    @classmethod
    def from_lists(
        cls, inputs: Sequence[Any], references: Sequence[Any] | None = None, *, source: str = "<memory>"
    ) -> Dataset:
        """A dataset from Python lists (``references`` must match ``inputs`` in length)."""
        if references is not None and len(references) != len(inputs):
            raise InputError(f"{len(inputs)} inputs but {len(references)} references; they must pair up")
        return cls(
            inputs=list(inputs),
            references=None if references is None else list(references),
            source=source,
            input_field="input",
            reference_field=None if references is None else "reference",
        )


def _choose_format(location: str, format: str | None) -> tuple[str, str]:
    formats = get_host().dataset_formats
    if format is not None:
        name = format
    elif ":" in location and location.split(":", 1)[0] in formats and not Path(location).exists():
        name, location = location.split(":", 1)
    elif Path(location).is_dir():
        name = "hf"  # a folder written by datasets' save_to_disk
    else:
        name = Path(location).suffix.lower().lstrip(".")
    if name not in formats:
        known = ", ".join(sorted(formats)) or "(none: is the aikit_metrics plugin installed?)"
        raise ConfigError(
            f"cannot tell the format of dataset {location!r} ({name or 'no suffix'!r}); "
            f"use a file ending in one of: {known}, or pass format=..."
        )
    return name, location


def _pick(fields: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str, source: str) -> str | None:
    if wanted is not None:
        if wanted not in fields:
            raise InputError(f"dataset {source!r} has no {what} column {wanted!r}; its columns are {', '.join(fields)}")
        return wanted
    return next((c for c in candidates if c in fields), None)


def load_dataset(
    source: str | os.PathLike[str],
    *,
    input_field: str | None = None,
    reference_field: str | None = None,
    format: str | None = None,
    split: str | None = None,
    limit: int | None = None,
) -> Dataset:
    """Read ``source`` into a ``Dataset``.

    Columns default to the first present of ``INPUT_FIELDS`` / ``REFERENCE_FIELDS`` (the input
    column is required, the reference column optional). Relative image paths are resolved
    against the data file's folder. ``limit`` keeps the first records.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    location = os.fspath(source)
    name, where = _choose_format(location, format)
    records: list[Mapping[str, Any]] = list(get_host().dataset_formats[name](where, split=split))
    if limit is not None:
        records = records[:limit]
    if not records:
        raise InputError(f"dataset {location!r} holds no records")
    fields = list(records[0])
    chosen_input = _pick(fields, input_field, INPUT_FIELDS, "input", location)
    if chosen_input is None:
        raise InputError(
            f"dataset {location!r} has none of the input columns {', '.join(INPUT_FIELDS)}; "
            f"its columns are {', '.join(fields)}: pass input_field=..."
        )
    chosen_ref = _pick(fields, reference_field, REFERENCE_FIELDS, "reference", location)
    inputs, references = [], []
    for row_number, record in enumerate(records, 1):
        missing = [f for f in (chosen_input, chosen_ref) if f is not None and f not in record]
        if missing:
            raise InputError(f"dataset {location!r}, record {row_number}: no {missing[0]!r} field")
        value = record[chosen_input]
        if chosen_input == "image" and isinstance(value, str) and not Path(value).is_absolute():
            value = Path(where).parent / value
        inputs.append(value)
        if chosen_ref is not None:
            references.append(record[chosen_ref])
    return Dataset(
        inputs=inputs,
        references=references if chosen_ref else None,
        source=location,
        input_field=chosen_input,
        reference_field=chosen_ref,
    )
