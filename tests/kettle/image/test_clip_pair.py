"""A CLIP-style pair: a text tower as a TextEmbedding model and an image tower, baked from ONNX
files whose first output is the token states and whose pooled output (text_embeds /
image_embeds) is the shared space. The bake must pick the pooled outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from _image_model import CLIP_LIKE, DIM, make_test_images, numpy_forward, write_model_dir
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from kettle.dense import TextEmbedding
from kettle.image import ImageEmbedding
from kettle.preprocess import ImagePreprocessor

WORDS = ["[UNK]", "[PAD]", "a", "red", "cat", "blue", "dog", "photo", "of"]
HIDDEN = 12


def text_weights():
    rng = np.random.default_rng(3)
    return (
        rng.standard_normal((len(WORDS), HIDDEN)).astype(np.float32),
        rng.standard_normal((HIDDEN, DIM)).astype(np.float32),
    )


def write_text_tower(directory):
    """input_ids, attention_mask -> last_hidden_state (first output), text_embeds = masked mean
    of the token table rows, projected to DIM; plus its tokenizer.json."""
    directory.mkdir(parents=True)
    table, proj = text_weights()
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["last_hidden_state"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=f),
        helper.make_node("Unsqueeze", ["m", "axis2"], ["m3"]),
        helper.make_node("Mul", ["last_hidden_state", "m3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["m3", "axis1"], ["count"], keepdims=0),
        helper.make_node("Div", ["summed", "count"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "proj"], ["text_embeds"]),
    ]
    inits = [
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(proj, "proj"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([2], np.int64), "axis2"),
    ]
    ints = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
        for n in ("input_ids", "attention_mask")
    ]
    outs = [
        helper.make_tensor_value_info("last_hidden_state", f, ["batch", "sequence", HIDDEN]),
        helper.make_tensor_value_info("text_embeds", f, ["batch", DIM]),
    ]
    graph = helper.make_graph(nodes, "tiny_text_tower", ints, outs, initializer=inits)
    opsets = [helper.make_opsetid("", 17)]
    model = helper.make_model(
        graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets)
    )
    onnx.checker.check_model(model)
    onnx.save_model(model, str(directory / "model.onnx"))
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    tok.save(str(directory / "tokenizer.json"))
    return directory


@pytest.fixture(scope="module")
def pair(tmp_path_factory, bake_local):
    root = tmp_path_factory.mktemp("clip-pair")
    text = bake_local(
        "test/clip-text",
        write_text_tower(root / "text"),
        kind="dense",
        pooling="eos",
        max_length=77,
    )
    vision = bake_local(
        "test/clip-vision",
        write_model_dir(root / "vision", CLIP_LIKE, outputs_first="last_hidden_state"),
    )
    return text, vision


def test_bake_picks_the_pooled_outputs(pair):
    text, vision = pair
    assert text.manifest.onnx["outputs"][0] == "last_hidden_state"
    assert text.manifest.onnx["output"] == "text_embeds"
    assert vision.manifest.onnx["outputs"][0] == "last_hidden_state"
    assert vision.manifest.onnx["output"] == "image_embeds"


def test_text_and_image_vectors_share_a_space(pair):
    text, vision = pair
    captions = ["a red cat", "photo of a blue dog dog", "cat"]
    text_model = TextEmbedding("test/clip-text", models_dir=text.path.parents[1])
    image_model = ImageEmbedding("test/clip-vision", models_dir=vision.path.parents[1])
    text_vecs = np.stack(list(text_model.embed(captions, batch_size=2)))  # padded batches
    images = list(make_test_images().values())[:4]
    image_vecs = np.stack(list(image_model.embed(images)))
    assert text_vecs.shape == (3, DIM) and image_vecs.shape == (4, DIM)

    table, proj = text_weights()
    raw_text = np.stack(
        [table[[WORDS.index(w) for w in c.split()]].mean(0) @ proj for c in captions]
    )
    raw_image = numpy_forward(ImagePreprocessor.from_config(CLIP_LIKE)(images))
    unit_text = raw_text / np.linalg.norm(raw_text, axis=1, keepdims=True)
    unit_image = raw_image / np.linalg.norm(raw_image, axis=1, keepdims=True)
    np.testing.assert_allclose(text_vecs, unit_text, atol=1e-5)
    # Dot products of kettle's vectors are the towers' cosine similarities.
    np.testing.assert_allclose(text_vecs @ image_vecs.T, unit_text @ unit_image.T, atol=1e-5)
