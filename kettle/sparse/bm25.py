"""FastEmbed's import path ``fastembed.sparse.bm25``: BM25 lives in ``kettle.bm25``."""

from kettle.bm25 import Bm25

__all__ = ["Bm25"]
