"""Host ↔ GPU copies through pinned memory, and fixed-shape padding of encoder batches.

Pinned (page-locked) host buffers let ``copy_(..., non_blocking=True)`` run as DMA without a
staging copy; one stream synchronisation after all output copies replaces one per tensor.
Padding batches to repeating shapes lets torch.compile / CUDA graphs reuse what they built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from aikit.contracts.backend import Arrays
from aikit.errors import BackendError

__all__ = ["PaddedShape", "pad_batch", "to_device", "to_host", "unpad_outputs"]


def to_device(array: NDArray[Any], device: torch.device, *, pin: bool) -> torch.Tensor:
    """Copy a numpy array to ``device`` (through pinned memory, asynchronously, when ``pin``)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cpu":
        return tensor
    if pin:
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=pin)


def to_host(values: Mapping[str, torch.Tensor], *, pin: bool) -> dict[str, NDArray[Any]]:
    """Copy GPU tensors back as numpy arrays (half precision widened to float32 on the GPU first)."""
    out: dict[str, torch.Tensor] = {}
    synchronize: list[torch.device] = []
    for name, value in values.items():
        value = value.detach()
        if value.dtype in (torch.float16, torch.bfloat16):
            value = value.float()
        if value.device.type == "cpu":
            out[name] = value
            continue
        host = torch.empty(value.shape, dtype=value.dtype, pin_memory=pin)
        host.copy_(value, non_blocking=pin)
        out[name] = host
        if value.device not in synchronize:
            synchronize.append(value.device)
    for device in synchronize:
        torch.cuda.current_stream(device).synchronize()  # the non_blocking copies must land before numpy reads
    return {name: t.numpy() for name, t in out.items()}


def outputs_to_tensors(out: Any) -> dict[str, torch.Tensor]:
    """Name what a module returned (same rules as the CPU backend): a tensor is ``logits``."""
    if isinstance(out, torch.Tensor):
        return {"logits": out}
    if isinstance(out, Mapping):
        return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
    if isinstance(out, (tuple, list)):
        tensors = [v for v in out if isinstance(v, torch.Tensor)]
        if tensors:
            return {"logits": tensors[0], **{f"output_{i}": t for i, t in enumerate(tensors[1:], 1)}}
    raise BackendError(f"the model returned {type(out).__name__}; expected a tensor, a dict or a ModelOutput")


@dataclass(frozen=True)
class PaddedShape:
    """The batch size and sequence length before padding (``length`` None: sequence not padded),
    and the padded length."""

    batch: int
    length: int | None
    padded_length: int | None = None


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def pad_batch(
    inputs: Arrays, *, multiple: int, pad_values: Mapping[str, int], sequence_keys: frozenset[str]
) -> tuple[dict[str, NDArray[Any]], PaddedShape]:
    """Pad the batch dimension to a power of two and the length of ``sequence_keys`` (2-D token
    arrays such as ``input_ids``) to a multiple of ``multiple``.

    Added rows and columns hold ``pad_values[key]`` (0 by default), so an ``attention_mask`` masks them
    out and real positions compute exactly what they would unpadded.
    """
    first = next(iter(inputs.values()))
    batch = int(first.shape[0])
    target_batch = 1 << max(0, (batch - 1).bit_length())
    length: int | None = None
    padded_length: int | None = None
    padded: dict[str, NDArray[Any]] = {}
    for key, array in inputs.items():
        shape = list(array.shape)
        shape[0] = target_batch
        if key in sequence_keys and array.ndim == 2:
            length = int(array.shape[1])
            padded_length = shape[1] = _round_up(length, multiple)
        if tuple(shape) == array.shape:
            padded[key] = array
            continue
        grown = np.full(shape, pad_values.get(key, 0), dtype=array.dtype)
        grown[tuple(slice(0, n) for n in array.shape)] = array
        padded[key] = grown
    return padded, PaddedShape(batch=batch, length=length, padded_length=padded_length)


def unpad_outputs(outputs: Mapping[str, torch.Tensor], shape: PaddedShape) -> dict[str, torch.Tensor]:
    """Cut padded rows (and, for ``(batch, length, ...)`` outputs, padded positions) back off."""
    cut: dict[str, torch.Tensor] = {}
    for key, value in outputs.items():
        if value.ndim >= 1:
            value = value[: shape.batch]
        if shape.length is not None and value.ndim >= 3 and value.shape[1] == shape.padded_length:
            value = value[:, : shape.length]
        cut[key] = value
    return cut
