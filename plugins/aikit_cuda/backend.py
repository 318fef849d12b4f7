"""The CUDA backend: the torch backend's module handling on an NVIDIA GPU, in half precision,
with SDPA attention, pinned-memory transfers, static-cache decoding and optional torch.compile.

Importing this module does not import torch (every plugin host registers the class, also in
processes that never run a torch model); the methods import it and the helper modules.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from aikit_torch.backend import TorchBackend
from numpy.typing import NDArray
from typing_extensions import override

import aikit_cuda.probe as probe
from aikit.contracts.backend import Arrays, Backend
from aikit.contracts.options import BackendOptions, GenerationOptions
from aikit.contracts.parts import ModelParts
from aikit.errors import BackendError, BackendUnavailableError, ConfigError
from aikit_cuda.options import CudaOptions

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("aikit.cuda")

_SEQUENCE_KEYS = frozenset({"input_ids", "attention_mask", "token_type_ids"})


class CudaBackend(TorchBackend):
    """Runs a ``torch.nn.Module`` on one NVIDIA GPU (``device="cuda"`` or ``"cuda:N"``).

    Weights are cast to bfloat16 where the GPU supports it, else float16 (float32 for model families
    that overflow in float16); ``dtype="float32"`` keeps full precision. ``backend_options`` are
    described by ``aikit_cuda.CudaOptions`` (``compile``, ``static_cache``, ``attn_implementation``...).
    """

    name = "cuda"
    description = "PyTorch on an NVIDIA GPU (half precision, SDPA, static KV cache, torch.compile)"
    accepts = frozenset({"torch"})
    can_generate = True
    priority = 20  # above the CPU torch backend (10): backend="auto" prefers a GPU when one is usable
    devices: ClassVar[frozenset[str]] = frozenset({"cuda"})
    default_device = "cuda"

    def __init__(self, module: torch.nn.Module, options: BackendOptions, *, cast: bool = True) -> None:
        import torch

        from aikit_cuda.static_decoding import StaticCachePool

        reason = self.unavailable_reason()
        if reason:
            raise BackendUnavailableError(f"backend 'cuda' cannot run here: {reason}")
        self.cuda_options = CudaOptions.from_mapping(options.extra)
        index = probe.parse_device(options.device, probe.probe().device_count)
        self.index = index
        dtype = probe.default_dtype(module, options.dtype, bf16=probe.bf16_supported(index)) if cast else None
        self._set_attention(module)
        # The CPU backend does the placement (eval, dtype, device); our own options stay out of its way.
        super().__init__(module, replace(options, device=f"cuda:{index}", dtype=dtype, extra={}))
        self.options = options
        self._pool = StaticCachePool(self.cuda_options.cache_bucket)
        self._step: Any = None
        self._runner: Any = self.module
        mode = self.cuda_options.compile_mode
        if mode is not None:
            self._runner = torch.compile(self.module, mode=mode, dynamic=False)

    @classmethod
    @override
    def unavailable_reason(cls) -> str | None:
        return probe.unavailable_reason()

    def _set_attention(self, module: torch.nn.Module) -> None:
        from aikit_torch.modules import is_transformers_model

        wanted = self.cuda_options.attn_implementation
        if wanted is None or not is_transformers_model(module):
            return
        config = getattr(module, "config", None)
        if getattr(config, "_attn_implementation", None) == wanted:
            return
        try:
            module.set_attn_implementation(wanted)  # type: ignore[operator]
        except (ValueError, ImportError) as exc:
            if wanted == "sdpa":  # the default: models without an SDPA path keep their own attention
                logger.info("%s keeps its attention implementation: %s", type(module).__name__, exc)
                return
            raise ConfigError(
                f"backend_options attn_implementation={wanted!r} does not work for this model: {exc}"
            ) from exc

    # ------------------------------------------------------------------ running
    @override
    def forward(self, inputs: Arrays) -> dict[str, NDArray[Any]]:
        import torch

        from aikit_cuda.transfer import outputs_to_tensors, pad_batch, to_device, to_host, unpad_outputs

        multiple = self.cuda_options.padding_multiple
        shape = None
        if self.cuda_options.compile_mode is not None or multiple > 1:
            # Repeating shapes let a compiled graph be reused; masked padding leaves real positions unchanged.
            keys: frozenset[str] = frozenset() if self._positional else _SEQUENCE_KEYS
            inputs, shape = pad_batch(inputs, multiple=multiple, pad_values={}, sequence_keys=keys)
        pin = self.cuda_options.pin_memory
        tensors = {k: to_device(v, self.device, pin=pin) for k, v in inputs.items()}
        dtype = self.dtype
        if dtype is not torch.float32:
            tensors = {k: t.to(dtype) if t.is_floating_point() else t for k, t in tensors.items()}
        with torch.inference_mode():
            out = self._runner(*tensors.values()) if self._positional else self._runner(**tensors)
        named = outputs_to_tensors(out)
        if shape is not None:
            named = unpad_outputs(named, shape)
        return to_host(named, pin=pin)

    @override
    def generate(self, inputs: Arrays, options: GenerationOptions) -> Iterator[NDArray[np.int64]]:
        from aikit_torch.decoding import decode

        from aikit_cuda.static_decoding import decode_static, supports_static_cache
        from aikit_cuda.transfer import to_device

        pin = self.cuda_options.pin_memory
        ids = to_device(inputs["input_ids"], self.device, pin=pin)
        mask = to_device(inputs["attention_mask"], self.device, pin=pin)
        if self.cuda_options.static_cache and supports_static_cache(self.module):
            return decode_static(self.module, ids, mask, options, pool=self._pool, step=self._decode_step())
        return decode(self.module, ids, mask, options)

    def _decode_step(self) -> Any:
        """The one-token forward, compiled on first use when ``compile`` is on (CUDA graphs replay it)."""
        mode = self.cuda_options.compile_mode
        if mode is None:
            return None
        if self._step is None:
            import torch

            self._step = torch.compile(self.module.forward, mode=mode, fullgraph=True, dynamic=False)
        return self._step

    # ------------------------------------------------------------------ artifacts
    @override
    def save(self, directory: Path) -> dict[str, Any]:
        from aikit_cuda.serialization import save_quantized_module

        state = save_quantized_module(self.module, directory)
        if state is None:
            return {**super().save(directory), "weights": "plain"}
        return {**state, "dtype": str(self.dtype).removeprefix("torch.")}

    @classmethod
    @override
    def load(cls, directory: Path, parts: ModelParts, state: Mapping[str, Any], options: BackendOptions) -> Backend:
        if state.get("weights") == "torchao":
            from aikit_cuda.serialization import load_quantized_module

            return cls(load_quantized_module(directory, parts, state), options, cast=False)
        return super().load(directory, parts, state, options)

    @override
    def with_module(self, module: Any) -> Backend:
        """The same settings on ``module``, which keeps its own dtype (a strategy chose it)."""
        import torch

        if not isinstance(module, torch.nn.Module):
            raise BackendError(f"backend 'cuda' needs a torch.nn.Module, got {type(module).__name__}")
        return type(self)(module, self.options, cast=False)

    @override
    def describe(self) -> dict[str, Any]:
        import torch

        major, minor = probe.compute_capability(self.index)
        return {
            "backend": self.name,
            "device": str(self.device),
            "gpu": torch.cuda.get_device_name(self.index),
            "compute_capability": f"{major}.{minor}",
            "dtype": str(self.dtype).removeprefix("torch."),
            "attn_implementation": getattr(getattr(self.module, "config", None), "_attn_implementation", None),
            "compile": self.cuda_options.compile_mode,
            "static_cache": self.cuda_options.static_cache,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
        }
