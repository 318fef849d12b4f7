"""Activation statistics from calibration batches: SmoothQuant scales and static int8 ranges."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from numpy.typing import NDArray
from torch import nn

from aikit.compress.tools import run_calibration

__all__ = ["activation_ranges", "input_absmax", "smoothing_scales"]

_SAMPLE = 65536  # values kept per layer and batch for the percentile estimate


def input_absmax(
    module: nn.Module, names: Sequence[str], batches: Sequence[dict[str, NDArray[Any]]]
) -> dict[str, torch.Tensor]:
    """Per-input-channel max |x| seen by each named Linear over the calibration batches."""
    stats: dict[str, torch.Tensor] = {}

    def hook_for(name: str) -> Any:
        def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
            x = inputs[0].detach()
            a = x.abs().reshape(-1, x.shape[-1]).amax(0).float()
            stats[name] = torch.maximum(stats[name], a) if name in stats else a

        return hook

    handles = [module.get_submodule(n).register_forward_hook(hook_for(n)) for n in names]
    run_calibration(module, batches, hooks=handles)
    return stats


def smoothing_scales(module: nn.Module, absmax: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """SmoothQuant (Xiao et al., 2023): per-channel multipliers for x (weights get the inverse).

    ``s_j = max|x_j|^alpha / max|W_:j|^(1 - alpha)``; the layer computes ``(x / s) @ (W * s)^T``, so
    the returned multiplier is ``1 / s`` (clamped so that dead channels stay harmless).
    """
    out: dict[str, torch.Tensor] = {}
    for name, act in absmax.items():
        linear = module.get_submodule(name)
        assert isinstance(linear, nn.Linear)
        w = linear.weight.detach().abs().amax(0).float().clamp_min(1e-5)
        s = (act.clamp_min(1e-5).pow(alpha) / w.pow(1 - alpha)).clamp(1e-2, 1e3)
        out[name] = (1.0 / s).contiguous()
    return out


def activation_ranges(
    module: nn.Module,
    names: Sequence[str],
    batches: Sequence[dict[str, NDArray[Any]]],
    smooth: dict[str, torch.Tensor],
    percentile: float,
) -> dict[str, tuple[float, float, float, float]]:
    """(input low, input high, output low, output high) per Linear, as ``percentile`` of what calibration saw.

    Inputs are measured after the SmoothQuant multiplier, as the quantized layer will see them.
    """
    samples: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    out_samples: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    generator = torch.Generator().manual_seed(0)

    def sample(x: torch.Tensor) -> torch.Tensor:
        flat = x.detach().reshape(-1).float()
        if flat.numel() > _SAMPLE:
            flat = flat[torch.randint(0, flat.numel(), (_SAMPLE,), generator=generator)]
        return flat

    def hook_for(name: str) -> Any:
        def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            x = inputs[0]
            if name in smooth:
                x = x * smooth[name]
            samples[name].append(sample(x))
            out_samples[name].append(sample(out))

        return hook

    handles = [module.get_submodule(n).register_forward_hook(hook_for(n)) for n in names]
    run_calibration(module, batches, hooks=handles)
    q = torch.tensor([(100.0 - percentile) / 100.0, percentile / 100.0])
    ranges: dict[str, tuple[float, float, float, float]] = {}
    for name in names:
        lo_in, hi_in = torch.quantile(torch.cat(samples[name]), q).tolist()
        lo_out, hi_out = torch.quantile(torch.cat(out_samples[name]), q).tolist()
        ranges[name] = (lo_in, hi_in, lo_out, hi_out)
    return ranges
