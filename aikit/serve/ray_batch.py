"""``aikit batch --engine ray``: offline inference with Ray Data, ``map_batches`` over a pool of
model actors (each loads the model once). Same input and output formats as ``batch_job``.

Lines are read as text and parsed inside the actors, so bare-string JSONL rows work as they do
in-process; order is preserved so the output matches the input row for row.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from aikit.serve.batch_job import BatchJob, RecordWriter, decode_row, load_job_model, result_records

__all__ = ["ModelActor", "run_ray_batch"]


class ModelActor:
    """One Ray Data actor: loads the model once, then predicts batch after batch.

    Returns the output records as JSON strings (one column ``record``) so any result type
    (vectors, labels, entities, text) crosses Arrow unchanged.
    """

    def __init__(self, job: BatchJob, threads: int | None) -> None:
        self.job = job
        self.model = load_job_model(job, threads=threads)

    def __call__(self, batch: dict[str, np.ndarray[Any, Any]]) -> dict[str, list[str]]:
        if "text" in batch:  # JSONL read as text lines
            rows = [json.loads(line) for line in batch["text"].tolist()]
        else:  # Parquet: rebuild row dicts from the columns
            names = list(batch)
            rows = [dict(zip(names, values, strict=True)) for values in zip(*(batch[n].tolist() for n in names))]
        decoded = [decode_row(row, self.job.field, i, self.model) for i, row in enumerate(rows)]
        results = self.model.predict([d[0] for d in decoded], batch_size=self.job.batch_size, progress=False)
        records = result_records(0, [d[1] for d in decoded], results)  # indices are set by the driver
        return {"record": [json.dumps(r) for r in records]}


def run_ray_batch(job: BatchJob, *, workers: int = 2, cpus_per_worker: float = 1.0, address: str | None = None) -> int:
    """Run ``job`` with Ray Data on ``workers`` model actors; return the number of results written.

    Connects to ``address`` (or the running / a new local Ray instance). Each actor reserves
    ``cpus_per_worker`` CPUs and uses that many intra-op threads.
    """
    from aikit.errors import MissingDependencyError

    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError(
            "ray", feature="aikit batch --engine ray", install="pip install 'aikit[ray]'"
        ) from exc

    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # output row i answers input row i
    if job.is_parquet:
        ds = ray.data.read_parquet(str(job.input))
        if job.field not in ds.schema().names:
            from aikit.errors import ConfigError

            raise ConfigError(f"{job.input.name} has no column {job.field!r} (columns: {', '.join(ds.schema().names)})")
    else:
        ds = ray.data.read_text(str(job.input), drop_empty_lines=True)
    threads = max(1, int(cpus_per_worker))
    predicted = ds.map_batches(
        ModelActor,
        fn_constructor_kwargs={"job": job, "threads": threads},
        batch_size=job.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker,
    )
    writer = RecordWriter(job.output)
    try:
        index = 0
        for batch in predicted.iter_batches(batch_size=job.batch_size, batch_format="numpy"):
            records = [json.loads(r) for r in batch["record"].tolist()]
            for record in records:
                record["index"] = index
                index += 1
            writer.write(records)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return writer.count
