"""Checkpoint -> ONNX converters (no PyTorch needed). See :mod:`models_bake.convert.bert`."""

from models_bake.convert.bert import HEADS, INPUTS, convert

__all__ = ["HEADS", "INPUTS", "convert"]
