"""FastEmbed's ``fastembed.text`` import paths (``text.text_embedding``)."""
