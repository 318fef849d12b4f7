"""``integrated-gradients`` (captum) and ``occlusion`` (any backend): see the package docstring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import override

from aikit.errors import ConfigError, MissingDependencyError
from aikit.measure.explain import Explainer, ExplainOptions, pair_embeddings, target_probabilities

if TYPE_CHECKING:
    import torch

    from aikit.contracts.task import Example
    from aikit.model.model import Model

__all__ = ["IntegratedGradients", "Occlusion", "baseline_token_id"]


def baseline_token_id(model: Model) -> int:
    """The token that stands for "nothing here": the tokenizer's pad token (else unk, else 0)."""
    tokenizer = model.parts.tokenizer
    for attr in ("pad_token_id", "unk_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int):
            return value
    return 0


def _special_mask(model: Model, ids: NDArray[Any]) -> NDArray[np.bool_]:
    special = set(getattr(model.parts.tokenizer, "all_special_ids", []) or [])
    return np.array([int(i) in special for i in ids], dtype=bool)


def _delete_token(features: Mapping[str, NDArray[Any]], position: int) -> dict[str, NDArray[Any]]:
    """``features`` with token ``position`` removed from every per-token array."""
    length = features["input_ids"].shape[0]
    return {
        k: (np.delete(v, position, axis=0) if v.ndim >= 1 and v.shape[0] == length else v) for k, v in features.items()
    }


def _image_patch(options: ExplainOptions, height: int, width: int) -> int:
    return options.patch if options.patch is not None else max(1, min(height, width) // 8)


class Occlusion(Explainer):
    """Hide part of the input, re-run the model, attribute the drop in the target's probability.

    Text: a window of ``window`` tokens (stride 1) is replaced by the pad token; each token gets the
    mean drop of the windows covering it (special tokens stay). Images: ``patch`` x ``patch``
    squares (stride ``patch``) are set to 0 in the preprocessed input; every pixel of a square gets
    its drop. Cost: one forward pass per token window or patch, ``batch_size`` at a time.
    """

    name = "occlusion"
    description = "gradient-free: hide tokens or image patches, measure the probability drop (any backend)"

    @override
    def attribute_pair(
        self, model: Model, first: Example, second: Example, options: ExplainOptions
    ) -> NDArray[np.float32]:
        """Token pairs of two texts under an embedding model: the interaction of deleting both tokens.

        With ``s`` the cosine similarity and ``A-i`` text A without token ``i``, the score of
        ``(i, j)`` is ``s(A, B) - s(A-i, B) - s(A, B-j) + s(A-i, B-j)``: how much more deleting ``i``
        lowers the similarity while ``j`` is there than once ``j`` is gone. Tokens that match each
        other score high; a token that matters alone (to every pair alike) scores 0. Deleting
        (not padding) keeps mean pooling over the remaining tokens. Cost: one embedding per token
        of either text plus two (``len(A) + len(B) + 2`` texts, ``batch_size`` at a time), because
        ``s(A-i, B-j)`` is the cosine of two embeddings already computed. Special tokens stay.
        """
        variants: list[list[dict[str, NDArray[Any]]]] = []
        positions: list[list[int]] = []
        for example in (first, second):
            features = example.features
            ids = features["input_ids"]
            kept = [i for i in range(ids.shape[0]) if not _special_mask(model, ids)[i]]
            positions.append(kept)
            variants.append([_delete_token(features, i) for i in kept])
        vectors = pair_embeddings(
            model,
            [first.features, second.features, *variants[0], *variants[1]],
            batch_size=options.batch_size,
            progress=options.progress,
        )
        a, b = vectors[0], vectors[1]
        without_a = vectors[2 : 2 + len(positions[0])]
        without_b = vectors[2 + len(positions[0]) :]
        whole = float(a @ b)
        drop_a = whole - without_a @ b  # s(A, B) - s(A-i, B)
        joint = without_a @ without_b.T  # s(A-i, B-j)
        scores = np.zeros((first.features["input_ids"].shape[0], second.features["input_ids"].shape[0]))
        # s - s(A-i,B) - s(A,B-j) + s(A-i,B-j) = drop_a[i] - (s(A,B-j) - s(A-i,B-j))
        inner = drop_a[:, None] - ((a @ without_b.T)[None, :] - joint)
        scores[np.ix_(positions[0], positions[1])] = inner
        return scores.astype(np.float32)

    @override
    def attribute(self, model: Model, example: Example, target: int, options: ExplainOptions) -> NDArray[np.float32]:
        features = example.features
        if "input_ids" in features:
            return self._text(model, features, target, options)
        return self._image(model, features, target, options)

    def _text(
        self, model: Model, features: Mapping[str, NDArray[Any]], target: int, options: ExplainOptions
    ) -> NDArray[np.float32]:
        ids = features["input_ids"]
        special = _special_mask(model, ids)
        positions = [i for i in range(ids.shape[0]) if not special[i]]
        pad = baseline_token_id(model)
        windows: list[list[int]] = []
        for start in range(len(positions)):
            window = positions[start : start + options.window]
            if len(window) == options.window or start == 0:
                windows.append(window)
        variants = []
        for window in windows:
            hidden = np.array(ids)
            hidden[window] = pad
            variants.append({**features, "input_ids": hidden})
        probs = target_probabilities(
            model, [features, *variants], batch_size=options.batch_size, progress=options.progress
        )[:, target]
        total = np.zeros(ids.shape[0], dtype=np.float64)
        count = np.zeros(ids.shape[0], dtype=np.float64)
        for window, p in zip(windows, probs[1:]):
            total[window] += probs[0] - p
            count[window] += 1
        return (total / np.maximum(count, 1)).astype(np.float32)

    def _image(
        self, model: Model, features: Mapping[str, NDArray[Any]], target: int, options: ExplainOptions
    ) -> NDArray[np.float32]:
        pixels = features.get("pixel_values")
        if pixels is None or pixels.ndim != 3:
            raise ConfigError("occlusion explains (C, H, W) images or token ids")
        height, width = pixels.shape[1:]
        size = _image_patch(options, height, width)
        boxes = [(r, c) for r in range(0, height, size) for c in range(0, width, size)]
        variants = []
        for r, c in boxes:
            hidden = np.array(pixels)
            hidden[:, r : r + size, c : c + size] = 0.0
            variants.append({**features, "pixel_values": hidden})
        probs = target_probabilities(
            model, [features, *variants], batch_size=options.batch_size, progress=options.progress
        )[:, target]
        heat = np.zeros((height, width), dtype=np.float32)
        for (r, c), p in zip(boxes, probs[1:]):
            heat[r : r + size, c : c + size] = probs[0] - p
        return heat


class IntegratedGradients(Explainer):
    """captum's integrated gradients of the target's probability, ``steps`` interpolation steps.

    Text: ``LayerIntegratedGradients`` at the token embedding layer (the model's
    ``get_input_embeddings()``, else its first embedding module), from an all-pad baseline that
    keeps special tokens; a token's score is the sum over its embedding dimensions. Images:
    ``IntegratedGradients`` on the pixels from a black (all-zero) input, summed over channels.
    Needs a backend holding a torch module.
    """

    name = "integrated-gradients"
    description = "captum integrated gradients (backends with a torch module)"

    @override
    def unsupported_reason(self, model: Model) -> str | None:
        if model.backend.torch_module() is None:
            return (
                f"backend {model.backend.name!r} holds no torch module to take gradients of; "
                "use method='occlusion', which only runs the model"
            )
        return None

    @override
    def attribute(self, model: Model, example: Example, target: int, options: ExplainOptions) -> NDArray[np.float32]:
        try:
            import captum.attr
        except ImportError as exc:
            raise MissingDependencyError(
                "captum", feature="integrated gradients", install="pip install 'aikit[explain]'"
            ) from exc
        import torch

        module = model.backend.torch_module()
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        names = list(example.features)
        tensors = [torch.from_numpy(np.ascontiguousarray(example.features[n])[None]).to(device) for n in names]

        def probability(*args: torch.Tensor) -> torch.Tensor:
            logits = torch_logits(model, dict(zip(names, args)))
            return torch.softmax(logits.float(), dim=-1)

        if "input_ids" in names:
            index = names.index("input_ids")
            ids = tensors[index]
            special = torch.from_numpy(_special_mask(model, example.features["input_ids"])[None]).to(device)
            baseline = torch.where(special, ids, torch.full_like(ids, baseline_token_id(model)))
            others = tuple(t for i, t in enumerate(tensors) if i != index)

            def reorder(ids_arg: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
                full = list(rest)
                full.insert(index, ids_arg)
                return probability(*full)

            method = captum.attr.LayerIntegratedGradients(reorder, embedding_layer(module))
            attributions = method.attribute(
                ids,
                baselines=baseline,
                additional_forward_args=others or None,
                target=target,
                n_steps=options.steps,
                internal_batch_size=options.batch_size,
            )
            return attributions.sum(dim=-1)[0].detach().float().cpu().numpy()  # type: ignore[no-any-return]
        if names != ["pixel_values"]:
            raise ConfigError(f"integrated gradients explains token ids or pixel_values, got features {names}")
        pixels = tensors[0].float().requires_grad_(True)
        ig = captum.attr.IntegratedGradients(probability)
        attributions = ig.attribute(
            pixels,
            baselines=torch.zeros_like(pixels),
            target=target,
            n_steps=options.steps,
            internal_batch_size=options.batch_size,
        )
        return attributions[0].detach().float().cpu().numpy()  # type: ignore[no-any-return]


def torch_logits(model: Model, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The classifier's logits for named batch tensors, with gradients (not under inference mode).

    A backend may say how its module takes features (``torch_forward``, as the keras backend does);
    otherwise transformers models take them by name and plain modules positionally.
    """
    import torch
    from aikit_torch.modules import is_transformers_model

    own = getattr(model.backend, "torch_forward", None)
    if callable(own):
        out: Any = own(tensors)
    else:
        module = model.backend.torch_module()
        out = module(**tensors) if is_transformers_model(module) else module(*tensors.values())
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise ConfigError(f"the model returned {type(out).__name__}; integrated gradients needs logits")


def embedding_layer(module: Any) -> Any:
    """The token embedding layer: ``get_input_embeddings()``, else the first module named ``*Embedding``."""
    getter = getattr(module, "get_input_embeddings", None)
    if callable(getter):
        layer = getter()
        if layer is not None:
            return layer
    for sub in module.modules():
        if type(sub).__name__ == "Embedding":  # torch.nn.Embedding and keras.layers.Embedding alike
            return sub
    raise ConfigError("integrated gradients found no token embedding layer in this text model")
