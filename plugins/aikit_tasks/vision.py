"""``image-classification``: Hugging Face vision models and plain ``torch.nn.Module`` classifiers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import override

from aikit.contracts.preprocess import read_image
from aikit.contracts.task import Example, Task
from aikit.errors import InputError

from ._text import softmax
from .classification import LABEL_METRICS, classify, label_names


class ImageClassification(Task):
    """An image (path, bytes, PIL image or array) in, a label with scores out.

    Hugging Face models use their own image processor. Plain modules use the ``preprocess``
    given to ``Model.from_module`` (an ``aikit.ImagePreprocess`` or any function returning a
    ``(C, H, W)`` float array) and must return class logits.
    """

    name = "image-classification"
    default_metrics = LABEL_METRICS
    explain_input = "image"
    description = "one label per image, with scores"
    input_kind = "image"
    hf_auto_class = "AutoModelForImageClassification"
    architecture_suffixes = ("ForImageClassification",)
    default_batch_size = 16

    @override
    def preprocess(self, items: Sequence[Any], *, max_length: int | None) -> list[Example]:
        examples = []
        for i, item in enumerate(items):
            try:
                pixels = self._pixels(item)
            except InputError as exc:
                raise InputError(str(exc), index=i) from exc
            if not np.isfinite(pixels).all():
                raise InputError("preprocessed image contains NaN or infinite values", index=i)
            examples.append(Example(index=i, length=int(pixels.size), features={"pixel_values": pixels}))
        return examples

    def _pixels(self, item: Any) -> NDArray[np.float32]:
        if self.parts.preprocess is not None:
            try:
                out = self.parts.preprocess(item)
            except InputError:
                raise
            except Exception as exc:  # user code: name the failure instead of a deep traceback
                raise InputError(f"preprocess failed: {type(exc).__name__}: {exc}") from exc
            return np.asarray(out, dtype=np.float32)
        processor = self.parts.image_processor
        if processor is None:
            raise InputError("this model has no image processor; pass preprocess=... to Model.from_module")
        image = read_image(item)
        if isinstance(image, np.ndarray):
            numeric = np.issubdtype(image.dtype, np.number) and not np.iscomplexobj(image)
            if not numeric or image.ndim not in (2, 3) or image.size == 0:
                raise InputError(f"image arrays must be numeric (H, W[, C]); got {image.dtype} of shape {image.shape}")
            if not np.isfinite(image).all():
                raise InputError("image array contains NaN or infinite values")
            if image.dtype != np.uint8 and image.max() > 1.0:  # 0-255 floats: what PIL would have given
                image = np.clip(image, 0, 255).astype(np.uint8)
        else:
            image = image.convert("RGB")
        try:
            out = processor(images=image, return_tensors="np")["pixel_values"][0]
        except Exception as exc:
            raise InputError(f"the image processor rejected the image: {exc}") from exc
        return np.asarray(out, dtype=np.float32)

    @override
    def postprocess(self, outputs: dict[str, NDArray[Any]], examples: Sequence[Example], options: Any) -> list[Any]:
        logits = outputs["logits"].astype(np.float32)
        if logits.ndim != 2:
            raise InputError(f"the model returned logits of shape {logits.shape}; expected (batch, classes)")
        names = label_names(self.parts, logits.shape[-1])
        return [classify(p, names) for p in softmax(logits)]

    @override
    def quality_outputs(self, outputs: dict[str, NDArray[Any]]) -> NDArray[Any]:
        return outputs["logits"]
