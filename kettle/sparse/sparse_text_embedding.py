"""FastEmbed's import path ``fastembed.sparse.sparse_text_embedding``."""

from kettle.sparse import SparseTextEmbedding

__all__ = ["SparseTextEmbedding"]
