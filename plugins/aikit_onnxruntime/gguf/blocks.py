"""GGUF's 32-element quantization blocks re-laid out, value for value, as ``com.microsoft.MatMulNBits`` inputs.

GGUF (llama.cpp) stores a quantized matrix as rows of ``K`` elements, one row per output
feature, each row a run of blocks of 32. The block formats mapped here and the weight each gives:

- ``Q4_0``: ``d`` (float16), 16 bytes of nibbles; ``w = d * (q - 8)``, ``q`` in 0..15;
- ``Q4_1``: ``d``, ``m`` (float16), 16 bytes of nibbles; ``w = d * q + m``;
- ``Q8_0``: ``d`` (float16), 32 signed bytes; ``w = d * q``, ``q`` in -128..127;
- ``Q4_K``: super-blocks of 256 = 8 sub-blocks of 32: ``d``, ``dmin`` (float16), 12 bytes of 6-bit
  sub-block scales ``sc`` and mins ``m``, 128 bytes of nibbles; ``w = (d * sc) * q - dmin * m``.
  Per sub-block of 32 that is the ``Q4_1`` shape again (scale ``d * sc``, offset ``-dmin * m``);
  its 128 bytes hold, per 64 elements, sub-block ``2c`` in the low nibbles of 32 bytes and
  sub-block ``2c + 1`` in their high nibbles.

In a GGUF Q4 block byte ``j`` holds element ``j`` in its low nibble and element ``j + 16`` in its
high nibble. ``MatMulNBits`` (``block_size=32``) computes ``w = scale * (q - zero_point)`` from
``B`` of shape ``[N, K / 32, blob]`` where byte ``j`` of a 4-bit blob holds element ``2j`` in its
low nibble and ``2j + 1`` in its high one; zero points are either packed ``uint8`` (default
``2^(bits-1)`` when omitted) or unpacked floats of the scales' type. So:

- ``Q4_0`` → 4 bits, no zero points (the default 8), ``scale = d``: exact;
- ``Q8_0``, ``"8bit"`` form: 8 bits, ``q + 128`` as ``uint8``, no zero points (the default 128),
  ``scale = d``: exact. ONNX Runtime 1.32's CPU kernel only has a fast path for it when activations
  are quantized to int8 (``accuracy_level=4``); at float32 it de-quantizes the matrix every call
  (355 ms for a 49152x576 head against 7.5 ms as a float32 MatMul, 2 ms at level 4);
- ``Q8_0``, ``"two-4bit"`` form: ``q + 128 = 16 * hi + lo`` so ``d * q = 16d * (hi - 8) + d * lo``:
  two 4-bit operators (``hi`` with scale ``16d`` and the default zero point 8, ``lo`` with scale
  ``d`` and zero points 0) whose outputs are added. Each product is exact (``d`` has 11
  significant bits, ``|q| <= 128``), so an identity input reproduces ``d * q`` bit for bit, and both
  halves run on the fast float32 4-bit path;
- ``Q4_1``, ``"split"`` form (the default): 4 bits, ``scale = d``, uint8 zero points 0, so
  ``MatMulNBits`` gives ``x . (d * q)`` exactly; the ``m`` part is ``offsets`` (``[N, K/32]``), added
  by the caller as ``(x @ E) @ offsets.T`` where ``E`` sums each block of ``x``. On an identity
  input this reproduces ``d * q + m`` bit for bit. It exists because ONNX Runtime 1.32's CPU
  kernel has no fast path for float zero points at any ``accuracy_level``: it skips pre-packing
  when the zero points are not ``uint8``, so every call de-quantizes the whole matrix and runs a
  float32 GEMM (level 4 is ignored: its outputs equal level 0's bit for bit). Measured on a 2-core
  AVX-512 Xeon, a 1536x576 matrix-vector product took 2.2 ms with float zero points, 0.11 ms split
  (fp32 MatMul: 0.48 ms); on the packaged SmolLM2 the whole decode ran 11-15x slower;
- ``Q4_1``, ``"zero-point"`` form: float zero point ``z = -m / d``; ONNX Runtime 1.32 computes
  ``q * d - z * d``, which differs from ``d * q + m`` by float32 rounding only (``z * d`` is ``m``
  up to the roundings of ``z`` and of the product: on the packaged SmolLM2 9.7% of the ``Q4_1``
  weights differ, by at most 2.4e-7, under 1e-6 of their block's ``d``). A block
  with ``d == 0`` (every weight ``m``) becomes ``q = 0``, ``scale = m``, ``zero_point = -1``.

- ``Q4_K`` → the split form of ``Q4_1`` with ``scale = d * sc`` and ``offsets = -(dmin * m)``, both
  computed as ``gguf.quants.dequantize`` computes them, so an identity input reproduces it bit for bit.

Other types (Q5_*, Q6_K and the other K-quants, F16 ...) are not 4- or 8-bit codes with one
scale per 32 elements that ``MatMulNBits`` can hold without re-quantizing; :data:`NATIVE_TYPES`
lists the ones this module maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["BLOCK", "NATIVE_TYPES", "PackedWeight", "pack_rows"]

BLOCK = 32
# GGUF type name -> (bytes per GGUF block, MatMulNBits bits); a Q4_K block covers 256 elements
NATIVE_TYPES: dict[str, tuple[int, int]] = {"Q4_0": (18, 4), "Q4_1": (20, 4), "Q8_0": (34, 8), "Q4_K": (144, 4)}


@dataclass(frozen=True)
class PackedWeight:
    """``MatMulNBits`` inputs for one weight: ``packed`` ``[N, K/32, blob]`` uint8, ``scales`` ``[N, K/32]``
    float32, ``zero_points`` unpacked float32 ``[N, K/32]``, packed uint8 ``[N, ceil(K/64)]`` or ``None``
    (the operator's default ``2^(bits-1)``); ``offsets`` ``[N, K/32]`` float32 per-block terms added
    outside the operator (``Q4_1``'s ``m`` in the split form), else ``None``."""

    bits: int
    packed: NDArray[np.uint8]
    scales: NDArray[np.float32]
    zero_points: NDArray[Any] | None
    offsets: NDArray[np.float32] | None = None
    high: PackedWeight | None = None
    """A second operator whose output is added (the high nibbles of the ``"two-4bit"`` ``Q8_0`` form)."""

    @property
    def n(self) -> int:
        return int(self.packed.shape[0])

    @property
    def k(self) -> int:
        return int(self.packed.shape[1]) * BLOCK


def _nibbles(qs: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """GGUF's 16 nibble bytes per block (``[..., 16]``) → the 32 codes in element order (``[..., 32]``)."""
    return np.concatenate([qs & np.uint8(0x0F), qs >> np.uint8(4)], axis=-1)


def _pack4(codes: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Codes in element order (``[..., 32]``) → MatMulNBits' 4-bit blob (element ``2j`` low, ``2j+1`` high)."""
    return (codes[..., 0::2] | (codes[..., 1::2] << np.uint8(4))).astype(np.uint8)


def pack_rows(qtype: str, rows: NDArray[Any], *, q4_1: str = "split", q8_0: str = "two-4bit") -> PackedWeight:
    """Re-lay ``rows`` (``[N, K/32 * block_bytes]`` uint8, one GGUF row per output feature) for MatMulNBits.

    ``q4_1`` picks the ``Q4_1`` form, ``"split"`` or ``"zero-point"``; ``q8_0`` the ``Q8_0`` form,
    ``"two-4bit"`` or ``"8bit"`` (see the module docstring).
    Raises ``ValueError`` for a type outside :data:`NATIVE_TYPES` or rows that are not whole blocks.
    """
    if q4_1 not in ("split", "zero-point"):
        raise ValueError(f"q4_1 must be 'split' or 'zero-point', got {q4_1!r}")
    if q8_0 not in ("two-4bit", "8bit"):
        raise ValueError(f"q8_0 must be 'two-4bit' or '8bit', got {q8_0!r}")
    if qtype not in NATIVE_TYPES:
        raise ValueError(f"GGUF type {qtype} has no exact MatMulNBits form (mapped: {', '.join(NATIVE_TYPES)})")
    size, bits = NATIVE_TYPES[qtype]
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    if rows.ndim != 2 or rows.shape[1] % size:
        raise ValueError(f"{qtype} rows must be [N, whole {size}-byte blocks], got shape {rows.shape}")
    n, blocks = rows.shape[0], rows.shape[1] // size
    raw = rows.reshape(n, blocks, size)
    if qtype == "Q4_K":
        return _pack_q4_k(raw)
    d = raw[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    if qtype == "Q8_0":
        q = raw[..., 2:].copy().view(np.int8)
        packed = (q.astype(np.int16) + 128).astype(np.uint8)
        if q8_0 == "8bit":
            return PackedWeight(bits, packed, d, None)
        zeros = np.zeros((n, (blocks + 1) // 2), dtype=np.uint8)
        high = PackedWeight(4, _pack4(packed >> np.uint8(4)), (d * np.float32(16)).astype(np.float32), None)
        return PackedWeight(4, _pack4(packed & np.uint8(0x0F)), d, zeros, None, high)
    if qtype == "Q4_0":
        return PackedWeight(bits, _pack4(_nibbles(raw[..., 2:])), d, None)
    m = raw[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    codes = _nibbles(raw[..., 4:])
    if q4_1 == "split":
        zeros = np.zeros((n, (blocks + 1) // 2), dtype=np.uint8)  # two 4-bit zero points of 0 per byte
        return PackedWeight(bits, _pack4(codes), d, zeros, m)
    flat = d == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        # float64 quotient rounded once to float32: the nearest zero point to -m/d there is
        zero = np.where(flat, np.float32(-1), (-m.astype(np.float64) / d.astype(np.float64)).astype(np.float32))
    scale = np.where(flat, m, d).astype(np.float32)
    codes = np.where(flat[..., None], np.uint8(0), codes).astype(np.uint8)
    return PackedWeight(bits, _pack4(codes), scale, zero.astype(np.float32))


def _pack_q4_k(raw: NDArray[np.uint8]) -> PackedWeight:
    """``Q4_K`` super-blocks (``[N, S, 144]``) in the split form: 8 blocks of 32 per super-block."""
    n, supers = raw.shape[0], raw.shape[1]
    d = raw[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)[..., None]
    dmin = raw[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)[..., None]
    packed_scales = raw[..., 4:16].reshape(n, supers, 3, 4)
    lo, hi, mixed = packed_scales[..., 0, :], packed_scales[..., 1, :], packed_scales[..., 2, :]
    # 6-bit scales and mins, unpacked as gguf.quants.Q4_K.get_scale_min does
    sc = np.concatenate([lo & 0x3F, (mixed & 0x0F) | ((lo >> 2) & 0x30)], axis=-1).astype(np.float32)
    mins = np.concatenate([hi & 0x3F, (mixed >> 4) | ((hi >> 2) & 0x30)], axis=-1).astype(np.float32)
    scale = (d * sc).reshape(n, supers * 8)
    offsets = -(dmin * mins).reshape(n, supers * 8)
    qs = raw[..., 16:].reshape(n, supers, 4, 1, 32) >> np.array([0, 4], dtype=np.uint8).reshape(1, 1, 1, 2, 1)
    codes = (qs & np.uint8(0x0F)).reshape(n, supers * 8, 32).astype(np.uint8)
    zeros = np.zeros((n, (supers * 8 + 1) // 2), dtype=np.uint8)
    return PackedWeight(4, _pack4(codes), scale.astype(np.float32), zeros, offsets.astype(np.float32))
