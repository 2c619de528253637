"""One-MatMul ONNX graphs for the int8 rewrite's tests: ``y = x @ w`` with ``x`` [b, s, k]."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def matmul_graph(w: np.ndarray) -> onnx.ModelProto:
    k, n = w.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", n])],
        [numpy_helper.from_array(w.astype(np.float32), "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def sparse_head_graph(w: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """A masked-LM head as the converter writes it: ``logits = x @ w + bias`` [b, s, n], with the
    ``attention_mask`` input a SPLADE graph has."""
    k, n = w.shape
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["y"]),
            helper.make_node("Add", ["bias", "y"], ["logits"]),
        ],
        "head",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", k]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", "s", n])],
        [
            numpy_helper.from_array(w.astype(np.float32), "w"),
            numpy_helper.from_array(bias.astype(np.float32), "bias"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
