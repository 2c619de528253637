"""ColBERT checkpoint -> ONNX: the BERT graph of :mod:`models_bake.convert.bert` plus the projection.

A ColBERT checkpoint (``HF_ColBERT`` as the ColBERT library saves it, ``model_type: bert``) is a
BertModel and ``linear.weight`` [dim, hidden], a linear layer without bias. The BERT converter
builds ``last_hidden_state``; this module adds ``token_embeddings = last_hidden_state @ W.T`` and
makes that the graph's only output. Per-token normalisation, markers and the punctuation skiplist
happen at run time (kettle.late_interaction).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models_bake.convert.bert import convert as convert_bert
from models_bake.convert.common import load_weights

OUTPUT = "token_embeddings"
HIDDEN_OUTPUT = "last_hidden_state"
PROJECTION_KEYS = ("linear.weight", "colbert_linear.weight")


def find_projection(tensors: dict[str, np.ndarray]) -> tuple[str, np.ndarray]:
    """(name, weight [dim, hidden]) of a ColBERT state dict's projection."""
    for key in PROJECTION_KEYS:
        if key in tensors:
            weight = np.asarray(tensors[key], dtype=np.float32)
            if weight.ndim != 2:
                raise ValueError(f"{key} has shape {weight.shape}; expected [dim, hidden]")
            return key, weight
    raise KeyError(
        f"not a ColBERT checkpoint: none of {', '.join(PROJECTION_KEYS)} in model.safetensors"
    )


def add_projection(model: onnx.ModelProto, weight: np.ndarray) -> onnx.ModelProto:
    """Append ``token_embeddings = last_hidden_state @ weight.T`` and make it the only output."""
    graph = model.graph
    outputs = {o.name: o for o in graph.output}
    if HIDDEN_OUTPUT not in outputs:
        raise ValueError(f"the BERT graph has no {HIDDEN_OUTPUT!r} output; got {list(outputs)}")
    hidden_dims = outputs[HIDDEN_OUTPUT].type.tensor_type.shape.dim
    hidden = hidden_dims[2].dim_value if len(hidden_dims) == 3 else 0
    if hidden and weight.shape[1] != hidden:
        raise ValueError(f"projection is {weight.shape} but the BERT hidden size is {hidden}")
    name = "colbert.linear.weight_t"
    graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight.T), name))
    graph.node.append(
        helper.make_node("MatMul", [HIDDEN_OUTPUT, name], [OUTPUT], name="colbert.linear/MatMul")
    )
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info(
            OUTPUT, TensorProto.FLOAT, ["batch", "sequence", int(weight.shape[0])]
        )
    )
    return model


def convert(model_dir: Path, out_path: Path, *, head: str | None = "BertModel", opset: int = 17):
    """Convert a ColBERT ``model_dir`` (config.json + model.safetensors) to ``out_path``.

    Returns the BERT converter's description with ``output`` = token_embeddings and ``dim``.
    """
    model_dir, out_path = Path(model_dir), Path(out_path)
    key, weight = find_projection(load_weights(model_dir))
    bert_path = out_path.with_name(out_path.stem + ".bert.onnx")
    info = convert_bert(model_dir, bert_path, head=head or "BertModel", opset=opset)
    if info["head"] != "BertModel":
        raise ValueError(f"a ColBERT graph is built on BertModel, not {info['head']}")
    try:
        model = add_projection(onnx.load(str(bert_path)), weight)
    finally:
        bert_path.unlink(missing_ok=True)
    onnx.checker.check_model(model)
    tmp = out_path.with_name(out_path.name + ".tmp")
    onnx.save_model(model, str(tmp))
    tmp.replace(out_path)
    return info | {"output": OUTPUT, "dim": int(weight.shape[0]), "projection": key}
