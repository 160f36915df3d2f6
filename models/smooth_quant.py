"""SmoothQuant for dynamic int8: move activation outliers into the weights before quantising.

Dynamic int8 quantises each MatMul input with one scale for the whole tensor, so a few outlier channels (e5's
LayerNorm and GELU outputs have them) leave every other channel a handful of levels. SmoothQuant (Xiao et al.,
2023) divides input channel j by s_j = max|X_j|^alpha / max|W_j|^(1 - alpha) and multiplies weight row j by s_j:
the fp32 graph computes the same function and int8 loses less. Written here because ONNX Runtime offers it only
for static quantisation, through Intel Neural Compressor, and our int8 is dynamic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def smooth_matmul_inputs(fp32: Path, out: Path, feeds: Iterable[dict[str, np.ndarray]], alpha: float) -> int:
    """Write ``out``: ``fp32`` with every constant-weight MatMul input smoothed; returns how many inputs were.

    ``feeds`` are calibration batches; only the per-channel largest magnitude of each MatMul input is kept.
    MatMuls that share an input (the query, key and value projections) share one scale.
    """
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    model = onnx.load(str(fp32))
    weights = {tensor.name: tensor for tensor in model.graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights and len(weights[node.input[1]].dims) == 2:
            consumers[node.input[0]].append(node)

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in consumers)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = list(consumers)
    largest = {name: np.zeros(0, dtype=np.float32) for name in names}
    for feed in feeds:
        for name, value in zip(names, session.run(names, feed), strict=True):
            batch_max = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            largest[name] = np.maximum(largest[name], batch_max) if largest[name].size else batch_max
    del session, probe

    smoothing = {}
    for index, (name, nodes) in enumerate(consumers.items()):
        matrices = [numpy_helper.to_array(weights[node.input[1]]) for node in nodes]
        weight_max = np.max([np.abs(matrix).max(axis=1) for matrix in matrices], axis=0)
        scale = (np.maximum(largest[name], 1e-5) ** alpha / np.maximum(weight_max, 1e-5) ** (1 - alpha))
        scale = scale.astype(np.float32)
        for node, matrix in zip(nodes, matrices, strict=True):
            weights[node.input[1]].CopyFrom(numpy_helper.from_array(matrix * scale[:, None], node.input[1]))
            node.input[0] = f"{name}__smoothed"
        # not "<input>_scale": the quantiser names each input's scale that way
        model.graph.initializer.append(numpy_helper.from_array(1 / scale, f"{name}__smoothing"))
        smoothing[f"{name}__smoothed"] = helper.make_node("Mul", [name, f"{name}__smoothing"], [f"{name}__smoothed"],
                                                          name=f"SmoothQuant_{index}")
    ordered = []  # each Mul goes right before its first consumer, so the node list stays topologically sorted
    for node in model.graph.node:
        ordered.extend(smoothing.pop(name) for name in node.input if name in smoothing)
        ordered.append(node)
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    onnx.save(model, str(out))
    return len(consumers)
