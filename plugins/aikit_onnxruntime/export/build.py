"""Turning a torch model into validated ONNX graphs in a cache folder (what ``from_parts`` runs once).

The folder holds ``model.onnx`` (encoders, classifiers, decoder LLMs) or ``encoder.onnx`` +
``decoder.onnx`` (seq2seq), each with its external data, and the returned facts record what
was built: graph kind, KV-cache layout, fusions applied and the validation figures.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from aikit.contracts.parts import ModelParts
from aikit.contracts.task import Task
from aikit.errors import BackendError
from aikit_onnxruntime.compress.fusion import fuse_transformer, fusion_model_type
from aikit_onnxruntime.export.decoder import build_with_genai, export_causal_lm, genai_supports, kv_shape
from aikit_onnxruntime.export.graphs import ExportedGraph, eager_attention, export_graph, graph_for_task
from aikit_onnxruntime.export.sample_inputs import sample_batch
from aikit_onnxruntime.export.validate import ExportMismatchError, compare_outputs
from aikit_onnxruntime.graph_info import describe_graph
from aikit_onnxruntime.session import OrtRunner, make_session
from aikit_onnxruntime.settings import OrtSettings, export_settings

__all__ = ["build_export", "export_settings"]

logger = logging.getLogger("aikit.onnxruntime")
_CPU = OrtSettings(graph_optimization="all")


def _runner(path: Path) -> OrtRunner:
    return OrtRunner(make_session(path, _CPU, threads=None, device=None))


def build_export(folder: Path, module: Any, task: Task, parts: ModelParts, settings: OrtSettings) -> dict[str, Any]:
    """Export ``module`` for ``task`` into ``folder``; validate it; return the facts for ``entry.json``."""
    module = module.eval()
    if not isinstance(module, torch.nn.Module):
        raise BackendError(f"the onnxruntime backend exports torch modules, got {type(module).__name__}")
    sample = sample_batch(task, parts, settings.input_shape)
    with eager_attention(module):
        if task.name == "text-generation":
            return _build_decoder(folder, module, parts.tokenizer, sample, settings)
        graphs = graph_for_task(module, task.name)
        if task.name == "text2text-generation":
            return _build_seq2seq(folder, graphs, sample, settings)
        return _build_single(folder, graphs["model"], module, sample, settings)


def _export_checked(graph: ExportedGraph, sample: Mapping[str, NDArray[Any]], path: Path) -> None:
    try:
        export_graph(graph, sample, path)
    except BackendError:
        raise
    except Exception as exc:  # tracer and exporter errors come in many types
        raise BackendError(
            f"torch.onnx.export failed for {type(graph.module).__name__}: {type(exc).__name__}: {exc}"
        ) from exc


def _build_single(
    folder: Path, graph: ExportedGraph, module: Any, sample: Mapping[str, NDArray[Any]], settings: OrtSettings
) -> dict[str, Any]:
    raw = folder / "raw.onnx"
    _export_checked(graph, sample, raw)
    reference = graph.torch_outputs(sample)
    facts: dict[str, Any] = {"kind": "single", "graphs": {"model": "model.onnx"}, "validation": {}, "fusions": {}}
    if settings.validate:
        facts["validation"]["export"] = compare_outputs(
            "ONNX export", _runner(raw).run(sample), reference, atol=settings.atol, rtol=settings.rtol
        )
    final = raw
    config = getattr(module, "config", None)
    if settings.fusions and config is not None and fusion_model_type(config):
        fused = folder / "fused.onnx"
        try:
            stats = fuse_transformer(raw, fused, config)
            if settings.validate:
                facts["validation"]["fused"] = compare_outputs(
                    "fused graph", _runner(fused).run(sample), reference, atol=settings.atol, rtol=settings.rtol
                )
            facts["fusions"] = stats
            final = fused
        except ExportMismatchError as exc:  # keep the exact graph; the fusions are an optimisation
            logger.warning("transformer fusions changed the outputs (%s); using the unfused graph", exc)
            facts["fusion_error"] = str(exc)
    final.rename(folder / "model.onnx")
    for leftover in (folder / "raw.onnx", folder / "fused.onnx"):
        leftover.unlink(missing_ok=True)
    return facts


def _build_seq2seq(
    folder: Path, graphs: Mapping[str, ExportedGraph], sample: Mapping[str, NDArray[Any]], settings: OrtSettings
) -> dict[str, Any]:
    encoder, decoder = graphs["encoder"], graphs["decoder"]
    _export_checked(encoder, sample, folder / "encoder.onnx")
    hidden = encoder.torch_outputs(sample)["last_hidden_state"]
    rng = np.random.default_rng(0)
    vocab = int(getattr(getattr(decoder.module, "model", None), "config", None).vocab_size)  # type: ignore[union-attr]
    dec_sample = {
        "decoder_input_ids": rng.integers(0, vocab, (hidden.shape[0], 3)).astype(np.int64),
        "encoder_hidden_states": hidden,
        "encoder_attention_mask": np.asarray(sample["attention_mask"]),
    }
    _export_checked(decoder, dec_sample, folder / "decoder.onnx")
    facts: dict[str, Any] = {
        "kind": "seq2seq",
        "graphs": {"encoder": "encoder.onnx", "decoder": "decoder.onnx"},
        "kv_cache": False,
        "validation": {},
    }
    if settings.validate:
        for name, graph, feed in (("encoder", encoder, sample), ("decoder", decoder, dec_sample)):
            facts["validation"][name] = compare_outputs(
                f"ONNX export ({name})",
                _runner(folder / f"{name}.onnx").run(feed),
                graph.torch_outputs(feed),
                atol=settings.atol,
                rtol=settings.rtol,
            )
    return facts


def _build_decoder(
    folder: Path, module: Any, tokenizer: Any, sample: Mapping[str, NDArray[Any]], settings: OrtSettings
) -> dict[str, Any]:
    use_genai = settings.decoder == "genai" or (settings.decoder == "auto" and genai_supports(module))
    if settings.decoder == "genai" and not genai_supports(module):
        raise BackendError(
            f"onnxruntime-genai's builder does not support {type(module).__name__} (or is not installed: "
            "pip install onnxruntime-genai); use backend_options={'decoder': 'torch'}"
        )
    if use_genai:
        try:
            return _decoder_facts(folder, module, sample, settings, genai=True, tokenizer=tokenizer)
        except BackendError as exc:
            if settings.decoder == "genai":
                raise
            logger.warning("onnxruntime-genai's builder did not give a valid decoder (%s); exporting with torch", exc)
            for leftover in folder.iterdir():
                if leftover.is_file():
                    leftover.unlink()
    return _decoder_facts(folder, module, sample, settings, genai=False, tokenizer=tokenizer)


def _decoder_facts(
    folder: Path, module: Any, sample: Mapping[str, NDArray[Any]], settings: OrtSettings, *, genai: bool, tokenizer: Any
) -> dict[str, Any]:
    if genai:
        build_with_genai(module, tokenizer, folder)
    else:
        export_causal_lm(module, folder / "model.onnx")
    facts = describe_graph(folder / "model.onnx")
    layers, kv, head_dim = kv_shape(module.config)
    if facts.get("kind") != "decoder" or facts["kv_heads"] != kv or facts["head_dim"] != head_dim:
        raise BackendError(f"the exported decoder's KV cache does not match the model ({layers} layers, {kv} heads)")
    facts.update(graphs={"model": "model.onnx"}, exporter="onnxruntime-genai" if genai else "torch.onnx")
    facts["validation"] = (
        _validate_decoder(folder / "model.onnx", facts, module, sample, settings) if settings.validate else {}
    )
    return facts


def _validate_decoder(
    path: Path, facts: Mapping[str, Any], module: Any, sample: Mapping[str, NDArray[Any]], settings: OrtSettings
) -> dict[str, float]:
    """Prefill logits of a left-padded batch, and the logits of one cached step, against torch."""
    from aikit_onnxruntime.decoder import DecoderGraph

    ids, mask = np.asarray(sample["input_ids"]), np.asarray(sample["attention_mask"])
    graph = DecoderGraph(
        make_session(path, _CPU, threads=None, device=None),
        kv_heads=int(facts["kv_heads"]),
        head_dim=int(facts["head_dim"]),
        shared=bool(facts["shared"]),
        capacity=ids.shape[1] + 2,
    )
    positions = np.clip(mask.cumsum(-1) - 1, 0, None)
    with torch.inference_mode():
        ref = (
            module(
                input_ids=torch.from_numpy(ids),
                attention_mask=torch.from_numpy(mask),
                position_ids=torch.from_numpy(positions),
            )
            .logits.float()
            .numpy()
        )
    report = compare_outputs(
        "ONNX decoder (prefill)",
        {"logits": graph.logits(ids, mask)},
        {"logits": ref},
        atol=settings.atol,
        rtol=settings.rtol,
        masks={"logits": mask.astype(bool)},
    )
    row = ids[-1, mask[-1].astype(bool)]  # the longest prompt: prefill all but its last token, then one step
    step = graph.step_logits(row)
    report.update(
        compare_outputs(
            "ONNX decoder (cached step)",
            {"step_logits": step},
            {"step_logits": ref[-1, -1]},
            atol=settings.atol,
            rtol=settings.rtol,
        )
    )
    return report
