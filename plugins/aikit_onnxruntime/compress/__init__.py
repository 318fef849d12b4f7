"""ONNX Runtime's own compression: the ``ort-*`` strategies (``strategies``), the quantizers they
run (``quantize``, ``quantize_rows``) and the offline transformer fusions (``fusion``)."""
