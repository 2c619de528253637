"""FastEmbed's import path ``fastembed.common.model_description``: ``PoolingType`` and
``ModelSource`` for ``add_custom_model`` live in ``kettle.registry``."""

from kettle.registry import ModelSource, PoolingType

__all__ = ["ModelSource", "PoolingType"]
