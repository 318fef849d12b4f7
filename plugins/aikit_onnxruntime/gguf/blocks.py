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
- ``Q8_0``, ``"two-4bit"`` form: ``q + 128 = 16 * hi + lo`` so ``d * q = 16 * (d * (hi - 8)) + d * lo``:
  two 4-bit operators sharing the scales ``d`` (``hi`` with the default zero point 8, ``lo`` with
  zero points 0); the high operator's output is multiplied by :data:`HIGH_FACTOR` (16) and added
  to the low one's. Each product is exact (``d`` has 11 significant bits, ``|q| <= 128``, and a
  factor of 16 is a power of two, so scaling the high sum by it rounds exactly as scaling its
  scales would), so an identity input reproduces ``d * q`` bit for bit, and both halves run on
  the fast float32 4-bit path. Sharing the scales saves one float32 scale per block (for
  SmolLM2's 49152x576 head, 3.5 MB that the kernel reads on every call);
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

  The codes are read by ``gguf.quants.dequantize`` itself, on a copy of the blocks whose scales
  are set to 1 and offsets to 0, so they follow its bit layout by construction. Every product is
  exact in float32 (``d`` has 11 significant bits, ``sc`` at most 8, the codes at most 6, and the
  high half's factor 16 is a power of two), so the two halves add up to ``dequantize``'s weight
  exactly and the offset is added once, as it adds it.

- the 2- and 3-bit K-quants, one 4-bit operator with ``block_size=16`` (their scales are per 16):

  - ``Q3_K`` (32 bytes of high bits, 64 of 2-bit lows, 12 bytes of 6-bit scales, ``d``;
    ``w = d * (sc - 32) * (q - 4)``, ``q`` of 3 bits): codes ``q``, zero point 4, scale
    ``d * (sc - 32)``;
  - ``Q2_K`` (16 bytes of 4-bit scales and mins, 64 of 2-bit codes, ``d``, ``dmin``;
    ``w = (d * sc) * q - dmin * m``): codes ``q``, zero point 0, scale ``d * sc``, plus
    ``offsets = -(dmin * m)`` per 16 elements.

  Their codes, scales and offsets are also read by ``gguf.quants.dequantize`` from copies of the
  blocks: unit scales give the codes, codes of 1 (and no offset) give the scales, codes of 0 give
  the offsets, each value computed by the float32 operations ``dequantize`` itself performs.

Other types (``IQ*``, ``TQ*``, ``F16``, ``BF16`` ...) have no exact ``MatMulNBits`` form (non-linear
code books or ternary packings, or no codes at all); :data:`NATIVE_TYPES` lists the ones this
module maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["BLOCK", "HIGH_FACTOR", "NATIVE_TYPES", "PackedWeight", "pack_rows"]

BLOCK = 32
# the high half of a two-4bit form: its operator's output times this, added to the low half's
HIGH_FACTOR = 16
# GGUF type name -> (bytes per GGUF block, code bits); a K-quant block covers 256 elements
NATIVE_TYPES: dict[str, tuple[int, int]] = {
    "Q4_0": (18, 4),
    "Q4_1": (20, 4),
    "Q8_0": (34, 8),
    "Q4_K": (144, 4),
    "Q5_0": (22, 5),
    "Q5_1": (24, 5),
    "Q5_K": (176, 5),
    "Q6_K": (210, 6),
    "Q2_K": (84, 2),
    "Q3_K": (110, 3),
}


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
    """A second operator whose output, times :data:`HIGH_FACTOR`, is added (the high nibbles of the
    ``"two-4bit"`` forms); its ``scales`` are this weight's own array, so a graph stores them once."""
    block: int = BLOCK
    """``MatMulNBits``' ``block_size``: elements per scale (16 for ``Q6_K``, else 32)."""

    @property
    def n(self) -> int:
        return int(self.packed.shape[0])

    @property
    def k(self) -> int:
        return int(self.packed.shape[1]) * self.block


def _f16(raw: NDArray[np.uint8], start: int) -> NDArray[np.float32]:
    """The float16 field at bytes ``start:start + 2`` of every block (``raw``: ``[N, blocks, bytes]``), as float32."""
    return raw[..., start : start + 2].copy().view(np.float16)[..., 0].astype(np.float32)


def _nibbles(qs: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """GGUF's 16 nibble bytes per block (``[..., 16]``) → the 32 codes in element order (``[..., 32]``)."""
    return np.concatenate([qs & np.uint8(0x0F), qs >> np.uint8(4)], axis=-1)


def _pack4(codes: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Codes in element order (``[..., 32]``) → MatMulNBits' 4-bit blob (element ``2j`` low, ``2j+1`` high)."""
    return (codes[..., 0::2] | (codes[..., 1::2] << np.uint8(4))).astype(np.uint8)


def pack_rows(qtype: str, rows: NDArray[Any], *, q4_1: str = "split", wide: str = "two-4bit") -> PackedWeight:
    """Re-lay ``rows`` (``[N, K/32 * block_bytes]`` uint8, one GGUF row per output feature) for MatMulNBits.

    ``q4_1`` picks the ``Q4_1`` form, ``"split"`` or ``"zero-point"``; ``wide`` the form of the types
    with codes wider than 4 bits (``Q8_0``, ``Q5_*``, ``Q6_K``), ``"two-4bit"`` or ``"8bit"`` (see the
    module docstring). Raises ``ValueError`` for a type outside :data:`NATIVE_TYPES` or rows that are
    not whole blocks.
    """
    if q4_1 not in ("split", "zero-point"):
        raise ValueError(f"q4_1 must be 'split' or 'zero-point', got {q4_1!r}")
    if wide not in ("two-4bit", "8bit"):
        raise ValueError(f"wide must be 'two-4bit' or '8bit', got {wide!r}")
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
    if qtype in _WIDE:
        return _pack_wide(qtype, raw, wide)
    if qtype in ("Q2_K", "Q3_K"):
        return _pack_low_k(qtype, raw)
    d = _f16(raw, 0)
    if qtype == "Q8_0":
        q = raw[..., 2:].copy().view(np.int8)
        packed = (q.astype(np.int16) + 128).astype(np.uint8)
        if wide == "8bit":
            return PackedWeight(bits, packed, d, None)
        zeros = np.zeros((n, (blocks + 1) // 2), dtype=np.uint8)
        high = PackedWeight(4, _pack4(packed >> np.uint8(4)), d, None)
        return PackedWeight(4, _pack4(packed & np.uint8(0x0F)), d, zeros, None, high)
    if qtype == "Q4_0":
        return PackedWeight(bits, _pack4(_nibbles(raw[..., 2:])), d, None)
    m = _f16(raw, 2)
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


def _k_scales(raw: NDArray[np.uint8]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``Q4_K`` / ``Q5_K`` super-blocks (``[N, S, bytes]``): the per-32 scales ``d * sc`` and offsets
    ``-(dmin * m)`` (``[N, S * 8]``), computed as ``gguf.quants`` computes them."""
    n, supers = raw.shape[0], raw.shape[1]
    d = _f16(raw, 0)[..., None]
    dmin = _f16(raw, 2)[..., None]
    packed_scales = raw[..., 4:16].reshape(n, supers, 3, 4)
    lo, hi, mixed = packed_scales[..., 0, :], packed_scales[..., 1, :], packed_scales[..., 2, :]
    # 6-bit scales and mins, unpacked as gguf.quants.Q4_K.get_scale_min does
    sc = np.concatenate([lo & 0x3F, (mixed & 0x0F) | ((lo >> 2) & 0x30)], axis=-1).astype(np.float32)
    mins = np.concatenate([hi & 0x3F, (mixed >> 4) | ((hi >> 2) & 0x30)], axis=-1).astype(np.float32)
    scale = (d * sc).reshape(n, supers * 8).astype(np.float32)
    offsets = (-(dmin * mins)).reshape(n, supers * 8).astype(np.float32)
    return scale, offsets


# The 5- and 6-bit types and their codes' zero point in ``w = scale * (q - zero) [+ offset]``.
_WIDE: dict[str, int] = {"Q5_0": 16, "Q5_1": 0, "Q5_K": 0, "Q6_K": 32}
_ONE_F16 = np.array([1.0], dtype=np.float16).view(np.uint8)


def _unit_codes(qtype: str, raw: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The unsigned codes ``q`` of ``raw``'s blocks (``[N, elements]``), read by ``gguf.quants.dequantize``
    from a copy whose scales are 1 and offsets 0 (so its output is ``q - zero``, small integers)."""
    unit = raw.copy()
    if qtype in ("Q5_0", "Q5_1"):
        unit[..., 0:2] = _ONE_F16
        if qtype == "Q5_1":
            unit[..., 2:4] = 0  # m = +0.0
    elif qtype == "Q5_K":
        unit[..., 0:2] = _ONE_F16
        unit[..., 2:4] = 0  # dmin = +0.0
        # every 6-bit sub-block scale 1 and min 0 in get_scale_min's packing
        unit[..., 4:8], unit[..., 8:12], unit[..., 12:16] = 1, 0, 1
    else:  # Q6_K: 16 int8 sub-block scales, then d
        unit[..., 192:208] = 1
        unit[..., 208:210] = _ONE_F16
    return (_dequantized(qtype, unit) + _WIDE[qtype]).astype(np.uint8)


def _pack_wide(qtype: str, raw: NDArray[np.uint8], form: str) -> PackedWeight:
    """A 5- or 6-bit type (``[N, blocks, bytes]``) as two 4-bit halves or one 8-bit operator."""
    n = raw.shape[0]
    offsets: NDArray[np.float32] | None = None
    block = BLOCK
    if qtype in ("Q5_0", "Q5_1"):
        scale = _f16(raw, 0)
        if qtype == "Q5_1":
            offsets = _f16(raw, 2)
    elif qtype == "Q5_K":
        scale, offsets = _k_scales(raw)
    else:  # Q6_K: a scale per 16 elements, d * sc as gguf.quants computes it
        block = 16
        d = _f16(raw, 208)[..., None]
        sc = raw[..., 192:208].copy().view(np.int8).astype(np.float32)
        scale = (d * sc).reshape(n, -1).astype(np.float32)
    codes = _unit_codes(qtype, raw).reshape(n, -1, block)
    blocks = codes.shape[1]
    zero = _WIDE[qtype]
    if form == "8bit":
        zeros = np.full((n, blocks), zero, dtype=np.uint8)
        return PackedWeight(8, codes, scale, zeros, offsets, None, block)
    high_zero = zero // HIGH_FACTOR  # q - zero = 16 * (hi - zero / 16) + lo: the zero points are multiples of 16
    high = PackedWeight(4, _pack4(codes >> np.uint8(4)), scale, _zeros4(n, blocks, high_zero), None, None, block)
    return PackedWeight(4, _pack4(codes & np.uint8(0x0F)), scale, _zeros4(n, blocks, 0), offsets, high, block)


def _dequantized(qtype: str, raw: NDArray[np.uint8]) -> NDArray[np.float32]:
    """``gguf.quants.dequantize`` of ``raw`` (``[N, blocks, bytes]``) as ``[N, elements]`` float32."""
    import gguf

    n = raw.shape[0]
    values = gguf.quants.dequantize(raw.reshape(n, -1), getattr(gguf.GGMLQuantizationType, qtype))
    return np.asarray(values, dtype=np.float32).reshape(n, -1)


def _pack_low_k(qtype: str, raw: NDArray[np.uint8]) -> PackedWeight:
    """``Q2_K`` / ``Q3_K`` super-blocks (``[N, S, bytes]``) as one 4-bit operator with ``block_size=16``.

    Codes, scales and offsets come from ``dequantize`` on copies of the blocks (see the module doc):
    ``Q3_K`` (hmask 0:32, 2-bit lows 32:96, scales 96:108, d 108:110), ``Q2_K`` (scales 0:16, codes
    16:80, d 80:82, dmin 82:84)."""
    n, block = raw.shape[0], 16
    unit, ones = raw.copy(), raw.copy()
    if qtype == "Q3_K":
        zero = 4
        # every 6-bit scale 33 (sc - 32 = 1): low nibbles 1 in bytes 96:104, high 2-bit pairs 2 in 104:108
        unit[..., 96:104], unit[..., 104:108], unit[..., 108:110] = 0x11, 0xAA, _ONE_F16
        ones[..., 0:32], ones[..., 32:96] = 0xFF, 0x55  # every code 5: q - 4 = 1, so w = d * (sc - 32)
        offsets = None
    else:
        zero = 0
        unit[..., 0:16], unit[..., 80:82], unit[..., 82:84] = 0x01, _ONE_F16, 0  # sc 1, m 0, d 1, dmin +0
        ones[..., 16:80], ones[..., 82:84] = 0x55, 0  # every code 1, dmin +0: w = d * sc
        nothing = raw.copy()
        nothing[..., 16:80] = 0  # every code 0: w = -(dmin * m)
        offsets = _dequantized(qtype, nothing)[:, ::block].copy()
    codes = (_dequantized(qtype, unit) + zero).astype(np.uint8).reshape(n, -1, block)
    scale = _dequantized(qtype, ones)[:, ::block].copy()
    blocks = codes.shape[1]
    return PackedWeight(4, _pack4(codes), scale, _zeros4(n, blocks, zero), offsets, None, block)


def _zeros4(n: int, blocks: int, value: int) -> NDArray[np.uint8]:
    """Packed 4-bit ``uint8`` zero points, ``value`` for every block (two per byte, low nibble first)."""
    return np.full((n, (blocks + 1) // 2), value | (value << 4), dtype=np.uint8)


def _pack_q4_k(raw: NDArray[np.uint8]) -> PackedWeight:
    """``Q4_K`` super-blocks (``[N, S, 144]``) in the split form: 8 blocks of 32 per super-block."""
    n, supers = raw.shape[0], raw.shape[1]
    scale, offsets = _k_scales(raw)
    qs = raw[..., 16:].reshape(n, supers, 4, 1, 32) >> np.array([0, 4], dtype=np.uint8).reshape(1, 1, 1, 2, 1)
    codes = (qs & np.uint8(0x0F)).reshape(n, supers * 8, 32).astype(np.uint8)
    return PackedWeight(4, _pack4(codes), scale, _zeros4(n, supers * 8, 0), offsets)
