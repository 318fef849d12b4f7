"""The PyTorch CPU backend: eval mode, ``torch.inference_mode``, configurable threads and dtype.

Importing this module does not import torch (about 0.8 s and 200 MB here): the class is registered
with every plugin host, including processes that never run a torch model (a GGUF file whose graph
ONNX Runtime opens from the cache). torch is imported by the methods that use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from typing_extensions import override

from aikit.contracts.backend import Arrays, Backend
from aikit.contracts.options import BackendOptions, GenerationOptions
from aikit.contracts.parts import ModelParts
from aikit.errors import BackendError, ConfigError

if TYPE_CHECKING:
    import torch


def to_numpy(value: torch.Tensor) -> NDArray[Any]:
    import torch

    value = value.detach()
    if value.dtype in (torch.float16, torch.bfloat16):
        value = value.float()
    return value.cpu().numpy()


def outputs_to_arrays(out: Any) -> dict[str, NDArray[Any]]:
    """Normalise what a module returns: a tensor is ``logits``; a ModelOutput/dict keeps its keys."""
    import torch

    if isinstance(out, torch.Tensor):
        return {"logits": to_numpy(out)}
    if isinstance(out, Mapping):
        return {k: to_numpy(v) for k, v in out.items() if isinstance(v, torch.Tensor)}
    if isinstance(out, (tuple, list)):
        tensors = [v for v in out if isinstance(v, torch.Tensor)]
        if tensors:
            return {
                "logits": to_numpy(tensors[0]),
                **{f"output_{i}": to_numpy(t) for i, t in enumerate(tensors[1:], 1)},
            }
    raise BackendError(f"the model returned {type(out).__name__}; expected a tensor, a dict or a ModelOutput")


class TorchBackend(Backend):
    """Runs a ``torch.nn.Module`` on the CPU.

    ``threads`` (default: every core) sets ``torch.set_num_threads``, which is process-wide.
    ``dtype`` converts floating-point weights (``float32``, ``bfloat16``, ``float16``).
    """

    name = "torch"
    description = "PyTorch on the CPU"
    accepts = frozenset({"torch"})
    can_generate = True
    priority = 10
    devices: ClassVar[frozenset[str]] = frozenset({"cpu"})
    default_device = "cpu"

    def __init__(self, module: torch.nn.Module, options: BackendOptions) -> None:
        import torch

        from aikit_torch.modules import is_transformers_model

        self.options = options
        self.device = torch.device(options.device or self.default_device)
        self.threads = options.threads or os.cpu_count() or 1
        if self.device.type == "cpu":
            torch.set_num_threads(self.threads)
        if options.extra:
            raise ConfigError(f"backend {self.name!r} takes no backend_options; got {', '.join(sorted(options.extra))}")
        module = module.eval()
        if options.dtype is not None:
            module = module.to(getattr(torch, options.dtype))  # a name BackendOptions checked: float32, ...
        self.module = module.to(self.device)
        self._positional = not is_transformers_model(module)

    @classmethod
    @override
    def from_parts(cls, parts: ModelParts, options: BackendOptions) -> Backend:
        import torch

        if not isinstance(parts.module, torch.nn.Module):
            raise BackendError(f"backend {cls.name!r} needs a torch.nn.Module, got {type(parts.module).__name__}")
        return cls(parts.module, options)

    @override
    def forward(self, inputs: Arrays) -> dict[str, NDArray[Any]]:
        import torch

        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in inputs.items()}
        dtype = self.dtype
        if dtype is not torch.float32:
            tensors = {k: t.to(dtype) if t.is_floating_point() else t for k, t in tensors.items()}
        with torch.inference_mode():
            # Plain modules take positional tensors; transformers models take named inputs.
            out = self.module(*tensors.values()) if self._positional else self.module(**tensors)
        return outputs_to_arrays(out)

    @property
    def dtype(self) -> torch.dtype:
        import torch

        for p in self.module.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    @override
    def generate(self, inputs: Arrays, options: GenerationOptions) -> Iterator[NDArray[np.int64]]:
        import torch

        from aikit_torch.decoding import decode

        ids = torch.from_numpy(np.ascontiguousarray(inputs["input_ids"])).to(self.device)
        mask = torch.from_numpy(np.ascontiguousarray(inputs["attention_mask"])).to(self.device)
        return decode(self.module, ids, mask, options)

    @override
    def save(self, directory: Path) -> dict[str, Any]:
        from aikit_torch.modules import save_module

        spec = save_module(self.module, directory)
        return {"module": spec, "dtype": str(self.dtype).removeprefix("torch.")}

    @classmethod
    @override
    def load(cls, directory: Path, parts: ModelParts, state: Mapping[str, Any], options: BackendOptions) -> Backend:
        from aikit_torch.modules import restore_module

        return cls(restore_module(directory, parts, state), options)

    @override
    def torch_module(self) -> Any:
        return self.module

    @override
    def with_module(self, module: Any) -> Backend:
        return type(self)(module, self.options)

    @override
    def describe(self) -> dict[str, Any]:
        import torch

        return {
            "backend": self.name,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "threads": self.threads if self.device.type == "cpu" else None,
            "torch": torch.__version__,
        }
