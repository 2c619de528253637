"""FastEmbed's ``fastembed.common`` import paths (``common.model_description``)."""
