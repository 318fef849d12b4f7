"""From a torch model to validated ONNX graphs in the cache.

- ``cached``: ``export_parts``, the cached export behind ``OrtBackend.from_parts``;
- ``build``: one build into a cache folder (``model.onnx``, or encoder + decoder);
- ``graphs``: the graph layout per task; ``decoder``: decoder LLMs with an explicit KV cache;
- ``sample_inputs``: the real inputs an export is traced with; ``validate``: the check against torch;
- ``cache``: the on-disk cache and its keys.
"""
