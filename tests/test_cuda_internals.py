"""The CUDA backend's device-agnostic machinery, run for real on the CPU: static-cache decoding,
fixed-shape padding, host transfers, torchao quantization and its safetensors round trip."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from aikit_cuda import CudaFloat8, CudaInt4WeightOnly, CudaInt8WeightOnly
from aikit_cuda.quantization import CudaFloat8Strategy, CudaInt4WeightOnlyStrategy, quantize_module
from aikit_cuda.serialization import has_quantized_weights, load_quantized_module, save_quantized_module
from aikit_cuda.static_decoding import StaticCachePool, decode_static, supports_static_cache
from aikit_cuda.transfer import pad_batch, to_device, to_host, unpad_outputs
from aikit_torch.decoding import decode

import aikit
from aikit.contracts.options import GenerationOptions
from aikit.contracts.strategy import CompressionContext
from aikit.errors import CompressionError, ConfigError


@pytest.fixture(scope="module")
def lively_llama() -> Any:
    """A random Llama whose large weights make greedy choices vary from step to step."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        initializer_range=0.5,
    )
    model: Any = LlamaForCausalLM(config)
    return model.eval()


def _left_padded() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([[0, 0, 0, 5, 9, 14], [7, 3, 22, 41, 8, 2]])
    return ids, (ids != 0).long()


def _steps(iterator: Any) -> np.ndarray[Any, Any]:
    return np.stack(list(iterator))


def test_static_cache_decoding_equals_the_cpu_loop(lively_llama: Any) -> None:
    ids, mask = _left_padded()
    options = GenerationOptions(max_new_tokens=12)
    reference = _steps(decode(lively_llama, ids, mask, options))
    assert len(set(reference[:, 1].tolist())) > 2  # the model really changes its mind
    pool = StaticCachePool(bucket=16)
    assert (_steps(decode_static(lively_llama, ids, mask, options, pool=pool)) == reference).all()
    # The pooled cache is reset and reused (same batch, same length bucket): same tokens again.
    first = pool._cache
    assert (_steps(decode_static(lively_llama, ids, mask, options, pool=pool)) == reference).all()
    assert pool._cache is first


def test_static_cache_sampling_and_penalty_follow_the_seed(lively_llama: Any) -> None:
    ids, mask = _left_padded()
    options = GenerationOptions(max_new_tokens=8, do_sample=True, top_k=20, seed=3, repetition_penalty=1.3)
    expected = _steps(decode(lively_llama, ids, mask, options))
    assert (_steps(decode_static(lively_llama, ids, mask, options, pool=StaticCachePool(bucket=8))) == expected).all()


def test_an_unfinished_generator_does_not_share_its_cache(lively_llama: Any) -> None:
    ids, mask = _left_padded()
    options = GenerationOptions(max_new_tokens=6)
    pool = StaticCachePool(bucket=16)
    held = decode_static(lively_llama, ids, mask, options, pool=pool)
    head = next(held)  # holds the pooled cache
    other = _steps(decode_static(lively_llama, ids, mask, options, pool=pool))
    rest = _steps(held)
    assert (np.vstack([head[None], rest]) == other).all()


def test_static_cache_support(lively_llama: Any, tiny_model_dir: Callable[[str], Path]) -> None:
    assert supports_static_cache(lively_llama)
    t5 = aikit.Model.load(tiny_model_dir("t5-seq2seq"))
    assert not supports_static_cache(t5.backend.torch_module())


