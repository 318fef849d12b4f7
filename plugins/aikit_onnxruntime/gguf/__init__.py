"""GGUF files on ONNX Runtime with their own quantized blocks (``ort-gguf-native``).

- ``load``: when a GGUF takes this path, and opening its cached graph without torch;
- ``blocks``: GGUF block types mapped exactly onto ``MatMulNBits`` / ``GatherBlockQuantized``;
- ``native``: rewriting the float32 export's MatMuls and Gathers onto those blocks;
- ``strategy``: the ``ort-gguf-native`` strategy and its cached builds; ``decode``: the decoding graph;
- ``candidates``: what this path proposes to ``Model.optimize``.
"""
