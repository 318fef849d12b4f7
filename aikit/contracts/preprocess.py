"""``ImagePreprocess``: a serialisable image-to-array transform for plain PyTorch image models."""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from aikit.errors import ConfigError, InputError

__all__ = ["ImagePreprocess", "read_image"]


def read_image(item: Any) -> Any:
    """Open ``item`` (a path, encoded bytes, a PIL image) as an RGB-or-L PIL image.

    Raises ``InputError`` for unreadable or corrupt files. Arrays pass through unchanged.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(item, np.ndarray):
        return item
    if isinstance(item, Image.Image):
        return item
    try:
        if isinstance(item, (bytes, bytearray)):
            image = Image.open(io.BytesIO(bytes(item)))
        elif isinstance(item, (str, os.PathLike)):
            path = Path(item)
            if not path.is_file():
                raise InputError(f"image file {str(path)!r} does not exist")
            image = Image.open(path)
        else:
            raise InputError(f"expected an image path, bytes, PIL image or numpy array, got {type(item).__name__}")
        # PIL only warns between 1x and 2x its pixel limit; a tiny PNG can declare gigapixels.
        if Image.MAX_IMAGE_PIXELS and image.width * image.height > Image.MAX_IMAGE_PIXELS:
            raise InputError(
                f"image of {image.width}x{image.height} pixels exceeds the {Image.MAX_IMAGE_PIXELS} pixel limit "
                "(PIL.Image.MAX_IMAGE_PIXELS); resize it first"
            )
        image.load()  # decode now so corrupt data fails here, not deep inside a model
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(f"refusing to decode the image: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"cannot decode image: {exc}") from exc
    return image


@dataclass(frozen=True, kw_only=True)
class ImagePreprocess:
    """Resize, scale and normalise an image into a ``(channels, height, width)`` float32 array.

    ``size`` is ``(height, width)``; ``grayscale`` gives one channel; pixel values are multiplied
    by ``scale`` then normalised with ``mean`` / ``std`` (one value, or one per channel).
    Saved with artifacts, so a plain-PyTorch image model reloads with no extra arguments.
    """

    size: tuple[int, int]
    grayscale: bool = False
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if len(self.size) != 2 or any(not isinstance(s, int) or s < 1 for s in self.size):
            raise ConfigError(f"size must be (height, width) positive integers, got {self.size!r}")
        if any(s == 0 for s in self.std):
            raise ConfigError("std values must be non-zero")
        object.__setattr__(self, "size", tuple(self.size))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    def __call__(self, item: Any) -> NDArray[np.float32]:

        image = read_image(item)
        channels = 1 if self.grayscale else 3
        if isinstance(image, np.ndarray):
            return self._normalise(self._from_array(image, channels))
        image = image.convert("L" if self.grayscale else "RGB").resize((self.size[1], self.size[0]))
        arr = np.asarray(image, dtype=np.float32)
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        return self._normalise(arr)

    def _from_array(self, image: NDArray[Any], channels: int) -> NDArray[np.float32]:
        from PIL import Image

        if not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
            raise InputError(f"image arrays must be numeric, got dtype {image.dtype}")
        arr = np.asarray(image, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[None]
        elif arr.ndim == 3 and arr.shape[-1] in (1, 3) and arr.shape[0] not in (1, 3):
            arr = arr.transpose(2, 0, 1)
        if arr.ndim != 3 or arr.shape[0] not in (1, 3) or min(arr.shape[1:]) < 1:
            raise InputError(f"image arrays must be (H, W), (H, W, C) or (C, H, W); got shape {image.shape}")
        if not np.isfinite(arr).all():
            raise InputError("image array contains NaN or infinite values")
        if tuple(arr.shape[1:]) != self.size:  # resize each channel as a float image
            arr = np.stack(
                [np.asarray(Image.fromarray(ch, mode="F").resize((self.size[1], self.size[0]))) for ch in arr]
            )
        if arr.shape[0] != channels:
            arr = arr.mean(axis=0, keepdims=True) if channels == 1 else np.repeat(arr, 3, axis=0)
        return arr

    def _normalise(self, arr: NDArray[np.float32]) -> NDArray[np.float32]:
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(-1, 1, 1)
        return np.ascontiguousarray((arr * self.scale - mean) / std, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImagePreprocess:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**fields)
