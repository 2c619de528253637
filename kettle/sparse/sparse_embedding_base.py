"""FastEmbed's import path ``fastembed.sparse.sparse_embedding_base``: ``SparseEmbedding`` lives
in ``kettle.sparse``."""

from kettle.sparse import SparseEmbedding

__all__ = ["SparseEmbedding"]
