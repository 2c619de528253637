"""MaxSim maths on real token vectors: all-MiniLM-L6-v2's per-token outputs (models/), L2
normalised, stand in for a ColBERT's."""

from __future__ import annotations

import numpy as np
import pytest

from kettle.dense import TextEmbedding
from kettle.late_interaction import maxsim, maxsim_scores, rank_by_maxsim
from kettle.pooling import normalize

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
DOCS = [
    "The Eiffel Tower is in Paris and was finished in 1889.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "A sourdough starter is a culture of wild yeast and lactic acid bacteria.",
    "Late interaction models keep one vector per token and score with MaxSim.",
    "The Pacific is the largest and deepest of the Earth's oceans.",
    "Bread rises because yeast produces carbon dioxide gas in the dough.",
]


@pytest.fixture(scope="module")
def token_vectors(models_dir):
    model = TextEmbedding(MINILM, models_dir=models_dir)

    def embed(texts):
        def per_token(hidden, mask):
            return [normalize(h[m.astype(bool)]) for h, m in zip(hidden, mask, strict=True)]

        return list(model._stream(texts, 8, per_token))

    return embed


def brute_force(q: np.ndarray, d: np.ndarray) -> float:
    total = 0.0
    for qi in q:
        total += max(float(sum(a * b for a, b in zip(qi, dj, strict=True))) for dj in d)
    return total


def test_maxsim_equals_brute_force(token_vectors):
    docs = token_vectors(DOCS)
    (query,) = token_vectors(["how does yeast make bread rise"])
    assert query.shape[1] == docs[0].shape[1] == 384
    for doc in docs:
        assert maxsim(query, doc) == pytest.approx(brute_force(query, doc), rel=1e-5)
    np.testing.assert_allclose(
        maxsim_scores(query, docs), [brute_force(query, d) for d in docs], rtol=1e-5
    )


def test_a_document_containing_the_query_ranks_first(token_vectors):
    query_text = "carbon dioxide gas in the dough"
    docs = token_vectors(DOCS)
    (query,) = token_vectors([query_text])
    ranked = rank_by_maxsim(query, docs)
    containing = [i for i, d in enumerate(DOCS) if query_text in d]
    assert ranked[0][0] == containing[0] == 5
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)
    assert ranked[0][1] > ranked[1][1]
    assert rank_by_maxsim(query, docs, top_k=2) == ranked[:2]


def test_maxsim_checks_shapes():
    with pytest.raises(ValueError, match="dims differ"):
        maxsim(np.ones((2, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"\[tokens, dim\]"):
        maxsim(np.ones(3), np.ones((4, 3)))
    assert maxsim(np.ones((2, 3)), np.zeros((0, 3))) == 0.0
