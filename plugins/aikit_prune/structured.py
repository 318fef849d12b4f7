"""Structured pruning that physically shrinks weight matrices: attention heads, FFN neurons, layers.

Supported layouts: BERT-style encoder blocks (``attention.self.{query,key,value}``,
``attention.output.dense``, ``intermediate.dense``, ``output.dense``) and Llama-style decoder
blocks (``mlp.{gate,up,down}_proj``; head pruning is BERT-only because grouped-query attention
ties query heads to shared key/value heads). The model config keeps its original sizes: the
shrunk modules carry their own, and Llama iterates ``layers[:num_hidden_layers]``.

Importance (what goes first): with calibration data, FFN neuron ``i`` scores
``mean|activation_i| * ||W_out[:, i]||`` and the FFN's output projection is then refit by ridge
least squares to reproduce the unpruned FFN's output (layer by layer, on the pruned model's own
activations); head ``h`` scores ``mean||context_h|| * ||W_o[:, h]||``, and a layer scores its
block influence ``1 - cos(input, output)`` (ShortGPT, Men et al. 2024).
Without data, activations are replaced by the input weights' norms and the deepest layers but
the last go first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from numpy.typing import NDArray
from torch import nn

from aikit.compress.tools import linear_at, run_calibration, set_module
from aikit.errors import CompressionError

__all__ = ["Blocks", "find_blocks", "keep_count", "prune_blocks", "shrink_skeleton"]

_FFN = {"bert": (("intermediate.dense",), "output.dense"), "llama": (("mlp.gate_proj", "mlp.up_proj"), "mlp.down_proj")}
_HEADS = {
    "bert": (
        ("attention.self.query", "attention.self.key", "attention.self.value"),
        "attention.output.dense",
        "attention.self",
    )
}


@dataclass
class Blocks:
    """The repeated blocks of a transformer and their layout family (``bert`` or ``llama``)."""

    path: str
    family: str
    modules: nn.ModuleList


def find_blocks(module: nn.Module) -> Blocks:
    """Locate the block list, or raise ``CompressionError`` naming the supported layouts."""
    for name, child in module.named_modules():
        if not isinstance(child, nn.ModuleList) or len(child) == 0:
            continue
        first = child[0]
        if not all(type(c) is type(first) for c in child):
            continue
        if all(_has(first, p) for p in ("attention.self.query", "intermediate.dense", "output.dense")):
            return Blocks(name, "bert", child)
        if all(_has(first, p) for p in ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")):
            return Blocks(name, "llama", child)
    if any(type(m).__name__.startswith(("Quant", "Int8", "Int4")) for m in module.modules()):
        raise CompressionError(
            "prune-structured must come before quantization in a chain (this model's layers are already "
            "quantized): e.g. compress('prune-structured:ffn=0.3', 'int8-dynamic')"
        )
    raise CompressionError(
        "prune-structured supports BERT-style encoders (heads, ffn, layers) and Llama-style decoders (ffn, layers); "
        f"{type(module).__name__} has neither layout. Use prune-magnitude, or a quantization strategy"
    )


def _has(block: nn.Module, path: str) -> bool:
    try:
        return isinstance(block.get_submodule(path), nn.Linear)
    except AttributeError:
        return False


def _heads(block: nn.Module, attention_path: str) -> int:
    attention: Any = block.get_submodule(attention_path)
    return int(attention.num_attention_heads)


def keep_count(total: int, fraction: float) -> int:
    """Units kept when ``fraction`` of ``total`` go (at least one stays)."""
    return max(1, total - round(total * fraction))


# ---------------------------------------------------------------------- shrinking
def _rows(linear: nn.Linear, index: torch.Tensor) -> nn.Linear:
    new = nn.Linear(linear.in_features, len(index), bias=linear.bias is not None)
    with torch.no_grad():
        new.weight.copy_(linear.weight[index])
        if linear.bias is not None:
            new.bias.copy_(linear.bias[index])
    return new.to(linear.weight.dtype)


def _cols(linear: nn.Linear, index: torch.Tensor) -> nn.Linear:
    new = nn.Linear(len(index), linear.out_features, bias=linear.bias is not None)
    with torch.no_grad():
        new.weight.copy_(linear.weight[:, index])
        if linear.bias is not None:
            new.bias.copy_(linear.bias)
    return new.to(linear.weight.dtype)


def _shrink_ffn(block: nn.Module, family: str, keep: torch.Tensor) -> None:
    ins, out = _FFN[family]
    for name in ins:
        set_module(block, name, _rows(linear_at(block, name), keep))
    set_module(block, out, _cols(linear_at(block, out), keep))


def _shrink_heads(block: nn.Module, family: str, heads: Sequence[int]) -> None:
    qkv, out, attention_path = _HEADS[family]
    attention: Any = block.get_submodule(attention_path)
    size = int(attention.attention_head_size)
    index = torch.cat([torch.arange(h * size, (h + 1) * size) for h in sorted(heads)])
    for name in qkv:
        set_module(block, name, _rows(linear_at(block, name), index))
    set_module(block, out, _cols(linear_at(block, out), index))
    attention.num_attention_heads = len(heads)
    attention.all_head_size = len(heads) * size


def _drop_layers(module: nn.Module, blocks: Blocks, remove: Sequence[int]) -> Blocks:
    kept = [b for i, b in enumerate(blocks.modules) if i not in set(remove)]
    new_list = nn.ModuleList(kept)
    for i, block in enumerate(new_list):  # caches index layers by position: keep it contiguous
        for sub in block.modules():
            if isinstance(getattr(sub, "layer_idx", None), int):
                sub.layer_idx = i  # type: ignore[assignment]
    set_module(module, blocks.path, new_list)
    return Blocks(blocks.path, blocks.family, new_list)


def _check(blocks: Blocks, config: Any) -> None:
    if config.layers >= len(blocks.modules):
        raise CompressionError(
            f"prune-structured: layers={config.layers} but the model has only {len(blocks.modules)} layers"
        )
    if config.heads and blocks.family not in _HEADS:
        raise CompressionError(
            f"prune-structured: head pruning supports BERT-style encoders; this is a {blocks.family}-style model "
            "(grouped-query attention). Use ffn= and/or layers="
        )


def shrink_skeleton(module: nn.Module, config: Any) -> nn.Module:
    """``restore``: give a fresh skeleton the pruned shapes (which units does not matter: weights load next)."""
    blocks = find_blocks(module)
    _check(blocks, config)
    if config.layers:
        blocks = _drop_layers(module, blocks, range(len(blocks.modules) - config.layers, len(blocks.modules)))
    for block in blocks.modules:
        if config.ffn:
            width = linear_at(block, _FFN[blocks.family][1]).in_features
            _shrink_ffn(block, blocks.family, torch.arange(keep_count(int(width), config.ffn)))
        if config.heads:
            heads = _heads(block, _HEADS[blocks.family][2])
            _shrink_heads(block, blocks.family, range(keep_count(heads, config.heads)))
    return module


# ---------------------------------------------------------------------- importance
@dataclass
class _Stats:
    """Calibration statistics: head context norms and block influence. (FFN neurons are ranked by
    ``_prune_ffn_refit`` on the activations of the already pruned model, so none are kept here.)"""

    heads: dict[int, torch.Tensor] = field(default_factory=dict)
    influence: dict[int, float] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def _collect(module: nn.Module, blocks: Blocks, batches: Sequence[dict[str, NDArray[Any]]]) -> _Stats:
    stats = _Stats()
    handles = []

    def add(table: dict[int, torch.Tensor], i: int, value: torch.Tensor) -> None:
        table[i] = table[i] + value if i in table else value

    for i, block in enumerate(blocks.modules):

        def on_block(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any, i: int = i) -> None:
            x = _first_tensor(args) if args else kwargs.get("hidden_states")
            y = _first_tensor(out)
            if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
                cos = torch.nn.functional.cosine_similarity(x.float(), y.float(), dim=-1).mean().item()
                stats.influence[i] = stats.influence.get(i, 0.0) + (1.0 - cos)
                stats.counts[i] = stats.counts.get(i, 0) + 1

        handles.append(block.register_forward_hook(on_block, with_kwargs=True))

        if blocks.family in _HEADS:
            heads = _heads(block, _HEADS[blocks.family][2])

            def on_heads(
                _m: nn.Module, inputs: tuple[torch.Tensor, ...], _out: Any, i: int = i, heads: int = heads
            ) -> None:
                x = inputs[0].detach().float()
                add(stats.heads, i, x.reshape(-1, heads, x.shape[-1] // heads).norm(dim=-1).mean(0))

            handles.append(block.get_submodule(_HEADS[blocks.family][1]).register_forward_hook(on_heads))
    run_calibration(module, batches, hooks=handles)
    return stats


def _ffn_scores(block: nn.Module, family: str) -> torch.Tensor:
    """Without data: the input rows' norms stand in for neuron activations."""
    ins, out = _FFN[family]
    w_out = linear_at(block, out).weight.detach().float()
    activation = torch.stack([linear_at(block, n).weight.detach().float().norm(dim=1) for n in ins]).prod(0)
    scores: torch.Tensor = activation * w_out.norm(dim=0)
    return scores


