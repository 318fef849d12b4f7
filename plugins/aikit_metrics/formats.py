"""Dataset file formats for ``aikit.measure.evaluate``: JSONL, CSV / TSV, JSON, plain text, Hugging Face.

A reader takes the location (a path, or what follows ``name:`` in ``"name:location"``) and an
optional split, and returns the records as dicts. Errors name the file and line.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aikit.errors import InputError, MissingDependencyError

__all__ = ["read_csv", "read_huggingface", "read_json", "read_jsonl", "read_text", "read_tsv"]

Record = Mapping[str, Any]


def _open_text(location: str) -> str:
    path = Path(location)
    if not path.is_file():
        raise InputError(f"dataset file {location!r} does not exist")
    return path.read_text(encoding="utf-8")


def read_jsonl(location: str, *, split: str | None = None) -> list[Record]:
    """One JSON object per line (blank lines skipped)."""
    records: list[Record] = []
    for number, line in enumerate(_open_text(location).splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{location}, line {number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(value, dict):
            raise InputError(f"{location}, line {number}: expected a JSON object, got {type(value).__name__}")
        records.append(value)
    return records


def read_json(location: str, *, split: str | None = None) -> list[Record]:
    """A JSON list of objects, or an object holding one under ``"data"`` (or under ``split``)."""
    try:
        value = json.loads(_open_text(location))
    except json.JSONDecodeError as exc:
        raise InputError(f"{location}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if isinstance(value, dict):
        value = value.get(split or "data")
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InputError(f'{location}: expected a list of JSON objects (or {{"data": [...]}})')
    return value


def _read_delimited(location: str, delimiter: str) -> list[Record]:
    text = _open_text(location)
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    if not reader.fieldnames:
        raise InputError(f"{location}: no header row; the first line must name the columns")
    records: list[Record] = []
    for row in reader:
        if None in row:  # DictReader files surplus cells under the key None
            raise InputError(
                f"{location}, line {reader.line_num}: more cells than the {len(reader.fieldnames)} columns"
            )
        records.append(row)
    return records


def read_csv(location: str, *, split: str | None = None) -> list[Record]:
    """Comma-separated values with a header row."""
    return _read_delimited(location, ",")


def read_tsv(location: str, *, split: str | None = None) -> list[Record]:
    """Tab-separated values with a header row."""
    return _read_delimited(location, "\t")


def read_text(location: str, *, split: str | None = None) -> list[Record]:
    """One input per non-blank line, as ``{"text": line}`` (inputs only, no references)."""
    return [{"text": line} for line in _open_text(location).splitlines() if line.strip()]


def read_huggingface(location: str, *, split: str | None = None) -> list[Record]:
    """A Hugging Face dataset: a folder written by ``save_to_disk``, or a name in the local cache.

    Only works offline: nothing is downloaded (``HF_DATASETS_OFFLINE`` is forced on).
    """
    try:
        import datasets
    except ImportError as exc:
        raise MissingDependencyError("datasets", feature="reading Hugging Face datasets") from exc
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    try:
        if Path(location).is_dir():
            loaded: Any = datasets.load_from_disk(location)
        else:
            loaded = datasets.load_dataset(location, split=split)
    except Exception as exc:  # datasets raises many unrelated types for "not found offline"
        raise InputError(f"cannot read the Hugging Face dataset {location!r} offline: {exc}") from exc
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        chosen = split or next((s for s in ("test", "validation", "train") if s in loaded), splits[0])
        if chosen not in loaded:
            raise InputError(f"dataset {location!r} has no split {chosen!r}; choose one of {', '.join(splits)}")
        loaded = loaded[chosen]
    names = _class_names(loaded)
    rows: list[Record] = []
    for row in loaded:
        rows.append({k: names[k][v] if k in names and isinstance(v, int) else v for k, v in row.items()})
    return rows


def _class_names(dataset: Any) -> dict[str, list[str]]:
    """Columns typed ``ClassLabel`` map their integer ids back to names."""
    out: dict[str, list[str]] = {}
    for column, feature in getattr(dataset, "features", {}).items():
        names = getattr(feature, "names", None)
        if isinstance(names, list):
            out[column] = [str(n) for n in names]
    return out
