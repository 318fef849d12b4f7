"""Measuring a compressed model against its original: data, quality, speed, size, layers.

Used by ``aikit.compression``; imports torch only inside functions that need it.
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

from .errors import TruncationWarning

if TYPE_CHECKING:
    from .backend import Backend
    from .compression_report import LayerChange
    from .task import Task

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
    from .batching import sorted_batches

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
        embed = getattr(task, "embed_batch", None)
        if task.name == "feature-extraction" and callable(embed):
            out.append({"vectors": np.asarray(embed(outputs, batch["attention_mask"]), dtype=np.float32)})
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
    peak = logits.max(-1, keepdims=True)
    logz = np.log(np.exp(logits - peak).sum(-1)) + peak[..., 0]
    picked = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    nll = (logz - picked)[mask]
    return {"nll": float(nll.sum()), "tokens": int(mask.sum()), "next": logits.argmax(-1), "mask": mask}


def _cosines(a: NDArray[Any], b: NDArray[Any]) -> NDArray[Any]:
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return num / np.clip(den, 1e-12, None)  # type: ignore[no-any-return]


def measure_quality(
    reference: list[dict[str, Any]], compressed: list[dict[str, Any]]
) -> tuple[dict[str, float], str, float]:
    """(metrics, name of the bounded metric, quality drop) of ``compressed`` vs ``reference`` summaries."""
    first = reference[0]
    if "vectors" in first:
        cos = np.concatenate([_cosines(r["vectors"], c["vectors"]) for r, c in zip(reference, compressed)])
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


# ---------------------------------------------------------------------- size and layers
def state_bytes(module: Any) -> int:
    """Bytes of tensor data the torch backend's safetensors file holds (shared tensors once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for value in module.state_dict().values():
        for tensor in _storage_tensors(value):
            key = (tensor.untyped_storage().data_ptr(), tensor.nbytes)
            if key not in seen:
                seen.add(key)
                total += tensor.nbytes
    return total


def _storage_tensors(tensor: Any) -> list[Any]:
    """The plain tensors holding ``tensor``'s data: itself, or a tensor subclass's inner tensors (torchao)."""
    import torch

    if type(tensor) in (torch.Tensor, torch.nn.Parameter) or not hasattr(tensor, "__tensor_flatten__"):
        return [tensor]
    names = tensor.__tensor_flatten__()[0]
    return [t for n in names for t in _storage_tensors(getattr(tensor, n)) if isinstance(t, torch.Tensor)]


def _dense(tensor: Any) -> Any:
    """A plain tensor of ``tensor``'s values (torchao quantized weights are dequantized)."""
    import torch

    dequantize = getattr(tensor, "dequantize", None)
    if type(tensor) not in (torch.Tensor, torch.nn.Parameter) and callable(dequantize):
        return dequantize()
    return tensor


def count_weights(module: Any) -> int:
    """Non-zero weights: Linear/Embedding weights (quantized ones counted by logical size), biases, norms."""
    from torch import nn

    from .compression_tools import QuantizedWeight

    total = 0
    seen: set[int] = set()
    for sub in module.modules():
        if isinstance(sub, QuantizedWeight) and not isinstance(sub, (nn.Linear, nn.Embedding)):
            total += int((sub.dequantized_weight() != 0).sum())
            bias = getattr(sub, "bias", None)
            total += int(bias.numel()) if bias is not None else 0
            continue
        for p in sub.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                total += int((_dense(p) != 0).sum())
    return total


def layer_changes(before: Any, after: Any) -> list[LayerChange]:
    """Every Linear / Embedding of ``before`` that ``after`` changed, with its weight error."""
    import torch
    from torch import nn

    from .compression_report import LayerChange

    changes: list[LayerChange] = []
    with torch.no_grad():
        for name, old in before.named_modules():
            if not isinstance(old, (nn.Linear, nn.Embedding)):
                continue
            try:
                new = after.get_submodule(name)
            except AttributeError:
                changes.append(LayerChange(name=name, kind="removed", error=None, sparsity=0.0, kept=0.0))
                continue
            getter = getattr(new, "dequantized_weight", None)
            weight = getter() if callable(getter) else getattr(new, "weight", None)
            if not isinstance(weight, torch.Tensor):
                continue
            weight = _dense(weight)
            w0, w1 = old.weight.detach().float(), weight.detach().float()
            kind = (
                type(new).__name__
                if type(new) is not type(old)
                else f"{type(new).__name__}[{str(w1.dtype).removeprefix('torch.')}]"
            )
            if w0.shape != w1.shape:
                kept = w1.numel() / max(w0.numel(), 1)
                changes.append(
                    LayerChange(name=name, kind=kind, error=None, sparsity=float((w1 == 0).float().mean()), kept=kept)
                )
                continue
            error = float((w0 - weight.detach().float()).norm() / w0.norm().clamp_min(1e-12))
            if error == 0.0 and type(new) is type(old) and weight.dtype == old.weight.dtype:
                continue
            changes.append(
                LayerChange(name=name, kind=kind, error=error, sparsity=float((w1 == 0).float().mean()), kept=1.0)
            )
    return changes
