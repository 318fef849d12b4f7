"""KV-cache shapes read from configs whose architectures name their fields differently."""

from __future__ import annotations

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

from aikit_onnxruntime.export.decoder import kv_shape  # noqa: E402


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        # grouped-query attention: 2 KV heads shared by 8 query heads
        (
            lambda: transformers.LlamaConfig(
                num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2, hidden_size=64
            ),
            (3, 2, 8),
        ),
        (
            lambda: transformers.Qwen2Config(
                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, hidden_size=64
            ),
            (2, 1, 16),
        ),
        # GPT-2 names them n_layer / n_head / n_embd (optimum's normalized config maps them)
        (lambda: transformers.GPT2Config(n_layer=5, n_head=4, n_embd=32), (5, 4, 8)),
        # an explicit head_dim wins over hidden_size // heads
        (
            lambda: transformers.LlamaConfig(
                num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4, hidden_size=64, head_dim=32
            ),
            (1, 4, 32),
        ),
    ],
)
def test_kv_shape_across_architectures(config: object, expected: tuple[int, int, int]) -> None:
    assert kv_shape(config()) == expected  # type: ignore[operator]


def test_an_architecture_optimum_does_not_know_uses_the_standard_names() -> None:
    class Custom(transformers.PretrainedConfig):
        model_type = "aikit-test-unknown"

    assert kv_shape(Custom(num_hidden_layers=5, num_attention_heads=2, hidden_size=8)) == (5, 2, 4)
