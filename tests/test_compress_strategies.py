"""What each strategy does to the weights, and the accuracy guard (tiny real models)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import aikit

TEXTS = [f"sentence {i}: the {'quick ' * (i % 5)}brown fox jumps over {i} lazy dogs" for i in range(24)]


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Any) -> aikit.Model:
    return aikit.Model.load(tiny_model_dir("bert-embedding"), task="feature-extraction")


def _module(model: aikit.Model) -> torch.nn.Module:
    module = model.backend.torch_module()
    assert isinstance(module, torch.nn.Module)
    return module


def test_int8_dynamic_stores_int8_weights_and_embeddings(embedder: aikit.Model) -> None:
    state = _module(embedder.compress("int8-dynamic", measure_speed=False)).state_dict()
    assert state["embeddings.word_embeddings.weight_int8"].dtype == torch.int8
    assert state["encoder.layer.0.intermediate.dense.weight_int8"].dtype == torch.int8
    assert not any(k.endswith("dense.weight") for k in state)


def test_hqq_beats_round_to_nearest(embedder: aikit.Model) -> None:
    def mean_error(method: str) -> float:
        report = embedder.compress(
            f"int4-weight-only:group_size=32,method={method}", measure_speed=False
        ).compression_report
        errors = [la.error for la in report.layers if la.error is not None]
        return sum(errors) / len(errors)

    assert mean_error("hqq") < mean_error("rtn")


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_pruning_reaches_target_sparsity(embedder: aikit.Model, scope: str) -> None:
    small = embedder.compress(f"prune-magnitude:sparsity=0.6,scope={scope}", measure_speed=False)
    module = _module(small)
    weights = [m.weight for m in module.modules() if isinstance(m, torch.nn.Linear)]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.6, abs=0.01)
    if scope == "layer":
        assert all(float((w == 0).float().mean()) == pytest.approx(0.6, abs=0.02) for w in weights)


def test_two_four_sparsity_pattern(embedder: aikit.Model) -> None:
    module = _module(embedder.compress("prune-2:4", measure_speed=False))
    weight = module.get_submodule("encoder.layer.0.intermediate.dense").weight
    assert (weight.reshape(weight.shape[0], -1, 4) != 0).sum(-1).max() <= 2
    assert any(
        "accuracy-only" in n for n in embedder.compress("prune-2:4", measure_speed=False).compression_report.notes
    )


def test_structured_pruning_physically_shrinks(embedder: aikit.Model) -> None:
    small = embedder.compress(
        "prune-structured:heads=0.5,ffn=0.5,layers=1,recovery_seconds=2", calibration=TEXTS, measure_speed=False
    )
    module = _module(small)
    assert len(module.encoder.layer) == 1
    block = module.encoder.layer[0]
    assert block.intermediate.dense.weight.shape == (32, 32) and block.output.dense.weight.shape == (32, 32)
    assert block.attention.self.query.weight.shape == (16, 32) and block.attention.self.num_attention_heads == 2
    report = small.compression_report
    assert report.size_after_bytes < report.size_before_bytes and report.parameters_kept < 0.8
    assert any(la.kind == "removed" for la in report.layers)
    assert any("recovery" in n and "distillation steps" in n for n in report.notes)


def test_structured_head_pruning_refuses_grouped_query_attention(tiny_model_dir: Any) -> None:
    decoder = aikit.Model.load(tiny_model_dir("llama-causal-lm"))
    with pytest.raises(aikit.CompressionError, match="head pruning supports BERT"):
        decoder.compress("prune-structured:heads=0.5", measure_speed=False)


def test_structured_pruning_after_quantization_explains_the_order(embedder: aikit.Model) -> None:
    with pytest.raises(aikit.CompressionError, match="before quantization"):
        embedder.compress("int8-dynamic", "prune-structured:ffn=0.5", measure_speed=False)


def test_accuracy_guard_keeps_sensitive_layers_in_full_precision(embedder: aikit.Model) -> None:
    plain = embedder.compress("int4-weight-only:group_size=32,method=rtn", calibration=TEXTS, measure_speed=False)
    drop = plain.compression_report.quality_drop
    assert drop is not None and drop > 0
    bound = drop / 3
    guarded = embedder.compress(
        "int4-weight-only:group_size=32,method=rtn", calibration=TEXTS, max_quality_drop=bound, measure_speed=False
    )
    report = guarded.compression_report
    assert report.excluded_layers and report.quality_drop is not None and report.quality_drop <= bound
    assert guarded.transformations[0]["exclude"] == report.excluded_layers
    assert any("accuracy guard" in n for n in report.notes)
    module = _module(guarded)
    assert all(isinstance(module.get_submodule(n), torch.nn.Linear) for n in report.excluded_layers)


def test_guard_without_layer_choice_raises_with_numbers(embedder: aikit.Model) -> None:
    with pytest.raises(aikit.CompressionError, match=r"quality drop 0\.\d+ .*exceeds max_quality_drop=1e-09"):
        embedder.compress("prune-structured:ffn=0.9,recovery_seconds=0", calibration=TEXTS, max_quality_drop=1e-9)


@pytest.mark.parametrize("spec", ["int8-weight-only", "int4-weight-only:group_size=32"])
def test_weight_only_kernels_agree(embedder: aikit.Model, spec: str) -> None:
    packed = embedder.compress(f"{spec}{',' if ':' in spec else ':'}kernel=packed", measure_speed=False)
    unpacked = embedder.compress(f"{spec}{',' if ':' in spec else ':'}kernel=unpacked", measure_speed=False)
    assert packed.transformations[0]["kernel"] == "packed"
    from aikit_quant.weight_only import WeightOnlyLinear

    def kernels(model: aikit.Model) -> set[bool]:
        return {m.packed for m in _module(model).modules() if isinstance(m, WeightOnlyLinear)}

    assert kernels(packed) == {True} and kernels(unpacked) == {False}  # the choice reached every layer
    np.testing.assert_allclose(packed.embed(TEXTS[:6]), unpacked.embed(TEXTS[:6]), atol=2e-5)


def test_recovery_keeps_the_best_held_out_weights(embedder: aikit.Model) -> None:
    import copy

    from aikit_prune.recovery import _hidden, cosine_loss, distill

    from aikit.compress.tools import to_tensors
    from aikit.measure.quality import prepare_data

    teacher = _module(embedder)
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        student.encoder.layer[0].output.dense.weight.mul_(0.5)  # a damaged student
    batches = prepare_data(embedder.task, TEXTS * 4).fit
    # a learning rate this large wrecks the weights: the held-out check must keep the best ones
    result = distill(student, teacher, batches, seconds=3, learning_rate=0.5, progress=lambda *_: None)
    assert result.steps > 0
    assert result.held_out_after <= result.held_out_before
    # the student really ends with the weights that scored held_out_after (every 8th batch is held out)
    with torch.no_grad():
        held = [to_tensors(b) for b in batches[::8]]
        losses = [
            float(cosine_loss(_hidden(student, t), _hidden(teacher, t), t["attention_mask"].bool())) for t in held
        ]
    assert sum(losses) / len(losses) == pytest.approx(result.held_out_after, rel=1e-5)
    if result.kept_step == 0:  # nothing beat the starting point: the student is unchanged
        torch.testing.assert_close(
            student.encoder.layer[0].output.dense.weight, teacher.encoder.layer[0].output.dense.weight * 0.5
        )
