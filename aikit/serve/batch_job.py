"""Offline batch inference over a JSONL or Parquet file, in this process (``aikit batch``).

Input rows: a JSONL line is either a bare JSON value (a string, a chat message list) or an
object whose ``field`` (default ``"input"``) holds the input; an ``"id"`` field is copied to the
output. Parquet files give the ``field`` column (and ``id`` when present). Output: one JSON object
per input, in input order, ``{"index": i, "id": ..., **result}``; a ``.parquet`` output holds the
same records with the result as a JSON string column. ``aikit.serve.ray_batch`` runs the same job
on Ray Data.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aikit.errors import ConfigError, InputError
from aikit.progress import progress_bar

if TYPE_CHECKING:
    from aikit.model.model import Model

__all__ = ["BatchJob", "decode_row", "load_job_model", "read_rows", "result_records", "run_local_batch"]

_INPUTS = (".jsonl", ".json", ".parquet")
_OUTPUTS = (".jsonl", ".parquet")
_CHUNK = 1024  # rows per predict call in-process: bounds memory, keeps the progress bar moving


@dataclass(frozen=True, kw_only=True)
class BatchJob:
    """What to run over which file (shared by the in-process and the Ray Data engines)."""

    model: str
    input: Path
    output: Path
    field: str = "input"
    task: str | None = None
    backend: str = "auto"
    batch_size: int = 64

    def __post_init__(self) -> None:
        if not self.input.is_file():
            raise ConfigError(f"input file {str(self.input)!r} does not exist")
        if self.input.suffix.lower() not in _INPUTS:
            raise ConfigError(f"input must be a .jsonl or .parquet file, got {self.input.name!r}")
        if self.output.suffix.lower() not in _OUTPUTS:
            raise ConfigError(f"output must end in .jsonl or .parquet, got {self.output.name!r}")
        if self.output.resolve() == self.input.resolve():
            raise ConfigError("output must not overwrite the input file")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")

    @property
    def is_parquet(self) -> bool:
        return self.input.suffix.lower() == ".parquet"


def load_job_model(job: BatchJob, *, threads: int | None = None) -> Model:
    from aikit.model.model import Model

    return Model.load(job.model, task=job.task, backend=job.backend, threads=threads)


def decode_row(row: Any, field: str, index: int, model: Model) -> tuple[Any, Any]:
    """``(input, id)`` of one row: a bare value, or an object's ``field`` and ``id``."""
    row_id = None
    value = row
    if isinstance(row, dict):
        if field not in row:
            raise InputError(f"row has no {field!r} field (its fields: {', '.join(sorted(row))})", index=index)
        value, row_id = row[field], row.get("id")
    if model.task.input_kind == "image":
        if isinstance(value, dict) and "image_base64" in value:
            return base64.b64decode(value["image_base64"]), row_id
        if isinstance(value, str):
            return Path(value), row_id  # a local file named by the operator's own input file
    return value, row_id


def read_rows(job: BatchJob) -> Iterator[Any]:
    """Every row of the input file, parsed, in order."""
    if job.is_parquet:
        import pyarrow.parquet as pq

        table = pq.read_table(job.input)
        if job.field not in table.column_names:
            raise ConfigError(
                f"{job.input.name} has no column {job.field!r} (columns: {', '.join(table.column_names)})"
            )
        yield from table.to_pylist()
        return
    with job.input.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{job.input.name} line {number} is not valid JSON: {exc.msg}") from exc


def result_records(start: int, ids: Sequence[Any], results: Sequence[Any]) -> list[dict[str, Any]]:
    """Output records for results numbered from ``start``."""
    records = []
    for offset, (row_id, result) in enumerate(zip(ids, results, strict=True)):
        record: dict[str, Any] = {"index": start + offset}
        if row_id is not None:
            record["id"] = row_id
        record.update(result.to_dict())
        records.append(record)
    return records


class RecordWriter:
    """Writes records to ``.jsonl`` as they come, or collects them for one ``.parquet`` file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._parquet = path.suffix.lower() == ".parquet"
        self._rows: list[dict[str, Any]] = []
        self._tmp = path.with_name(path.name + ".partial")
        self._handle = None if self._parquet else self._tmp.open("w", encoding="utf-8")

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        for record in records:
            if self._handle is not None:
                self._handle.write(json.dumps(record) + "\n")
            else:
                extra = {k: v for k, v in record.items() if k not in ("index", "id")}
                self._rows.append({"index": record["index"], "id": record.get("id"), "result": json.dumps(extra)})
        self.count += len(records)

    def close(self) -> None:
        """Finish the file atomically (a crash leaves no half-written output under the real name)."""
        if self._handle is not None:
            self._handle.close()
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(self._rows), self._tmp)
        self._tmp.replace(self.path)

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._tmp.unlink(missing_ok=True)


def run_local_batch(job: BatchJob, *, progress: bool | None = None, model: Model | None = None) -> int:
    """Run ``job`` in this process; return the number of results written. A progress bar counts the
    rows as ``aikit.progress`` decides (``progress`` wins; by default only on a terminal)."""
    model = model or load_job_model(job)
    writer = RecordWriter(job.output)
    bar = progress_bar(None, desc="aikit batch", unit="row", enabled=progress)
    index = 0
    try:
        chunk: list[Any] = []
        for row in read_rows(job):
            chunk.append(row)
            if len(chunk) == _CHUNK:
                index = _run_chunk(model, job, chunk, index, writer)
                if bar is not None:
                    bar.update(len(chunk))
                chunk = []
        if chunk:
            index = _run_chunk(model, job, chunk, index, writer)
            if bar is not None:
                bar.update(len(chunk))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    return writer.count


def _run_chunk(model: Model, job: BatchJob, rows: list[Any], start: int, writer: RecordWriter) -> int:
    decoded = [decode_row(row, job.field, start + i, model) for i, row in enumerate(rows)]
    items = [d[0] for d in decoded]
    try:
        results = model.predict(items, batch_size=job.batch_size, progress=False)
    except InputError as exc:
        if exc.index is not None:  # name the row of the file, not of the chunk
            raise InputError(str(exc).split(": ", 1)[-1], index=start + exc.index) from exc
        raise
    writer.write(result_records(start, [d[1] for d in decoded], results))
    return start + len(rows)
