"""``evaluate``: score a model on a dataset with registered metrics.

A metric is a function ``metric(predictions, references)`` returning a float, or a dict (for
example ``{"macro": 0.91, "per_class": {...}}``); plugins register more through
``aikit_register_metrics``. What a metric receives depends on its optional ``needs`` attribute:

- ``"predictions"`` (the default): the model's results made comparable (the label of a
  ``Classification``, the text of a ``Generation``, the entity spans of ``TokenTags``) and the
  dataset's references. Integer references (or digit strings) are read as class ids when the
  model's labels do not include them.
- ``"vectors"``: the model's embeddings and those of the ``reference`` model, ``(n, dim)`` each.
- ``"token_losses"``: one array of per-token negative log-likelihoods per text (causal LMs).

Ctrl-C stops the run: the metrics are then computed on the items finished so far and the report
says ``interrupted``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import override

from aikit.contracts.results import Classification, Embedding, Generation, TokenTags
from aikit.errors import ConfigError
from aikit.measure.eval_data import Dataset, load_dataset
from aikit.measure.reporting import render_text
from aikit.plugins.host import get_metric
from aikit.progress import progress_bar

if TYPE_CHECKING:
    from aikit.model.model import Model

__all__ = ["EvaluationReport", "comparable_output", "evaluate", "headline", "token_losses"]
logger = logging.getLogger("aikit.evaluate")

_CHUNK = 64  # items per step: the granularity of the progress bar and of Ctrl-C
_PASSES = {"predictions": 1, "vectors": 2, "token_losses": 1}  # model runs over the data per need


def headline(value: Any) -> float | None:
    """The single number that stands for a metric's value: itself, or its ``macro`` / ``mean``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        for key in ("macro", "mean"):
            if isinstance(value.get(key), (int, float)):
                return float(value[key])
    return None


@dataclass(kw_only=True)
class EvaluationReport:
    """Scores of one model on one dataset. ``items`` counts the items scored (fewer than the
    dataset's after Ctrl-C, when ``interrupted`` is true)."""

    name: str
    task: str
    dataset: str
    items: int
    scores: dict[str, Any]
    seconds: float
    model: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    interrupted: bool = False

    def score(self, metric: str) -> float | None:
        """The headline number of ``metric`` (see ``headline``), or None."""
        return headline(self.scores.get(metric))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "dataset": self.dataset,
            "items": self.items,
            "scores": self.scores,
            "seconds": self.seconds,
            "model": self.model,
            "reference": self.reference,
            "interrupted": self.interrupted,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **{"indent": 2, **kwargs})

    def tables(self) -> list[Any]:
        """``rich`` tables: one of the scores, and one per confusion matrix."""
        from rich.table import Table

        title = f"{self.name} on {self.dataset} ({self.items} items{', interrupted' if self.interrupted else ''})"
        scores = Table("metric", "value", title=title, title_justify="left")
        out = [scores]
        for metric, value in self.scores.items():
            if isinstance(value, dict) and "matrix" in value:
                out.append(_matrix_table(metric, value))
                continue
            if isinstance(value, dict):
                for key, sub in value.items():
                    if isinstance(sub, dict):
                        for label, v in sub.items():
                            scores.add_row(f"{metric} [{label}]", f"{v:.5f}")
                    else:
                        scores.add_row(f"{metric} ({key})", f"{sub:.5f}")
            else:
                scores.add_row(metric, f"{value:.5f}")
        return out

    def render(self, width: int = 120) -> str:
        return render_text(*(t for t in self.tables() if t.row_count), width=width)

    @override
    def __str__(self) -> str:
        return self.render()


def _matrix_table(metric: str, value: dict[str, Any]) -> Any:
    from rich.table import Table

    title = f"{metric} (rows: reference, columns: predicted)"
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for label in value["labels"]:
        table.add_column(str(label), justify="right")
    for label, row in zip(value["labels"], value["matrix"], strict=True):
        table.add_row(str(label), *(str(v) for v in row))
    return table


def comparable_output(result: Any) -> Any:
    """What two results are compared by: a label, a text, a tuple of entity spans (else the result)."""
    if isinstance(result, Classification):
        return result.label
    if isinstance(result, Generation):
        return result.text
    if isinstance(result, TokenTags):
        return tuple((e.label, e.start, e.end) for e in result.entities)
    return result


def _comparable(result: Any, metric: str, task: str) -> Any:
    if isinstance(result, Embedding):
        raise ConfigError(
            f"metric {metric!r} compares predictions with references, but {task!r} models give "
            "embeddings: use metrics=['cosine_agreement'] with reference=<a reference Model>"
        )
    return comparable_output(result)


def _align_references(references: list[Any], results: list[Any]) -> list[Any]:
    """Map class ids to label names when the data holds ids and the model predicts names."""
    first = next((r for r in results if isinstance(r, Classification)), None)
    if first is None:
        return references
    names = list(first.scores)
    if any(r in names for r in references):
        return references
    try:
        ids = [int(r) for r in references]
    except (TypeError, ValueError):
        return references
    if all(0 <= i < len(names) for i in ids):
        return [names[i] for i in ids]
    return references


def token_losses(model: Model, texts: Sequence[str], *, batch_size: int = 8) -> list[NDArray[np.float64]]:
    """Per-token negative log-likelihoods (natural log) of each text under a causal LM.

    Each text is tokenised as is (no chat template); token ``t`` is scored from tokens ``< t``, so
    a text of ``n`` tokens gives ``n - 1`` values. Texts are cut to the model's context length.
    The texts go through the model's ``aikit_predict`` middleware like ``predict``'s inputs (a
    ``PredictCall`` with ``purpose="token_losses"``), so input middleware sees what is scored.
    """
    from aikit.contracts.predict_call import PredictCall
    from aikit.plugins.host import get_host

    call = PredictCall(
        model=model, inputs=[str(t) for t in texts], batch_size=batch_size, progress=False, purpose="token_losses"
    )
    results: list[NDArray[np.float64]] = get_host().pm.hook.aikit_predict(call=call)
    return results


