"""The API's routes, one Powertools ``Router`` per room, included into the resolvers by
handler.api: text (embeddings, sparse, rerank, late interaction, tokens), image, meta (models,
health), search (POST /search over the vector sinks)."""
