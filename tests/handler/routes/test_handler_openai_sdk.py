"""The real OpenAI Python SDK against the local server (`make serve`'s), unchanged."""

from __future__ import annotations

import threading

import numpy as np
import openai
import pytest
from _handler_helpers import DENSE

TEXTS = ["The kettle is boiling.", "Tea is ready.", "Das Wasser kocht."]


@pytest.fixture
def base_url():
    """`make serve`'s server on 127.0.0.1 and a free port, in a thread."""
    from handler.local import make_server

    server = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def client(base_url):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0, timeout=30)


def test_sdk_default_base64(client, dense_model):
    # The SDK asks for base64 unless told otherwise, and decodes it itself.
    response = client.embeddings.create(input=TEXTS, model=DENSE)
    want = np.stack(list(dense_model.embed(TEXTS)))
    got = np.asarray([d.embedding for d in response.data], dtype=np.float32)
    np.testing.assert_array_equal(got, want)
    assert [d.index for d in response.data] == [0, 1, 2]
    assert response.model == DENSE
    assert response.usage.prompt_tokens == dense_model.token_count(TEXTS)
    assert response.usage.total_tokens == response.usage.prompt_tokens


def test_sdk_float_single_text_and_dimensions(client, dense_model):
    response = client.embeddings.create(
        input=TEXTS[0], model="all-MiniLM-L6-v2", encoding_format="float"
    )
    [want] = list(dense_model.embed(TEXTS[:1]))
    np.testing.assert_allclose(response.data[0].embedding, want, atol=1e-7)
    short = client.embeddings.create(input=TEXTS[0], model=DENSE, dimensions=32)
    vector = np.asarray(short.data[0].embedding)
    assert vector.shape == (32,)
    np.testing.assert_allclose(vector, want[:32] / np.linalg.norm(want[:32]), atol=1e-6)


def test_sdk_errors_carry_the_message(client):
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(input="a", model="text-embedding-3-small")
    assert DENSE in str(missing.value) and missing.value.status_code == 404
    with pytest.raises(openai.UnprocessableEntityError) as bad:
        client.embeddings.create(input=["ok", ""], model=DENSE)
    assert "input[1] is an empty string" in str(bad.value)


def test_sdk_lists_the_baked_models(client, models_dir):
    from kettle import list_baked

    listed = client.models.list()
    ids = [m.id for m in listed.data]
    assert DENSE in ids and set(ids) == set(list_baked(models_dir))
    [dense] = [m for m in listed.data if m.id == DENSE]
    assert dense.object == "model" and dense.owned_by == "sentence-transformers"
    assert dense.created > 0


def test_sdk_model_names_are_case_insensitive(client, dense_model):
    [want] = list(dense_model.embed(TEXTS[:1]))
    for name in (DENSE.upper(), "ALL-minilm-l6-v2"):
        response = client.embeddings.create(input=TEXTS[0], model=name, encoding_format="float")
        assert response.model == DENSE
        np.testing.assert_allclose(response.data[0].embedding, want, atol=1e-7)


def _ids(model, texts):
    """The texts as the model's own token ids, without special tokens (what OpenAI's API takes)."""
    return [model.tokenizer.untruncated.encode(t, add_special_tokens=False).ids for t in texts]


def test_sdk_token_ids_give_the_texts_vectors(client, dense_model):
    texts = [*TEXTS, "tea kettle " * 200]  # the last one past max_length: cut as its text is
    want = dense_model.embed_with_usage(texts)
    response = client.embeddings.create(input=_ids(dense_model, texts), model=DENSE)
    got = np.asarray([d.embedding for d in response.data], dtype=np.float32)
    np.testing.assert_array_equal(got, want.vectors)
    assert response.usage.prompt_tokens == want.total_tokens
    [one] = _ids(dense_model, TEXTS[:1])  # one text as a flat list of ids
    single = client.embeddings.create(input=one, model="all-minilm-l6-v2", encoding_format="float")
    assert len(single.data) == 1 and single.model == DENSE
    np.testing.assert_allclose(single.data[0].embedding, want.vectors[0], atol=1e-7)


def test_sdk_token_id_errors_name_the_item(client, dense_model):
    with pytest.raises(openai.UnprocessableEntityError) as bad:
        client.embeddings.create(input=[[101, 7592], [7592, 30522]], model=DENSE)
    assert "input[1][1] is 30522" in str(bad.value) and "30521" in str(bad.value)
    with pytest.raises(openai.UnprocessableEntityError) as flat:
        client.embeddings.create(input=[7592, 10**6], model=DENSE)
    assert "input[1] is 1000000" in str(flat.value)
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(input=[[7592]], model="text-embedding-3-small")
    assert DENSE in str(missing.value)