def _in_chunks(step: Callable[[list[Any]], list[Any]], items: list[Any], bar: Any, into: list[Any]) -> None:
    """Run ``step`` over chunks of ``items``, appending to ``into`` (kept when Ctrl-C interrupts)."""
    for start in range(0, len(items), _CHUNK):
        into.extend(step(items[start : start + _CHUNK]))
        if bar is not None:
            bar.update(min(_CHUNK, len(items) - start))


def _metric_names(metrics: str | Sequence[str] | None, model: Model, dataset: Dataset) -> list[str]:
    if isinstance(metrics, str):
        return [m.strip() for m in metrics.split(",") if m.strip()]
    if metrics is not None:
        return list(metrics)
    task = model.task
    if dataset.references is None and task.metrics_without_references:
        return list(task.metrics_without_references)
    if not task.default_metrics:
        raise ConfigError(f"no default metrics for task {task.name!r} (its Task declares none): pass metrics=[...]")
    return list(task.default_metrics)


def evaluate(
    model: Model,
    data: Dataset | str | os.PathLike[str],
    *,
    metrics: str | Sequence[str] | None = None,
    reference: Model | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    input_field: str | None = None,
    reference_field: str | None = None,
    format: str | None = None,
    split: str | None = None,
    name: str | None = None,
    progress: bool | None = None,
    **predict_options: Any,
) -> EvaluationReport:
    """Score ``model`` on ``data`` (a ``Dataset`` or a file; see ``aikit.measure.eval_data.load_dataset``).

    ``metrics`` are registered metric names (a list or ``"accuracy,f1"``); the default depends
    on the task (label metrics for classification, ``cosine_agreement`` for embeddings, which
    needs ``reference``, exact match or perplexity for generation). ``predict_options`` go to
    ``predict`` (``max_new_tokens=...``).
    """
    dataset = (
        data
        if isinstance(data, Dataset)
        else load_dataset(
            data, input_field=input_field, reference_field=reference_field, format=format, split=split, limit=limit
        )
    )
    inputs = dataset.inputs[:limit] if limit else dataset.inputs
    names = _metric_names(metrics, model, dataset)
    functions = {n: get_metric(n) for n in names}
    by_need: dict[str, list[str]] = {}
    for metric_name, function in functions.items():
        by_need.setdefault(getattr(function, "needs", "predictions"), []).append(metric_name)
    needs = set(by_need)
    unknown = needs - set(_PASSES)
    if unknown:
        raise ConfigError(
            f"metrics need {', '.join(sorted(unknown))}, which evaluate cannot compute (it knows {', '.join(_PASSES)})"
        )
    if "vectors" in needs and reference is None:
        raise ConfigError(
            f"{', '.join(by_need['vectors'])} compares embeddings with a reference model: pass reference=<Model>"
        )
    if "predictions" in needs and dataset.references is None:
        raise ConfigError(
            f"dataset {dataset.source!r} has no reference column (one of label, target, answer...), "
            f"which {', '.join(by_need['predictions'])} need: pass reference_field=..."
        )
    started = time.perf_counter()
    computed: dict[str, list[Any]] = {}
    bar = progress_bar(
        len(inputs) * sum(_PASSES[need] for need in needs), desc="evaluate", unit="item", enabled=progress
    )
    try:
        if "predictions" in needs:
            _in_chunks(
                lambda chunk: list(model.predict(chunk, batch_size=batch_size, progress=False, **predict_options)),
                inputs,
                bar,
                computed.setdefault("results", []),
            )
        if "vectors" in needs and reference is not None:
            _in_chunks(
                lambda chunk: list(model.embed(chunk, batch_size=batch_size)),
                inputs,
                bar,
                computed.setdefault("vectors", []),
            )
            _in_chunks(
                lambda chunk: list(reference.embed(chunk, batch_size=batch_size)),
                inputs,
                bar,
                computed.setdefault("reference_vectors", []),
            )
        if "token_losses" in needs:
            _in_chunks(
                lambda chunk: token_losses(model, chunk, batch_size=batch_size or 8),
                inputs,
                bar,
                computed.setdefault("losses", []),
            )
    except KeyboardInterrupt:
        logger.warning(
            "evaluation interrupted: scoring the %d item(s) finished",
            min((len(v) for v in computed.values()), default=0),
        )
    finally:
        if bar is not None:
            bar.close()
    n = min((len(v) for v in computed.values()), default=0)
    scores: dict[str, Any] = {}
    if n:
        results = computed.get("results", [])[:n]
        for metric, function in functions.items():
            kind = getattr(function, "needs", "predictions")
            if kind == "vectors":
                scores[metric] = function(
                    np.stack(computed["vectors"][:n]), np.stack(computed["reference_vectors"][:n])
                )
            elif kind == "token_losses":
                scores[metric] = function(computed["losses"][:n], None)
            else:
                predictions = [_comparable(r, metric, model.task.name) for r in results]
                references = _align_references(list((dataset.references or [])[:n]), results)
                scores[metric] = function(predictions, references)
    return EvaluationReport(
        name=name or Path(model.parts.source.location).name or model.task.name,
        task=model.task.name,
        dataset=dataset.source,
        items=n,
        scores=scores,
        seconds=time.perf_counter() - started,
        model=model.describe(),
        reference=None if reference is None else reference.parts.source.location,
        interrupted=n < len(inputs),
    )
