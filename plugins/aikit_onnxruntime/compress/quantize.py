"""ONNX Runtime's quantizers applied to one graph file: dynamic / static (QDQ) int8 and MatMulNBits.

Each function reads ``src`` and writes ``dst`` (external data for graphs over 1 GB). Node
exclusions are exact node names or ``fnmatch`` patterns (``"*layer.5*"``).
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from numpy.typing import NDArray
from typing_extensions import override

__all__ = ["dynamic_int8", "quantizable_nodes", "resolve_exclusions", "static_int8", "weight_only"]

_FLOAT = 1  # onnx.TensorProto.FLOAT: shape inference cannot type com.microsoft ops' outputs without it
_LARGE = 1 << 30
logger = logging.getLogger("aikit.onnxruntime")


class _OrtRootRecords(logging.Handler):
    """Stands on the root logger while an ONNX Runtime quantizer runs (see :func:`_quantizer_logging`):
    records from ONNX Runtime's files go to aikit's logger at DEBUG, any other record to Python's
    last-resort handler, exactly as it would have gone without this handler."""

    @override
    def emit(self, record: logging.LogRecord) -> None:
        if f"{os.sep}onnxruntime{os.sep}" in record.pathname:
            logger.debug("onnxruntime quantizer: %s", record.getMessage())
        elif logging.lastResort is not None and record.levelno >= logging.lastResort.level:
            logging.lastResort.handle(record)


@contextlib.contextmanager
def _quantizer_logging() -> Iterator[None]:
    """Keep ONNX Runtime's quantizers from configuring the application's root logger.

    They log through the root logger itself (``logging.info(...)``, ``logging.warning(...)``), and
    onnxruntime 1.32's ``matmul_nbits_quantizer`` calls ``logging.basicConfig(level=INFO)`` when it is
    imported; ``logging.warning`` calls ``basicConfig()`` too when the root logger has no handler. In
    a program that has not set up logging (a script, the ``aikit`` CLI) either left a stderr handler
    on the root logger: one ``optimize`` of MiniLM then printed about 700 INFO lines and "Please
    consider to run pre-processing" warnings, and the program's own logging was reconfigured.
    ``basicConfig`` does nothing while the root logger has a handler, so :class:`_OrtRootRecords`
    stands there while a quantizer is imported and runs. When the application has configured the
    root logger, its handlers get the root-logger records. The quantizers' own named loggers
    (``onnxruntime.quantization.*``, INFO per node) are held at WARNING meanwhile.
    """
    named = logging.getLogger("onnxruntime.quantization")
    level = named.level
    named.setLevel(logging.WARNING)
    root = logging.getLogger()
    stand_in = None if root.handlers else _OrtRootRecords()
    if stand_in is not None:
        root.addHandler(stand_in)
    try:
        yield
    finally:
        if stand_in is not None:
            root.removeHandler(stand_in)
        named.setLevel(level)


def _large(src: Path) -> bool:
    return sum(p.stat().st_size for p in src.parent.glob(f"{src.name}*")) > _LARGE


def quantizable_nodes(src: Path, op_types: Sequence[str]) -> list[str]:
    """Names of ``op_types`` nodes whose weight (second input) is a constant initializer, in graph order."""
    import onnx

    model = onnx.load(str(src), load_external_data=False)
    constants = {t.name for t in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type not in op_types:
            continue
        if node.op_type == "MatMul" and (len(node.input) < 2 or node.input[1] not in constants):
            continue  # activation x activation (attention scores) is not a weight
        names.append(node.name)
    return names


def resolve_exclusions(candidates: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The candidates an ``exclude`` list names (exact names or fnmatch patterns)."""
    return [c for c in candidates if any(c == p or fnmatch.fnmatchcase(c, p) for p in patterns)]


def dynamic_int8(
    src: Path, dst: Path, *, per_channel: bool, reduce_range: bool, exclude: Sequence[str], op_types: Sequence[str]
) -> None:
    nodes = resolve_exclusions(quantizable_nodes(src, op_types), exclude)
    with _quantizer_logging():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            str(src),
            str(dst),
            op_types_to_quantize=list(op_types),
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=nodes,
            use_external_data_format=_large(src),
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": _FLOAT},
        )


class _Reader:
    """Feeds calibration batches (already collated by the task) to ORT's static calibrator."""

    def __init__(self, batches: Sequence[dict[str, NDArray[Any]]], feed: Any) -> None:
        self._batches: Iterator[dict[str, NDArray[Any]]] = iter([feed(b) for b in batches])

    def get_next(self) -> dict[str, NDArray[Any]] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # pragma: no cover - only some calibrators call it
        pass


def static_int8(
    src: Path,
    dst: Path,
    *,
    batches: Sequence[dict[str, NDArray[Any]]],
    feed: Any,
    per_channel: bool,
    method: str,
    exclude: Sequence[str],
    op_types: Sequence[str],
) -> None:
    import tempfile

    nodes = resolve_exclusions(quantizable_nodes(src, op_types), exclude)
    with _quantizer_logging(), tempfile.TemporaryDirectory(prefix="aikit-qdq-") as tmp:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        # Symbolic shape inference types the outputs of fused com.microsoft ops; without it the
        # QDQ quantizer cannot see which activations are float and leaves them unquantized.
        typed = Path(tmp) / "typed.onnx"
        quant_pre_process(
            str(src), str(typed), skip_optimization=True, skip_onnx_shape=False, save_as_external_data=_large(src)
        )
        quantize_static(
            str(typed),
            str(dst),
            _Reader(batches, feed),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(op_types),
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=nodes,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile,
            }[method],
            use_external_data_format=_large(src),
            extra_options={"DefaultTensorType": _FLOAT, "MatMulConstBOnly": True},
        )


def weight_only(
    src: Path, dst: Path, *, bits: int, block_size: int, accuracy_level: int, exclude: Sequence[str]
) -> None:
    """MatMul → ``com.microsoft.MatMulNBits`` with ``bits``-bit blockwise weights (fp32 activations in)."""
    import onnx

    nodes = resolve_exclusions(quantizable_nodes(src, ("MatMul",)), exclude)
    model = onnx.load(str(src))
    with _quantizer_logging():
        from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

        config = DefaultWeightOnlyQuantConfig(
            block_size=block_size, is_symmetric=True, accuracy_level=accuracy_level, bits=bits
        )
        # Bits, block size and accuracy level travel in ``algo_config`` only: the quantizer reads them
        # from there, and before onnxruntime 1.24 it takes no ``bits`` argument of its own.
        quantizer = MatMulNBitsQuantizer(model, nodes_to_exclude=nodes, algo_config=config)
        quantizer.process()
    large = _large(src)
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=large)
