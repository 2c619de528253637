"""FastEmbed's import path ``fastembed.rerank.cross_encoder``: the cross-encoder lives in
``kettle.rerank``; this module names it where FastEmbed's docs look for it."""

from kettle.rerank import RerankResult, TextCrossEncoder

__all__ = ["RerankResult", "TextCrossEncoder"]