def _head_scores(block: nn.Module, family: str, context: torch.Tensor | None) -> torch.Tensor:
    qkv, out, attention_path = _HEADS[family]
    heads = _heads(block, attention_path)
    w_o = linear_at(block, out).weight.detach().float()
    per_head = w_o.reshape(w_o.shape[0], heads, -1).norm(dim=(0, 2))
    if context is None:
        v = linear_at(block, qkv[2]).weight.detach().float()
        context = v.reshape(heads, -1).norm(dim=1)
    scores: torch.Tensor = context * per_head
    return scores


def _capture(
    module: nn.Module, linear: nn.Linear, batches: Sequence[dict[str, NDArray[Any]]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (input row, output row) of ``linear`` while the calibration batches run through ``module``."""
    inputs: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []

    def hook(_m: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        inputs.append(args[0].detach().reshape(-1, args[0].shape[-1]).float())
        outputs.append(out.detach().reshape(-1, out.shape[-1]).float())

    run_calibration(module, batches, hooks=[linear.register_forward_hook(hook)])
    return torch.cat(inputs), torch.cat(outputs)


def _prune_ffn_refit(
    module: nn.Module, block: nn.Module, family: str, fraction: float, batches: Sequence[dict[str, NDArray[Any]]]
) -> None:
    """Prune one FFN on the current (already partly pruned) model, then refit its output projection.

    The kept neurons' output weights are re-solved by ridge least squares so that the smaller FFN
    reproduces the full FFN's output on the calibration tokens (layers in order, each on the
    activations the pruned layers before it produce).
    """
    out_name = _FFN[family][1]
    out = linear_at(block, out_name)
    acts, target = _capture(module, out, batches)
    scores = acts.abs().mean(0) * out.weight.detach().float().norm(dim=0)
    keep = scores.topk(keep_count(scores.numel(), fraction)).indices.sort().values
    _shrink_ffn(block, family, keep)
    kept = torch.cat([acts[:, keep], torch.ones(acts.shape[0], 1)], 1).double()
    gram = kept.T @ kept
    gram += 1e-3 * gram.diagonal().mean() * torch.eye(gram.shape[0], dtype=gram.dtype)
    solution = torch.linalg.solve(gram, kept.T @ target.double())  # (kept + 1, hidden)
    new = linear_at(block, out_name)
    new.weight.copy_(solution[:-1].T.to(new.weight.dtype))
    if new.bias is not None:
        new.bias.copy_(solution[-1].to(new.bias.dtype))
    else:  # no bias to absorb the constant: refit without it
        new.weight.copy_(torch.linalg.lstsq(acts[:, keep].double(), target.double()).solution.T.to(new.weight.dtype))


def prune_blocks(
    module: nn.Module, config: Any, batches: Sequence[dict[str, NDArray[Any]]]
) -> tuple[nn.Module, list[str]]:
    """Prune ``module`` in place as ``config`` says; return it and sentences for the report."""
    blocks = find_blocks(module)
    _check(blocks, config)
    stats = _collect(module, blocks, batches) if batches else _Stats()
    notes = []
    remaining = list(range(len(blocks.modules)))
    if config.layers:
        if stats.influence:
            order = sorted(remaining, key=lambda i: stats.influence[i] / stats.counts[i])
        else:  # ShortGPT: deep layers change the residual stream least; keep the last one
            order = [*range(len(remaining) - 2, -1, -1), len(remaining) - 1]
        remove = sorted(order[: config.layers])
        notes.append(f"prune-structured removed layer(s) {remove} of {len(remaining)}")
        remaining = [i for i in remaining if i not in remove]
        blocks = _drop_layers(module, blocks, remove)
    with torch.no_grad():
        for block, original_index in zip(blocks.modules, remaining):
            if config.ffn and batches:
                _prune_ffn_refit(module, block, blocks.family, config.ffn, batches)
            elif config.ffn:
                scores = _ffn_scores(block, blocks.family)
                keep = scores.topk(keep_count(scores.numel(), config.ffn)).indices.sort().values
                _shrink_ffn(block, blocks.family, keep)
            if config.heads:
                scores = _head_scores(block, blocks.family, stats.heads.get(original_index))
                heads = scores.topk(keep_count(scores.numel(), config.heads)).indices.tolist()
                _shrink_heads(block, blocks.family, heads)
    if not batches:
        notes.append("prune-structured ranked units by weight magnitude (no calibration data)")
    return module, notes
