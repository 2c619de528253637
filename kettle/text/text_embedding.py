"""FastEmbed's import path ``fastembed.text.text_embedding``: ``TextEmbedding`` lives in
``kettle.dense``."""

from kettle.dense import TextEmbedding

__all__ = ["TextEmbedding"]