def test_padding_to_fixed_shapes_leaves_real_positions_unchanged(tiny_model_dir: Callable[[str], Path]) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-token-classification"))
    batch = model.task.collate(
        model.task.preprocess(["good movie", "the cat is on the big red river", "paris"], max_length=None)
    )
    padded, shape = pad_batch(
        batch, multiple=16, pad_values={}, sequence_keys=frozenset({"input_ids", "attention_mask"})
    )
    assert padded["input_ids"].shape == (4, 16) and shape.batch == 3 and shape.length == batch["input_ids"].shape[1]
    module = model.backend.torch_module()
    with torch.inference_mode():
        plain = module(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits
        grown = module(**{k: torch.from_numpy(v) for k, v in padded.items()}).logits
    cut = unpad_outputs({"logits": grown}, shape)["logits"]
    assert cut.shape == plain.shape
    torch.testing.assert_close(cut, plain, atol=1e-5, rtol=1e-5)


def test_host_transfers_widen_half_precision() -> None:
    array = np.arange(6, dtype=np.int64).reshape(2, 3)
    assert to_device(array, torch.device("cpu"), pin=False).dtype == torch.int64
    out = to_host({"x": torch.ones(2, dtype=torch.bfloat16), "ids": torch.arange(3)}, pin=False)
    assert out["x"].dtype == np.float32 and out["ids"].tolist() == [0, 1, 2]


# ---------------------------------------------------------------------- quantization
def test_int8_weights_quantize_and_round_trip_through_safetensors(
    tiny_model_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction")
    original = model.backend.torch_module()
    quantized = copy.deepcopy(original)
    names = quantize_module(quantized, CudaInt8WeightOnly())
    assert names and has_quantized_weights(quantized) and not has_quantized_weights(original)
    inputs = {"input_ids": torch.tensor([[2, 15, 16, 40, 3]]), "attention_mask": torch.ones(1, 5, dtype=torch.long)}
    with torch.inference_mode():
        before, after = original(**inputs).last_hidden_state, quantized(**inputs).last_hidden_state
    assert 0 < float((before - after).abs().max()) < 0.05
    state = save_quantized_module(quantized, tmp_path)
    assert state == {"module": {"kind": "transformers", "class": "BertModel"}, "weights": "torchao"}
    reloaded = load_quantized_module(tmp_path, model.parts, state)
    assert has_quantized_weights(reloaded)
    with torch.inference_mode():
        assert torch.equal(reloaded(**inputs).last_hidden_state, after)
    assert save_quantized_module(original, tmp_path / "plain") is None


def test_int4_and_fp8_layer_rules_skip_what_the_kernels_cannot_run(lively_llama: Any) -> None:
    from aikit_cuda.quantization import _fits

    layers = dict(lively_llama.named_modules())
    assert not _fits("lm_head", layers["lm_head"], CudaInt8WeightOnly())
    assert _fits("model.layers.0.mlp.up_proj", layers["model.layers.0.mlp.up_proj"], CudaInt4WeightOnly(group_size=32))
    assert not _fits(
        "model.layers.0.mlp.down_proj", layers["model.layers.0.mlp.down_proj"], CudaInt4WeightOnly(group_size=128)
    )
    assert _fits("model.layers.0.self_attn.k_proj", layers["model.layers.0.self_attn.k_proj"], CudaFloat8())


def test_gpu_strategy_configs_validate() -> None:
    with pytest.raises(ConfigError, match="group_size must be one of"):
        CudaInt4WeightOnly(group_size=100)
    with pytest.raises(ConfigError, match="skip must be a tuple of layer names"):
        CudaInt8WeightOnly(skip=("",))
    assert CudaInt4WeightOnly.from_fields({"group_size": 64, "skip": []}) == CudaInt4WeightOnly(group_size=64, skip=())
    assert CudaFloat8(activations=False).to_dict() == {
        "strategy": "cuda-fp8",
        "skip": ["lm_head"],
        "activations": False,
    }


def test_gpu_strategies_refuse_the_cpu_backend(tiny_model_dir: Callable[[str], Path]) -> None:
    model = aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction")
    for name in ("cuda-int8-weight-only", "cuda-int4-weight-only", "cuda-fp8"):
        assert aikit.get_strategy(name).backends == frozenset({"cuda"})
        with pytest.raises(CompressionError, match=f"strategy '{name}' runs on backend\\(s\\) cuda, not on 'torch'"):
            model.compress(name)


class _GpuStandIn:
    """What a strategy reads from a CUDA backend, for checking its GPU requirements without a GPU."""

    name = "cuda"
    index = 0

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def torch_module(self) -> torch.nn.Module:
        return self.module


def test_gpu_strategies_check_compute_capability_and_dtype(lively_llama: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA A100")
    context = CompressionContext(task=None)  # type: ignore[arg-type]
    stand_in: Any = _GpuStandIn(lively_llama)
    with pytest.raises(
        CompressionError, match=r"cuda-fp8 needs a GPU of compute capability 8\.9 or newer; NVIDIA A100 has 8\.0"
    ):
        CudaFloat8Strategy().apply(stand_in, CudaFloat8(), context)
    with pytest.raises(CompressionError, match="cuda-int4-weight-only needs the model in bfloat16"):
        CudaInt4WeightOnlyStrategy().apply(stand_in, CudaInt4WeightOnly(), context)
