"""Measuring a compressed model against its original: data, quality, speed, size, layers.

Used by ``aikit.compress.chain``; imports torch only inside functions that need it.
Quality is compared on batches the strategies did not calibrate on (a held-out slice of the
calibration inputs), with the task's own notion of "same answer":

- feature-extraction: cosine of the pooled embeddings (``quality_drop = 1 - min cosine``);
- text-generation: perplexity on the text and next-token agreement (``drop = ppl ratio - 1``);
- models with class logits: label (or per-token label) agreement (``drop = 1 - agreement``);
- anything else: cosine of ``task.quality_outputs`` per item (``drop = 1 - min cosine``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from aikit.errors import TruncationWarning
from aikit.numerics import cosine_rows, token_nll

if TYPE_CHECKING:
    from aikit.contracts.backend import Backend
    from aikit.contracts.task import Task

__all__ = ["EvalData", "collate_batches", "measure_quality", "prepare_data", "split_data", "summarise", "time_backends"]

Batch = dict[str, NDArray[Any]]
BATCH_SIZE = 16
MAX_TOKENS = 256


@dataclass
class EvalData:
    """Collated batches: ``fit`` for the strategies, ``eval`` for quality, ``timing`` for speed."""

    fit: list[Batch] = field(default_factory=list)
    eval: list[Batch] = field(default_factory=list)
    timing: list[Batch] = field(default_factory=list)
    eval_items: int = 0
    synthetic_timing: bool = False


def collate_batches(task: Task, items: Sequence[Any], batch_size: int = BATCH_SIZE) -> list[Batch]:
    """``items`` preprocessed by ``task`` into collated, length-sorted batches of ``batch_size``.

    Text is cut at ``MAX_TOKENS`` tokens. Generative tasks get plain next-token batches (no chat
    template), half as large: perplexity is measured on the raw text.
    """
    if not items:
        return []
    if task.generative:
        return _lm_batches(task, [str(x) for x in items], max(1, batch_size // 2))
    from aikit.contracts.batching import sorted_batches

    with warnings.catch_warnings():  # calibration text may be long; truncating it is intended
        warnings.simplefilter("ignore", TruncationWarning)
        examples = task.preprocess(list(items), max_length=MAX_TOKENS)
    return [task.collate(b) for b in sorted_batches(examples, batch_size)]


def _lm_batches(task: Task, texts: list[str], batch_size: int) -> list[Batch]:
    tokenizer = task.parts.tokenizer
    if tokenizer is None:
        return []
    ordered = sorted(texts, key=len, reverse=True)
    out: list[Batch] = []
    for i in range(0, len(ordered), batch_size):
        enc = tokenizer(
            ordered[i : i + batch_size], truncation=True, max_length=MAX_TOKENS, padding=True, return_tensors="np"
        )
        out.append(
            {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}
        )
    return out


def prepare_data(task: Task, items: Sequence[Any] | None) -> EvalData:
    """Split calibration ``items``: 3/4 for the strategies, the last 1/4 held out for quality.

    With fewer than 8 items all of them serve both purposes. Without items, speed is timed on
    a synthetic text batch (when the task takes text) and quality is not measured.
    """
    if not items:
        data = EvalData(synthetic_timing=True)
        if task.input_kind == "text" and task.parts.tokenizer is not None:
            data.timing = collate_batches(task, [" ".join(["the model reads this sentence"] * 8)] * 8)
        return data
    items = list(items)
    if len(items) < 8:
        fit_items, eval_items = items, items
    else:
        cut = len(items) - max(4, len(items) // 4)
        fit_items, eval_items = items[:cut], items[cut:]
    return split_data(task, fit_items, eval_items)


def split_data(task: Task, fit_items: Sequence[Any], eval_items: Sequence[Any]) -> EvalData:
    """Batches of ``fit_items`` for the strategies and of ``eval_items`` for quality (and timing)."""
    evaluation = collate_batches(task, eval_items)
    return EvalData(
        fit=collate_batches(task, fit_items), eval=evaluation, timing=evaluation[:6], eval_items=len(eval_items)
    )


# ---------------------------------------------------------------------- quality
def summarise(task: Task, backend: Backend, batches: Sequence[Batch]) -> list[dict[str, Any]]:
    """Per batch, the small facts quality is compared on (never whole logits: LM vocabularies are big)."""
    out: list[dict[str, Any]] = []
    for batch in batches:
        outputs = backend.forward(batch)
        if task.embeds:
            out.append({"vectors": np.asarray(task.embed_batch(outputs, batch["attention_mask"]), dtype=np.float32)})
        elif task.generative and "logits" in outputs:
            out.append(_lm_summary(outputs["logits"], batch))
        elif "logits" in outputs and outputs["logits"].ndim in (2, 3):
            logits = outputs["logits"]
            mask = batch.get("attention_mask") if logits.ndim == 3 else None
            out.append({"labels": logits.argmax(-1), "mask": mask})
        else:
            values = task.quality_outputs(outputs).astype(np.float32)
            out.append({"vectors": values.reshape(values.shape[0], -1)})
    return out


def _lm_summary(logits: NDArray[Any], batch: Batch) -> dict[str, Any]:
    logits = logits[:, :-1].astype(np.float32)
    targets = batch["input_ids"][:, 1:]
    mask = batch["attention_mask"][:, 1:].astype(bool) & batch["attention_mask"][:, :-1].astype(bool)
    nll = token_nll(logits, targets)[mask]
    return {"nll": float(nll.sum()), "tokens": int(mask.sum()), "next": logits.argmax(-1), "mask": mask}


def measure_quality(
    reference: list[dict[str, Any]], compressed: list[dict[str, Any]]
) -> tuple[dict[str, float], str, float]:
    """(metrics, name of the bounded metric, quality drop) of ``compressed`` vs ``reference`` summaries."""
    first = reference[0]
    if "vectors" in first:
        cos = np.concatenate([cosine_rows(r["vectors"], c["vectors"]) for r, c in zip(reference, compressed)])
        metrics = {"cosine_min": float(cos.min()), "cosine_mean": float(cos.mean())}
        return metrics, "1 - cosine_min", 1.0 - metrics["cosine_min"]
    if "nll" in first:
        tokens = sum(r["tokens"] for r in reference)
        ppl_ref = float(np.exp(sum(r["nll"] for r in reference) / max(tokens, 1)))
        ppl_new = float(np.exp(sum(c["nll"] for c in compressed) / max(tokens, 1)))
        agree = sum(int(((r["next"] == c["next"]) & r["mask"]).sum()) for r, c in zip(reference, compressed))
        metrics = {
            "perplexity_before": ppl_ref,
            "perplexity_after": ppl_new,
            "next_token_agreement": agree / max(tokens, 1),
        }
        return metrics, "perplexity_after / perplexity_before - 1", ppl_new / ppl_ref - 1.0
    same = total = 0
    for r, c in zip(reference, compressed):
        equal = r["labels"] == c["labels"]
        if r["mask"] is not None:
            equal = equal[r["mask"].astype(bool)]
        same += int(equal.sum())
        total += int(equal.size)
    agreement = same / max(total, 1)
    return {"label_agreement": agreement}, "1 - label_agreement", 1.0 - agreement


# ---------------------------------------------------------------------- speed
def time_backends(before: Backend, after: Backend, batches: Sequence[Batch], *, rounds: int = 3) -> tuple[float, float]:
    """Best-of-``rounds`` seconds to run ``batches`` through each backend, interleaved (warm-up first)."""
    if not batches:
        return float("nan"), float("nan")
    for backend in (before, after):
        backend.forward(batches[0])
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, backend in enumerate((before, after)):
            start = time.perf_counter()
            for batch in batches:
                backend.forward(batch)
            best[i] = min(best[i], time.perf_counter() - start)
    return best[0], best[1]


def timing_work(batches: Sequence[Batch], generative: bool) -> tuple[float, str]:
    """How much work ``batches`` are: tokens for text models, items otherwise."""
    if batches and "attention_mask" in batches[0]:
        return float(sum(int(b["attention_mask"].sum()) for b in batches)), "tokens/s"
    return float(sum(next(iter(b.values())).shape[0] for b in batches)), "items/s"
