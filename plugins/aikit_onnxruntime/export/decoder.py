"""Decoder LLMs to ONNX with an explicit KV cache: onnxruntime-genai's model builder, or aikit's own export.

Both layouts take ``input_ids``, ``attention_mask`` and ``past_key_values.{i}.key|value`` and
return ``logits`` and ``present.{i}.key|value``:

- the **builder** (``python -m onnxruntime_genai.models.builder``) emits ``GroupQueryAttention``
  with a shared past/present buffer of fixed capacity and fused kernels: the fast path for the
  architectures it supports (Llama, Mistral, Qwen, Phi, Gemma, ...);
- **aikit's export** (``torch.onnx.export`` of the transformers model with a ``DynamicCache``
  rebuilt from flat tensors) works for any causal LM the TorchScript exporter can trace; its
  cache is concatenated (``present = concat(past, new)``) and it takes ``position_ids``, so
  left-padded batches decode in one call.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from aikit_torch.kv_cache import cache_kwargs, returned_cache
from typing_extensions import override

from aikit.errors import BackendError
from aikit_onnxruntime.export.graphs import OPSET, legacy_exporter_warnings

__all__ = ["GENAI_ARCHITECTURES", "build_with_genai", "export_causal_lm", "genai_supports"]

# Architectures onnxruntime-genai's builder turns into a decoder with a KV cache (0.18).
GENAI_ARCHITECTURES = frozenset(
    {
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "PhiForCausalLM",
        "Phi3ForCausalLM",
        "GemmaForCausalLM",
        "Gemma2ForCausalLM",
        "OlmoForCausalLM",
        "GraniteForCausalLM",
        "NemotronForCausalLM",
        "SmolLM3ForCausalLM",
    }
)


def genai_supports(module: Any) -> bool:
    """Whether onnxruntime-genai is installed and its builder knows this model's architecture."""
    try:
        import onnxruntime_genai  # noqa: F401
    except ImportError:
        return False
    config = getattr(module, "config", None)
    architectures = getattr(config, "architectures", None) or [type(module).__name__]
    if architectures[0] not in GENAI_ARCHITECTURES or config is None:
        return False
    # ONNX Runtime's GroupQueryAttention CPU kernel needs head sizes that are multiples of 16.
    return kv_shape(config)[2] % 16 == 0


def build_with_genai(module: Any, tokenizer: Any, out_dir: Path, *, precision: str = "fp32") -> Path:
    """Run the builder on ``module`` (saved to a temporary Hugging Face folder); return ``model.onnx``.

    ``precision`` is ``"fp32"`` or ``"int4"`` (RTN, block 32, MatMulNBits). The builder runs in
    a subprocess: it prints a lot and keeps global state.
    """
    with tempfile.TemporaryDirectory(prefix="aikit-genai-") as tmp:
        hf = Path(tmp) / "hf"
        # Not module.save_pretrained: transformers refuses it for models it marks as GGUF-quantized
        # (their weights are plain float32 here), so write the config and weights directly.
        from safetensors.torch import save_model

        hf.mkdir()
        module.config.save_pretrained(hf)
        save_model(module, str(hf / "model.safetensors"))
        if tokenizer is not None:  # the builder writes the tokenizer files genai reads
            tokenizer.save_pretrained(hf)
        config_file = hf / "config.json"
        config = json.loads(config_file.read_text(encoding="utf-8"))
        config.pop("quantization_config", None)  # left by GGUF loads; the builder would try to honour it
        if not config.get("architectures"):
            config["architectures"] = [type(module).__name__]
        config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
        cmd = [
            sys.executable, "-m", "onnxruntime_genai.models.builder",
            "-i", str(hf), "-o", str(out_dir), "-p", precision, "-e", "cpu", "-c", str(Path(tmp) / "cache"),
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not (out_dir / "model.onnx").is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-8:]
            raise BackendError("onnxruntime-genai's model builder failed:\n" + "\n".join(tail))
    return out_dir / "model.onnx"


class _FlatCache(torch.nn.Module):
    """A causal LM whose KV cache is flat tensors in and out (what ONNX graphs can carry)."""

    def __init__(self, model: torch.nn.Module, layers: int) -> None:
        super().__init__()
        self.model = model
        self.layers = layers

    @override
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, *past: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        from transformers.cache_utils import DynamicCache

        cache = DynamicCache(config=self.model.config)  # type: ignore[arg-type]
        for i in range(self.layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **cache_kwargs(self.model, cache),
        )
        present: list[torch.Tensor] = []
        for layer in returned_cache(out).layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)


def kv_shape(config: Any) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) of a transformers decoder config.

    Architectures name these fields differently (``n_layer``/``n_head``/``n_embd`` in GPT-2,
    ``num_hidden_layers``/... in Llama): optimum's normalized configs map them. An architecture
    optimum does not know falls back to transformers' standard names. Without a separate number of
    KV heads, every attention head has its own (no grouped-query attention).
    """
    from optimum.utils import NormalizedConfigManager

    try:
        normalized: Any = NormalizedConfigManager.get_normalized_config_class(config.model_type)(config)
    except (KeyError, AttributeError):  # not in optimum's table: transformers' standard names
        normalized = config
    layers = int(getattr(normalized, "num_layers", None) or config.num_hidden_layers)
    heads = int(normalized.num_attention_heads)
    kv = int(getattr(normalized, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or int(normalized.hidden_size) // heads)
    return layers, kv, head_dim


def export_causal_lm(module: Any, path: Path) -> None:
    """aikit's own decoder export (concatenated cache, ``position_ids`` input)."""
    config = module.config
    layers, kv, head_dim = kv_shape(config)
    wrapper = _FlatCache(module, layers).eval()
    batch, past_len, step = 2, 3, 2
    ids = torch.randint(0, int(config.vocab_size), (batch, step))
    mask = torch.ones(batch, past_len + step, dtype=torch.long)
    positions = torch.arange(past_len, past_len + step).expand(batch, step).contiguous()
    past = [torch.randn(batch, kv, past_len, head_dim) for _ in range(2 * layers)]
    inputs, outputs = ["input_ids", "attention_mask", "position_ids"], ["logits"]
    dynamic: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "total"},
        "position_ids": {0: "batch", 1: "sequence"},
        "logits": {0: "batch", 1: "sequence"},
    }
    for i in range(layers):
        for kind in ("key", "value"):
            inputs.append(f"past_key_values.{i}.{kind}")
            outputs.append(f"present.{i}.{kind}")
            dynamic[inputs[-1]] = {0: "batch", 2: "past"}
            dynamic[outputs[-1]] = {0: "batch", 2: "total"}
    try:
        with legacy_exporter_warnings(), torch.no_grad():
            torch.onnx.export(
                wrapper,
                (ids, mask, positions, *past),
                str(path),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
        module.eval()  # the exporter restored the wrapper's training flag on every submodule
    except Exception as exc:
        raise BackendError(
            f"cannot export {type(module).__name__} with a KV cache: {type(exc).__name__}: {exc}"
        ) from exc


def empty_past(batch: int, kv: int, head_dim: int, dtype: Any = np.float32) -> np.ndarray[Any, Any]:
    return np.zeros((batch, kv, 0, head_dim), dtype=dtype)
