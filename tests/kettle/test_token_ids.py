"""TextEmbedding.embed_token_ids: texts given as the model's own token ids (OpenAI's ``input`` as
token arrays) read exactly as the texts they encode."""

from __future__ import annotations

import numpy as np
import pytest

from kettle import TextEmbedding
from kettle.errors import InvalidTextError, TextTooLongError

TEXTS = ["The kettle is boiling.", "Tea is ready in the pot.", "tea kettle water " * 120]


@pytest.fixture(scope="module")
def model(models_dir):
    return TextEmbedding(models_dir=models_dir, threads=1)


def _ids(model, texts):
    return [model.tokenizer.untruncated.encode(t, add_special_tokens=False).ids for t in texts]


@pytest.mark.parametrize("direction", ["right", "left"])
def test_a_texts_ids_give_the_texts_vector(model, direction):
    by_ids = model.embed_token_ids(_ids(model, TEXTS), truncation_direction=direction)
    by_text = model.embed_with_usage(TEXTS, truncation_direction=direction)
    np.testing.assert_array_equal(by_ids.vectors, by_text.vectors)
    assert by_ids.token_counts == by_text.token_counts == [7, 9, model.max_length]
    raw = model.embed_token_ids(_ids(model, TEXTS[:1]), normalize=False).vectors
    assert not np.isclose(np.linalg.norm(raw), 1.0, atol=1e-3)


@pytest.mark.parametrize(
    ("ids", "where"),
    [
        ([[101, 2], []], "ids[1] is an empty list"),
        ([[1, 30522]], "ids[0][1] is 30522"),
        ([[1, -1]], "ids[0][1] is -1"),
        ([[1, True]], "ids[0][1] is bool"),
        ([[1, "a"]], "ids[0][1] is str"),
        ([7], "ids[0] is int"),
        ("abc", "ids: must be a list"),
    ],
)
def test_bad_ids_are_named(model, ids, where):
    with pytest.raises(InvalidTextError) as refused:
        model.embed_token_ids(ids)
    assert str(refused.value).startswith(where), refused.value


def test_truncate_false_refuses_a_list_past_max_length(model):
    with pytest.raises(TextTooLongError) as refused:
        model.embed_token_ids(_ids(model, TEXTS), truncate=False)
    assert (
        refused.value.index == 2 and refused.value.tokens == 362 and "ids[2]" in str(refused.value)
    )
