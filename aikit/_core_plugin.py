"""The core's own hook implementations: the innermost ``aikit_predict`` that does the work."""

from __future__ import annotations

from typing import Any

from .batching import run_batches
from .hookspecs import hookimpl
from .predict_call import PredictCall


@hookimpl(trylast=True)
def aikit_predict(call: PredictCall) -> list[Any]:
    model = call.model
    task = model.task
    with model._lock:  # tokenizers and some runtimes are not safe for concurrent calls
        return run_batches(
            task,
            model.backend,
            call.inputs,
            options=call.options,
            batch_size=call.batch_size or task.default_batch_size,
            max_length=call.max_length,
            progress=call.progress,
        )
