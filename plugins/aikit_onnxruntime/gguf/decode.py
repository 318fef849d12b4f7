"""A decoding variant of a decoder graph: logits for the last ``n`` positions only.

``add_decode_head(src, dst)`` writes ``dst`` next to ``src`` sharing its external weight file (no
weight is copied) with one change that :class:`aikit_onnxruntime.decoder.DecoderGraph` uses when present:
input ``num_logits_to_keep`` (int64, shape ``[1]``): the output head (the MatMuls between the final
norm and ``logits``) runs on the last ``n`` positions only. A 512-token prompt then costs one row of
the 49,152-wide head instead of 512 (ONNX Runtime runs every node of a graph whatever outputs are
fetched, so an extra output cannot save this; the head's input has to be sliced). ``n`` = the
sequence length gives every position, as before.

The greedy token is not chosen in the graph: ONNX Runtime writes the logits row into a numpy buffer
bound once (nothing is copied), and ``numpy.argmax`` over 49,152 floats takes about 4 microseconds
here against 52 for ONNX Runtime's ``ArgMax`` node (35 for ``TopK`` with ``k=1``), which also
disagrees with numpy on a row holding NaN. Graphs of layout 8 and older have such a node (output
``next_tokens``); they still load, and that output is left unbound.

onnxruntime-genai cannot feed the extra input, so ``src`` stays as it was for genai.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DECODE_INPUT", "add_decode_head"]

DECODE_INPUT = "num_logits_to_keep"
_HEAD_OPS = ("MatMul", "MatMulNBits")


def add_decode_head(src: Path, dst: Path) -> bool:
    """Write the decoding variant of ``src`` to ``dst`` (same folder); False (nothing written) when the
    head cannot be found: no ``logits`` output, or not exactly one tensor feeding its MatMuls."""
    import onnx
    from onnx import TensorProto, helper

    if src.parent != dst.parent:
        raise ValueError("the decoding graph shares its weight file with the source: same folder only")
    model = onnx.load(str(src), load_external_data=False)
    graph = model.graph
    if "logits" not in {o.name for o in graph.output} or DECODE_INPUT in {i.name for i in graph.input}:
        return False
    producers = {o: n for n in graph.node for o in n.output}
    head: list[onnx.NodeProto] = []
    feeds: set[str] = set()
    stack = ["logits"]
    # from the logits back through Add / Cast / Mul (a two-4bit head's high half is scaled by 16) to the
    # MatMuls reading the final hidden state
    while stack:
        node = producers.get(stack.pop())
        if node is None or node in head:
            continue
        if node.op_type in _HEAD_OPS:
            head.append(node)
            feeds.add(node.input[0])
        elif node.op_type in ("Add", "Cast", "Mul"):
            head.append(node)
            stack += [i for i in node.input if i in producers]
        else:
            return False
    if len(feeds) != 1 or not any(n.op_type in _HEAD_OPS for n in head):
        return False
    hidden = feeds.pop()
    sliced = f"{hidden}.last_n"
    graph.input.append(helper.make_tensor_value_info(DECODE_INPUT, TensorProto.INT64, [1]))
    graph.initializer.extend(
        [
            helper.make_tensor("aikit_decode_end", TensorProto.INT64, [1], [2**62]),
            helper.make_tensor("aikit_decode_axis", TensorProto.INT64, [1], [1]),
        ]
    )
    extra = [
        helper.make_node("Neg", [DECODE_INPUT], ["aikit_decode_start"], name="aikit_decode_neg"),
        helper.make_node(
            "Slice",
            [hidden, "aikit_decode_start", "aikit_decode_end", "aikit_decode_axis"],
            [sliced],
            name="aikit_decode_slice",
        ),
    ]
    for node in head:
        node.input[:] = [sliced if i == hidden else i for i in node.input]
    # the slice goes right after the producer of the hidden state, keeping the node list topological
    position = next((k for k, n in enumerate(graph.node) if hidden in n.output), -1) + 1
    for offset, node in enumerate(extra):
        graph.node.insert(position + offset, node)
    onnx.save(model, str(dst))  # external data stays referenced by name: the source's weight file
    return True
