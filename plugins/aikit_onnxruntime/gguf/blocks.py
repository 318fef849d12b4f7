"""GGUF's 32-element quantization blocks re-laid out, value for value, as ``com.microsoft.MatMulNBits`` inputs.

GGUF (llama.cpp) stores a quantized matrix as rows of ``K`` elements, one row per output
feature, each row a run of blocks of 32. The block formats mapped here and the weight each gives:

- ``Q4_0``: ``d`` (float16), 16 bytes of nibbles; ``w = d * (q - 8)``, ``q`` in 0..15;
- ``Q4_1``: ``d``, ``m`` (float16), 16 bytes of nibbles; ``w = d * q + m``;
- ``Q8_0``: ``d`` (float16), 32 signed bytes; ``w = d * q``, ``q`` in -128..127;
- ``Q4_K``: super-blocks of 256 = 8 sub-blocks of 32: ``d``, ``dmin`` (float16), 12 bytes of 6-bit
  sub-block scales ``sc`` and mins ``m``, 128 bytes of nibbles; ``w = (d * sc) * q - dmin * m``.
  Per sub-block of 32 that is the ``Q4_1`` shape again (scale ``d * sc``, offset ``-dmin * m``).

``MatMulNBits`` (``block_size=32``) computes ``w = scale * (q - zero_point)`` from ``B`` of shape
``[N, K / 32, blob]`` where byte ``j`` of a 4-bit blob holds element ``2j`` in its low nibble and
``2j + 1`` in its high one; zero points are either packed ``uint8`` (default ``2^(bits-1)`` when
omitted) or unpacked floats of the scales' type.

**How the values are read.** No bit layout is decoded here: every code, scale and offset is
computed by ``gguf.quants.dequantize`` itself, from copies of the blocks edited so that it gives
one of them (``_LAYOUTS`` says which bytes each type keeps where): with every scale set to 1 and
offset to 0 it gives the codes (minus the type's zero); with every code set to ``zero + 1`` and
offset to 0, each element's scale; with every code set to ``zero``, each element's offset. So the
codes follow gguf's layouts by construction (nibble orders, high-bit planes, 6-bit packed
sub-block scales) and each scale and offset is the float32 value ``dequantize`` computes. It
costs three de-quantizations per matrix on the first build only (0.73 s for 26.5M ``Q4_1``
weights on a 2-core Xeon, load average 0.43, against 0.07 s for the hand-written parsing it
replaced; the outputs were compared byte for byte on every type and form).

So:

- ``Q4_0`` → 4 bits, no zero points (the default 8), ``scale = d``: exact;
- ``Q8_0``, ``"8bit"`` form: 8 bits, ``q + 128`` as ``uint8``, no zero points (the default 128),
  ``scale = d``: exact. ONNX Runtime 1.32's CPU kernel only has a fast path for it when activations
  are quantized to int8 (``accuracy_level=4``); at float32 it de-quantizes the matrix every call
  (355 ms for a 49152x576 head against 7.5 ms as a float32 MatMul, 2 ms at level 4);
- ``Q8_0``, ``"two-4bit"`` form: ``q + 128 = 16 * hi + lo`` so ``d * q = 16 * (d * (hi - 8)) + d * lo``:
  two 4-bit operators sharing the scales ``d`` (``hi`` with the default zero point 8, ``lo`` with
  zero points 0); the high operator's output is multiplied by :data:`HIGH_FACTOR` (16) and added
  to the low one's. Each product is exact (``d`` has 11 significant bits, ``|q| <= 128``, and a
  factor of 16 is a power of two, so scaling the high sum by it rounds exactly as scaling its
  scales would), so an identity input reproduces ``d * q`` bit for bit, and both halves run on
  the fast float32 4-bit path. Sharing the scales saves one float32 scale per block (for
  SmolLM2's 49152x576 head, 3.5 MB that the kernel reads on every call);
- ``Q4_1``, ``"split"`` form (the default): 4 bits, ``scale = d``, the codes centred on the
  operator's default zero point 8, so ``MatMulNBits`` gives ``x . (d * (q - 8))`` exactly; the rest
  is ``offsets = m + 8 d`` (``[N, K/32]``), added by the caller as ``(x @ E) @ offsets.T`` where
  ``E`` sums each block of ``x`` (uint8 zero points 0 and ``offsets = m`` for a weight where some
  ``m + 8 d`` would round in float32: :func:`_centred`). On an identity input this reproduces
  ``d * q + m`` bit for bit. Every type with offsets is centred the same way. It exists because ONNX Runtime 1.32's CPU
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

- ``Q4_K`` → the split form of ``Q4_1`` with ``scale = d * sc`` and ``offsets = -(dmin * m)``, so an
  identity input reproduces it bit for bit.

- the 5- and 6-bit types, split like ``Q8_0``'s two-4bit form into high and low 4-bit codes,
  ``q = 16 * hi + lo``, each half an operator (the high one's output times 16, as for ``Q8_0``)
  and the two outputs added (``"two-4bit"``), or one
  8-bit operator holding ``q`` with ``uint8`` zero points (``"8bit"``, for ``accuracy_level=4``):

  - ``Q5_0`` (``d``, 32 high bits, 16 nibble bytes; ``w = d * (q - 16)``): both halves with scale
    ``d``, ``hi`` with zero point 1 (its output times 16), ``lo`` with zero point 0;
  - ``Q5_1`` (``d``, ``m``, high bits, nibbles; ``w = d * q + m``): both halves with zero point 0,
    plus ``m`` as ``offsets`` (the split ``Q4_1`` form);
  - ``Q5_K`` (super-blocks of 256: ``d``, ``dmin``, ``Q4_K``'s 6-bit scales and mins, 32 bytes of
    high bits, 128 of nibbles; ``w = (d * sc) * q - dmin * m`` per sub-block of 32): as ``Q5_1``
    with scale ``d * sc`` and ``offsets = -(dmin * m)``;
  - ``Q6_K`` (super-blocks of 256: 128 bytes of low nibbles, 64 of 2-bit highs, 16 signed 8-bit
    sub-block scales, ``d``; ``w = (d * sc) * (q - 32)`` per sub-block of **16**): ``block_size=16``,
    both halves with scale ``d * sc``, ``hi`` (0..3) with zero point 2, ``lo`` with zero point 0.

  As for ``Q8_0``, the two halves share one scale tensor and the high operator's output is
  multiplied by :data:`HIGH_FACTOR`: 10 bits per weight for ``Q6_K`` at ``block_size=16`` (two
  4-bit codes and one float32 scale per 16) instead of 12 with a scale tensor per half.

  Every product is exact in float32 (``d`` has 11 significant bits, ``sc`` at most 8, the codes at
  most 6, and the high half's factor 16 is a power of two), so the two halves add up to
  ``dequantize``'s weight exactly and the offset is added once, as it adds it.

- the 2- and 3-bit K-quants, one 4-bit operator with ``block_size=16`` (their scales are per 16):

  - ``Q3_K`` (32 bytes of high bits, 64 of 2-bit lows, 12 bytes of 6-bit scales, ``d``;
    ``w = d * (sc - 32) * (q - 4)``, ``q`` of 3 bits): codes ``q``, zero point 4, scale
    ``d * (sc - 32)``;
  - ``Q2_K`` (16 bytes of 4-bit scales and mins, 64 of 2-bit codes, ``d``, ``dmin``;
    ``w = (d * sc) * q - dmin * m``): codes ``q``, zero point 0, scale ``d * sc``, plus
    ``offsets = -(dmin * m)`` per 16 elements.

Other types (``IQ*``, ``TQ*``, ``F16``, ``BF16`` ...) have no exact ``MatMulNBits`` form (non-linear
code books or ternary packings, or no codes at all); :data:`NATIVE_TYPES` lists the ones this
module maps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["BLOCK", "HIGH_FACTOR", "NATIVE_TYPES", "PackedWeight", "pack_rows"]

BLOCK = 32
# the high half of a two-4bit form: its operator's output times this, added to the low half's
HIGH_FACTOR = 16
_ONE = np.array([1.0], dtype=np.float16).view(np.uint8)  # float16 1.0 as its two bytes

# A copy edit: bytes [start, stop) of every block set to a byte value or to a repeated byte pattern.
_Edit = tuple[int, int, "int | NDArray[np.uint8]"]


@dataclass(frozen=True)
class _Layout:
    """Where one GGUF type keeps its fields, as the copy edits that make ``gguf.quants.dequantize`` give
    the codes, the scales and the offsets one at a time (see :func:`pack_rows`).

    ``unit`` sets every scale to 1 and every offset to 0 (``dequantize`` then gives ``q - zero``);
    ``ones`` sets every code to ``zero + 1`` and every offset to 0 (it gives the scale of each
    element); ``nothing`` sets every code to ``zero`` (it gives the offset; ``None``: the type has
    none). ``block``: elements per scale."""

    size: int
    bits: int
    zero: int
    unit: tuple[_Edit, ...]
    ones: tuple[_Edit, ...]
    nothing: tuple[_Edit, ...] | None = None
    block: int = BLOCK


# Byte offsets within a block, as gguf-py's quants module reads them. Q4_K / Q5_K's 12 bytes of
# 6-bit scales and mins (4:16) hold scale 1 and min 0 for every sub-block as 1,1,1,1 0,0,0,0 1,1,1,1
# (get_scale_min's packing); Q3_K's 6-bit scales (96:108) hold 33 (sc - 32 = 1) as low nibbles 1
# and high bit pairs 2; 2-bit fields of 1 are 0x55, of 2 0xAA; a 5-bit code 17 is nibble 1 + high bit.
_LAYOUTS: dict[str, _Layout] = {
    # d 0:2, nibbles 2:18; w = d * (q - 8)
    "Q4_0": _Layout(18, 4, 8, unit=((0, 2, _ONE),), ones=((2, 18, 0x99),)),
    # d 0:2, m 2:4, nibbles 4:20; w = d * q + m
    "Q4_1": _Layout(20, 4, 0, unit=((0, 2, _ONE), (2, 4, 0)), ones=((2, 4, 0), (4, 20, 0x11)), nothing=((4, 20, 0),)),
    # d 0:2, signed bytes 2:34; w = d * q (q + 128 as the unsigned code)
    "Q8_0": _Layout(34, 8, 128, unit=((0, 2, _ONE),), ones=((2, 34, 1),)),
    # d 0:2, dmin 2:4, scales / mins 4:16, nibbles 16:144; w = (d * sc) * q - dmin * m per 32
    "Q4_K": _Layout(
        144, 4, 0,
        unit=((0, 2, _ONE), (2, 4, 0), (4, 8, 1), (8, 12, 0), (12, 16, 1)),
        ones=((2, 4, 0), (16, 144, 0x11)),
        nothing=((16, 144, 0),),
    ),
    # d 0:2, high bits 2:6, nibbles 6:22; w = d * (q - 16)
    "Q5_0": _Layout(22, 5, 16, unit=((0, 2, _ONE),), ones=((2, 6, 0xFF), (6, 22, 0x11))),
    # d 0:2, m 2:4, high bits 4:8, nibbles 8:24; w = d * q + m
    "Q5_1": _Layout(
        24, 5, 0,
        unit=((0, 2, _ONE), (2, 4, 0)),
        ones=((2, 4, 0), (4, 8, 0), (8, 24, 0x11)),
        nothing=((4, 8, 0), (8, 24, 0)),
    ),
    # d 0:2, dmin 2:4, scales / mins 4:16, high bits 16:48, nibbles 48:176; as Q4_K with 5-bit q
    "Q5_K": _Layout(
        176, 5, 0,
        unit=((0, 2, _ONE), (2, 4, 0), (4, 8, 1), (8, 12, 0), (12, 16, 1)),
        ones=((2, 4, 0), (16, 48, 0), (48, 176, 0x11)),
        nothing=((16, 48, 0), (48, 176, 0)),
    ),
    # low nibbles 0:128, high bit pairs 128:192, signed scales 192:208, d 208:210; w = (d * sc) * (q - 32) per 16
    "Q6_K": _Layout(
        210, 6, 32, unit=((192, 208, 1), (208, 210, _ONE)), ones=((0, 128, 0x11), (128, 192, 0xAA)), block=16
    ),
    # scales 0:16 (4-bit sc, 4-bit m), 2-bit codes 16:80, d 80:82, dmin 82:84; w = (d * sc) * q - dmin * m per 16
    "Q2_K": _Layout(
        84, 2, 0,
        unit=((0, 16, 0x01), (80, 82, _ONE), (82, 84, 0)),
        ones=((16, 80, 0x55), (82, 84, 0)),
        nothing=((16, 80, 0),),
        block=16,
    ),
    # high-bit mask 0:32, 2-bit lows 32:96, 6-bit scales 96:108, d 108:110; w = d * (sc - 32) * (q - 4) per 16
    "Q3_K": _Layout(
        110, 3, 4, unit=((96, 104, 0x11), (104, 108, 0xAA), (108, 110, _ONE)), ones=((0, 32, 0xFF), (32, 96, 0x55)),
        block=16,
    ),
}  # fmt: skip
# GGUF type name -> (bytes per GGUF block, code bits); a K-quant block covers 256 elements
NATIVE_TYPES: dict[str, tuple[int, int]] = {name: (lay.size, lay.bits) for name, lay in _LAYOUTS.items()}


@dataclass(frozen=True)
class PackedWeight:
    """``MatMulNBits`` inputs for one weight: ``packed`` ``[N, K/block, blob]`` uint8, ``scales`` ``[N, K/block]``
    float32, ``zero_points`` unpacked float32 ``[N, K/block]``, packed uint8 (``[N, ceil(K/block/2)]`` for 4
    bits, ``[N, K/block]`` for 8) or ``None`` (the operator's default ``2^(bits-1)``); ``offsets``
    ``[N, K/block]`` float32 per-block terms added outside the operator (``Q4_1``'s ``m`` in the split
    form), else ``None``."""

    bits: int
    packed: NDArray[np.uint8]
    scales: NDArray[np.float32]
    zero_points: NDArray[Any] | None
    offsets: NDArray[np.float32] | None = None
    high: PackedWeight | None = None
    """A second operator whose output, times :data:`HIGH_FACTOR`, is added (the high nibbles of the
    ``"two-4bit"`` forms); its ``scales`` are this weight's own array, so a graph stores them once."""
    block: int = BLOCK
    """``MatMulNBits``' ``block_size``: elements per scale (16 for ``Q6_K``, ``Q2_K``, ``Q3_K``, else 32)."""

    @property
    def n(self) -> int:
        return int(self.packed.shape[0])

    @property
    def k(self) -> int:
        return int(self.packed.shape[1]) * self.block


def _pack4(codes: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Codes in element order (``[..., block]``) → MatMulNBits' 4-bit blob (element ``2j`` low, ``2j+1`` high)."""
    return (codes[..., 0::2] | (codes[..., 1::2] << np.uint8(4))).astype(np.uint8)


def _zero_points(n: int, blocks: int, value: int, bits: int) -> NDArray[np.uint8] | None:
    """``value`` as every block's packed ``uint8`` zero point (4-bit: two per byte, low nibble first),
    or ``None`` when it is the operator's default ``2^(bits-1)``."""
    if value == 1 << (bits - 1):
        return None
    if bits == 8:
        return np.full((n, blocks), value, dtype=np.uint8)
    return np.full((n, (blocks + 1) // 2), value | (value << 4), dtype=np.uint8)


def _dequantized(qtype: str, raw: NDArray[np.uint8], edits: tuple[_Edit, ...]) -> NDArray[np.float32]:
    """``gguf.quants.dequantize`` of a copy of ``raw`` (``[N, blocks, bytes]``) with ``edits`` applied,
    as ``[N, elements]`` float32."""
    import gguf

    copy = raw.copy()
    for start, stop, value in edits:
        copy[..., start:stop] = value
    n = raw.shape[0]
    values = gguf.quants.dequantize(copy.reshape(n, -1), getattr(gguf.GGMLQuantizationType, qtype))
    return np.asarray(values, dtype=np.float32).reshape(n, -1)


def pack_rows(
    qtype: str, rows: NDArray[Any], *, q4_1: str = "split", wide: str = "two-4bit", centre: bool = True
) -> PackedWeight:
    """Re-lay ``rows`` (``[N, K/32 * block_bytes]`` uint8, one GGUF row per output feature) for MatMulNBits.

    ``q4_1`` picks the ``Q4_1`` form, ``"split"`` or ``"zero-point"``; ``wide`` the form of the types
    with codes wider than 4 bits (``Q8_0``, ``Q5_*``, ``Q6_K``), ``"two-4bit"`` or ``"8bit"`` (see the
    module docstring). ``centre`` moves the 4-bit operators of the types with offsets onto the
    operator's default zero point where that is exact (:func:`_centred`). Raises ``ValueError`` for
    a type outside :data:`NATIVE_TYPES` or rows that are not whole blocks.

    Every code, scale and offset is read by ``gguf.quants.dequantize`` itself, from copies of the
    blocks edited as the type's :class:`_Layout` says (unit scales give the codes; codes of
    ``zero + 1`` give the scales; codes of ``zero`` give the offsets), so each follows gguf's bit
    layout by construction and is the float32 value ``dequantize`` computes.
    """
    if q4_1 not in ("split", "zero-point"):
        raise ValueError(f"q4_1 must be 'split' or 'zero-point', got {q4_1!r}")
    if wide not in ("two-4bit", "8bit"):
        raise ValueError(f"wide must be 'two-4bit' or '8bit', got {wide!r}")
    if qtype not in _LAYOUTS:
        raise ValueError(f"GGUF type {qtype} has no exact MatMulNBits form (mapped: {', '.join(_LAYOUTS)})")
    lay = _LAYOUTS[qtype]
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    if rows.ndim != 2 or rows.shape[1] % lay.size:
        raise ValueError(f"{qtype} rows must be [N, whole {lay.size}-byte blocks], got shape {rows.shape}")
    n = rows.shape[0]
    raw = rows.reshape(n, -1, lay.size)
    codes = (_dequantized(qtype, raw, lay.unit) + lay.zero).astype(np.uint8).reshape(n, -1, lay.block)
    scale = np.ascontiguousarray(_dequantized(qtype, raw, lay.ones)[:, :: lay.block])
    offsets = (
        None if lay.nothing is None else np.ascontiguousarray(_dequantized(qtype, raw, lay.nothing)[:, :: lay.block])
    )
    blocks, zero, block = codes.shape[1], lay.zero, lay.block
    if qtype == "Q4_1" and q4_1 == "zero-point":
        assert offsets is not None
        flat = scale == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            # float64 quotient rounded once to float32: the nearest zero point to -m/d there is
            z = np.where(flat, -1.0, -offsets.astype(np.float64) / scale.astype(np.float64)).astype(np.float32)
        codes = np.where(flat[..., None], np.uint8(0), codes).astype(np.uint8)
        return PackedWeight(4, _pack4(codes), np.where(flat, offsets, scale).astype(np.float32), z)
    if lay.bits <= 4:
        weight = PackedWeight(4, _pack4(codes), scale, _zero_points(n, blocks, zero, 4), offsets, None, block)
    elif wide == "8bit":
        return PackedWeight(8, codes, scale, _zero_points(n, blocks, zero, 8), offsets, None, block)
    else:
        # q - zero = 16 * (hi - zero / 16) + lo: every wide type's zero point is a multiple of 16
        high = PackedWeight(
            4, _pack4(codes >> np.uint8(4)), scale, _zero_points(n, blocks, zero // HIGH_FACTOR, 4), None, None, block
        )
        low = _zero_points(n, blocks, 0, 4)
        weight = PackedWeight(4, _pack4(codes & np.uint8(0x0F)), scale, low, offsets, high, block)
    return _centred(weight) if centre else weight


def _centred(weight: PackedWeight) -> PackedWeight:
    """``weight`` with its (low) 4-bit operator moved from zero point 0 onto the operator's default 8, the
    shift folded into the offsets: ``d * q + m = d * (q - 8) + (m + 8 d)``. Unchanged when it has no
    offsets, another zero point, or any new offset that is not exact in float32.

    Why: ONNX Runtime 1.32's float32 kernel (``accuracy_level=0``) runs faster without a zero-point
    input, and at ``accuracy_level=4`` the part that goes through int8 activations is then centred,
    which lowered the int8 form's perplexity cost on the packaged SmolLM2's longer held-out texts
    (docs/how-to/gguf.md, "Centred codes").

    Exactness: the scale has at most 17 significant bits (``d`` times a 6-bit sub-block scale) and
    ``|q - 8| <= 8``, so ``d * (q - 8)`` is exact (with a two-4bit form's high half, ``|q - 8| <= 23``
    over both); when ``m + 8 d`` is exact too, an identity input still gives ``dequantize``'s
    ``d * q + m``, rounded once, bit for bit. The check covers the whole weight: one inexact block
    keeps every block on zero point 0."""
    zero = weight.zero_points
    if weight.offsets is None or weight.bits != 4 or zero is None or zero.any():
        return weight
    wide = weight.offsets.astype(np.float64) + 8.0 * weight.scales.astype(np.float64)
    offsets = wide.astype(np.float32)
    if not np.array_equal(offsets.astype(np.float64), wide):  # also False for a NaN or an infinity
        return weight
    return replace(weight, zero_points=None, offsets=offsets)
