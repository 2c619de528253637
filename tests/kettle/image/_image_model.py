"""A small ONNX image encoder and preprocessor configs, built here (no image weights on PyPI).

Graph: Conv(3->8, 3x3, pad 1) -> Relu -> GlobalAveragePool -> Flatten -> MatMul(8->16), input
``pixel_values`` [batch, 3, H, W], output ``image_embeds`` [batch, 16]; weights from a seed.
``numpy_forward`` is an independent forward pass (loops and numpy, no onnxruntime).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CHANNELS, DIM = 8, 16
FIXTURE = Path(__file__).with_name("fixtures") / "fastembed"  # tools/make_image_fixture.py


def description(name: str, source_dir: Path, text: str = "built by tests/kettle/image", **kw):
    """The registry description of an encoder ``write_model_dir`` wrote into ``source_dir``;
    ``kw`` overrides fields (kind, dim, pooling, max_length, ...)."""
    from kettle.registry import ModelDescription, Source

    fields = {"kind": "image", "dim": DIM, "pooling": "none", "max_length": 0} | kw
    return ModelDescription(
        name=name,
        normalize=True,
        sources=(Source("local", str(source_dir), onnx_file="model.onnx"),),
        license="test",
        description=text,
        architecture="onnx",
        **fields,
    )


CLIP_LIKE = {
    "image_processor_type": "CLIPImageProcessor",
    "do_convert_rgb": True,
    "do_resize": True,
    "size": {"shortest_edge": 32},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": 32, "width": 32},
    "do_rescale": True,
    "rescale_factor": 0.00392156862745098,
    "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
}
# {height, width} resize (non-square), bilinear, no crop; one mean/std for all channels.
HEIGHT_WIDTH = {
    "image_processor_type": "CLIPImageProcessor",
    "do_resize": True,
    "size": {"height": 24, "width": 40},
    "resample": 2,
    "do_center_crop": False,
    "do_rescale": True,
    "rescale_factor": 0.00392156862745098,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}
# No resize: a centre crop bigger than some images (zero padding), rescale only.
CROP_PAD = {
    "image_processor_type": "CLIPImageProcessor",
    "do_resize": False,
    "do_center_crop": True,
    "crop_size": {"height": 40, "width": 40},
    "do_rescale": True,
    "rescale_factor": 0.00392156862745098,
    "do_normalize": False,
}
CONFIGS = {"clip_like": CLIP_LIKE, "height_width": HEIGHT_WIDTH, "crop_pad": CROP_PAD}


def weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "conv.weight": (rng.standard_normal((CHANNELS, 3, 3, 3)) * 0.5).astype(np.float32),
        "conv.bias": (rng.standard_normal(CHANNELS) * 0.1).astype(np.float32),
        "proj.weight": (rng.standard_normal((CHANNELS, DIM)) * 0.5).astype(np.float32),
    }


def build_model(seed: int = 0, outputs_first: str = "image_embeds"):
    """The ModelProto. ``outputs_first="last_hidden_state"`` also exposes the conv feature map
    (reshaped to [batch, H*W, channels]) as the first output, the way some exports order them."""
    from onnx import TensorProto, helper, numpy_helper

    w = weights(seed)
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    nodes = [
        helper.make_node("Conv", ["pixel_values", "conv.weight", "conv.bias"], ["c"], pads=[1] * 4),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("MatMul", ["f", "proj.weight"], ["image_embeds"]),
    ]
    embeds = helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["batch", DIM])
    outputs = [embeds]
    if outputs_first == "last_hidden_state":
        inits.append(numpy_helper.from_array(np.array([0, CHANNELS, -1], np.int64), "shape3"))
        nodes += [
            helper.make_node("Reshape", ["r", "shape3"], ["flat"]),
            helper.make_node("Transpose", ["flat"], ["last_hidden_state"], perm=[0, 2, 1]),
        ]
        hidden = helper.make_tensor_value_info(
            "last_hidden_state", TensorProto.FLOAT, ["batch", "patches", CHANNELS]
        )
        outputs = [hidden, embeds]
    pixels = helper.make_tensor_value_info(
        "pixel_values", TensorProto.FLOAT, ["batch", 3, "height", "width"]
    )
    graph = helper.make_graph(nodes, "tiny_image_encoder", [pixels], outputs, initializer=inits)
    opsets = [helper.make_opsetid("", 17)]
    return helper.make_model(
        graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets)
    )


def write_model_dir(directory: Path, config: dict, seed: int = 0, **kwargs) -> Path:
    """``directory`` with model.onnx and preprocessor_config.json."""
    import onnx

    directory.mkdir(parents=True, exist_ok=True)
    model = build_model(seed, **kwargs)
    onnx.checker.check_model(model)
    onnx.save_model(model, str(directory / "model.onnx"))
    (directory / "preprocessor_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return directory


def numpy_forward(pixels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Conv (explicit sums over the 3x3 window) -> ReLU -> mean -> projection, float64."""
    w = weights(seed)
    kernel, bias = w["conv.weight"].astype(np.float64), w["conv.bias"].astype(np.float64)
    x = np.pad(pixels.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    n, _, h, width = pixels.shape
    conv = np.zeros((n, CHANNELS, h, width)) + bias[None, :, None, None]
    for dy in range(3):
        for dx in range(3):
            window = x[:, :, dy : dy + h, dx : dx + width]  # [n, 3, h, w]
            conv += np.einsum("nchw,oc->nohw", window, kernel[:, :, dy, dx])
    pooled = np.maximum(conv, 0).mean(axis=(2, 3))
    return pooled @ w["proj.weight"].astype(np.float64)


def make_test_images(seed: int = 7) -> dict:
    """Small deterministic images in the modes and shapes preprocessing must handle."""
    from PIL import Image

    rng = np.random.default_rng(seed)

    def rgb(width: int, height: int) -> np.ndarray:
        y, x = np.mgrid[0:height, 0:width]
        base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
        noise = rng.integers(-40, 40, size=(height, width, 3))
        return np.clip(base + noise, 0, 255).astype(np.uint8)

    rgba = np.concatenate([rgb(50, 30), rng.integers(0, 256, (30, 50, 1), dtype=np.uint8)], -1)
    return {
        "landscape_rgb": Image.fromarray(rgb(53, 37), "RGB"),
        "portrait_rgb": Image.fromarray(rgb(29, 61), "RGB"),
        "gray_l": Image.fromarray(rgb(45, 45)[..., 0], "L"),
        "rgba": Image.fromarray(rgba, "RGBA"),
        "palette_p": Image.fromarray(rgb(40, 52), "RGB").quantize(colors=16),
        "tiny_rgb": Image.fromarray(rgb(7, 5), "RGB"),
        "wide_rgb": Image.fromarray(rgb(120, 24), "RGB"),
    }


def pixel_fingerprint(pixels: np.ndarray, seed: int = 123) -> np.ndarray:
    """8 random projections of one preprocessed [3, H, W] tensor: any pixel change moves them."""
    flat = pixels.astype(np.float64).ravel()
    return np.random.default_rng(seed).standard_normal((flat.size, 8)).T @ flat
