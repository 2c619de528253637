"""Late interaction (ColBERT) through the handler: POST /embed_multi, and the batch path's
``"multi": true`` writing <key>.multi.npz. Vectors are compared with kettle's
LateInteractionTextEmbedding on the same texts (a tiny random ColBERT, baked by conftest)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from _handler_helpers import (
    COLBERT,
    DENSE,
    INPUT_BUCKET,
    OUTPUT_BUCKET,
    lambda_context,
)

VERSIONS = [pytest.param(2, id="http-api-v2"), pytest.param(1, id="rest-api-v1")]
# The tiny ColBERT's vocabulary (tests/kettle/late_interaction/_colbert_tiny.py), so tokens are words.
DOCS = [
    "The cat sat on the mat.",
    "Late interaction scores tokens with MaxSim!",
    "bread needs yeast; the ocean waves are blue, red (and green).",
]
TOO_LONG = " ".join(["river mountain city night day sun moon star tree"] * 6)


def vectors(rows: list) -> list[np.ndarray]:
    return [np.asarray(r, dtype=np.float32) for r in rows]


# ---- POST /embed_multi --------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_documents_equal_kettle(call_api, with_colbert, kettle_colbert, version):
    result = call_api("POST", "/embed_multi", {"inputs": DOCS}, version=version)
    assert result.status == 200, result
    got = vectors(result.json())
    want = list(kettle_colbert.embed(DOCS))
    assert len(got) == len(DOCS)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.shape[1] == kettle_colbert.embedding_size
        np.testing.assert_allclose(g, w, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0, atol=1e-5)
    # Documents drop punctuation: "The cat sat on the mat." is [CLS] [D] 6 words [SEP].
    assert got[0].shape[0] == 9


def test_queries_equal_kettle_and_are_mask_padded(call_api, with_colbert, kettle_colbert):
    body = {"inputs": "cat on a mat?", "kind": "query"}
    result = call_api("POST", "/embed_multi", body)
    assert result.status == 200, result
    [got] = vectors(result.json())
    [want] = list(kettle_colbert.query_embed(["cat on a mat?"]))
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got.shape[0] == kettle_colbert.query_length
    document = vectors(call_api("POST", "/embed_multi", {"inputs": "cat on a mat?"}).json())[0]
    assert document.shape[0] != got.shape[0]  # the kind matters


def test_truncate_false_names_the_text_that_is_too_long(call_api, with_colbert, kettle_colbert):
    texts = ["cat", TOO_LONG]
    result = call_api("POST", "/embed_multi", {"inputs": texts, "truncate": False})
    assert result.status == 413, result
    error = result.error
    assert error["param"] == "inputs[1]" and error["code"] == "text_too_long"
    assert str(kettle_colbert.max_length) in error["message"]
    cut = call_api("POST", "/embed_multi", {"inputs": texts})
    assert cut.status == 200, cut
    assert len(cut.json()[1]) <= kettle_colbert.max_length


def test_bad_requests_name_the_field_and_item(call_api, with_colbert, monkeypatch):
    cases = [
        ({"inputs": ["a", 3]}, 422, "inputs[1]"),
        ({"inputs": ["a", ""]}, 422, "inputs[1]"),
        ({"inputs": []}, 422, "inputs"),
        ({"inputs": "a", "kind": "passage"}, 422, "kind"),
        ({"inputs": "a", "normalize": False}, 422, "normalize"),
    ]
    for body, status, param in cases:
        result = call_api("POST", "/embed_multi", body)
        assert result.status == status, (body, result)
        assert result.error["param"] == param, (body, result)
    monkeypatch.setenv("MAX_TEXTS", "2")
    result = call_api("POST", "/embed_multi", {"inputs": DOCS})
    assert result.status == 413 and result.error["param"] == "inputs"


def test_embed_multi_without_a_configured_model_is_501(call_api):
    result = call_api("POST", "/embed_multi", {"inputs": "a"})
    assert result.status == 501, result
    assert "KETTLE_LATE_INTERACTION_MODEL" in result.error["message"]


# ---- batches with "multi": true -----------------------------------------------------------------
TEXT = "The cat sat on the mat. The dog ran in the park. " * 3


def batch(event: dict) -> dict:
    from handler.app import batch_handler

    return batch_handler(event, lambda_context())


def batch_input(**extra) -> dict:
    return {
        "bucket": INPUT_BUCKET,
        "output_bucket": OUTPUT_BUCKET,
        "output_prefix": "vectors/",
        "model": DENSE,
        **extra,
    }


def read(aws, key: str) -> bytes:
    return aws["s3"].get_object(Bucket=OUTPUT_BUCKET, Key=key)["Body"].read()


def multi_outputs(aws, base: str) -> tuple[np.ndarray, np.ndarray, list[dict], dict]:
    """The manifest first, then the files it names (the files sink's commit)."""
    manifest = json.loads(read(aws, f"{base}.manifest.json"))
    with np.load(io.BytesIO(read(aws, manifest["files"]["multi"])), allow_pickle=False) as npz:
        assert sorted(npz.files) == ["offsets", "vectors"]
        flat, offsets = npz["vectors"], npz["offsets"]
    rows = [json.loads(x) for x in read(aws, manifest["files"]["chunks"]).decode().splitlines()]
    return flat, offsets, rows, manifest


def output_versions(aws) -> int:
    return len(aws["s3"].list_object_versions(Bucket=OUTPUT_BUCKET).get("Versions", []))


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setenv("CHUNK_TOKENS", "12")
    monkeypatch.setenv("CHUNK_OVERLAP", "2")


def test_a_multi_batch_writes_token_vectors_per_chunk(
    aws, with_colbert, kettle_colbert, small_chunks
):
    key = "corpus/cats and dogs.txt"
    aws["s3"].put_object(Bucket=INPUT_BUCKET, Key=key, Body=TEXT.encode())
    inline = [{"id": "q1", "text": DOCS[1]}, {"id": "q2", "text": DOCS[2]}]
    summary = batch({"Items": [{"Key": key}, *inline], "BatchInput": batch_input(multi=True)})
    assert summary["processed"] == 3 and summary["failed"] == [], summary

    by_id = {key: TEXT, **{item["id"]: item["text"] for item in inline}}
    for base in [f"vectors/{key}", summary["outputs"][1].removesuffix(".manifest.json")]:
        flat, offsets, rows, manifest = multi_outputs(aws, base)
        texts = [by_id[r["doc_id"]][r["start"] : r["end"]] for r in rows]
        assert {r["doc_id"] for r in rows} in ({key}, {"q1", "q2"})
        assert len(rows) > 1  # chunked
        want = list(kettle_colbert.embed(texts))
        assert flat.dtype == np.float32 and flat.shape == (sum(len(w) for w in want), 8)
        assert offsets.dtype == np.int64 and offsets.tolist() == [
            0,
            *np.cumsum([len(w) for w in want]),
        ]
        for i, w in enumerate(want):
            np.testing.assert_allclose(flat[offsets[i] : offsets[i + 1]], w, atol=1e-6)
        assert manifest["multi_model"]["name"] == COLBERT
        assert manifest["multi_model"]["fingerprint"] == kettle_colbert.manifest.fingerprint
        assert manifest["multi"] == {
            "layout": "flat+offsets",
            "rows": len(rows),
            "tokens": len(flat),
            "dim": 8,
            "dtype": "float32",
        }
        assert manifest["files"]["multi"].startswith(f"{base}.")
        assert manifest["files"]["multi"].endswith(".multi.npz")
        assert manifest["count"] == len(rows)  # the dense rows line up with the multi rows


def test_multi_is_part_of_the_outputs_identity(aws, with_colbert, small_chunks):
    aws["s3"].put_bucket_versioning(
        Bucket=OUTPUT_BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    key = "corpus/a.txt"
    aws["s3"].put_object(Bucket=INPUT_BUCKET, Key=key, Body=TEXT.encode())
    plain = batch({"Items": [{"Key": key}], "BatchInput": batch_input()})
    assert plain["processed"] == 1
    # .npy, .jsonl, manifest, the ledger twice (pending, synced): no .multi.npz
    assert output_versions(aws) == 5
    multi = batch({"Items": [{"Key": key}], "BatchInput": batch_input(multi=True)})
    assert multi["processed"] == 1 and output_versions(aws) == 5 + 6
    again = batch({"Items": [{"Key": key}], "BatchInput": batch_input(multi=True)})
    assert again["skipped"] == 1 and again["processed"] == 0
    assert output_versions(aws) == 11


def test_multi_without_a_late_interaction_model_fails_each_item(aws):
    aws["s3"].put_object(Bucket=INPUT_BUCKET, Key="corpus/a.txt", Body=TEXT.encode())
    items = [{"Key": "corpus/a.txt"}, {"id": "x", "text": "inline"}]
    summary = batch({"Items": items, "BatchInput": batch_input(multi=True)})
    assert summary["processed"] == 0
    reasons = [f["reason"] for f in summary["failed"]]
    assert len(reasons) == 2
    for reason in reasons:
        assert "no late-interaction model configured (KETTLE_LATE_INTERACTION_MODEL)" in reason
    assert summary["failed"][0]["error"] == "model_not_configured"
    listed = aws["s3"].list_objects_v2(Bucket=OUTPUT_BUCKET).get("Contents", [])
    assert [o["Key"] for o in listed if "/_sync/" not in o["Key"]] == []  # the ledger's: failed


def test_multi_model_by_name_and_a_bad_multi_flag(aws, extra_models, monkeypatch, kettle_colbert):
    from handler.batch import BadBatchError

    monkeypatch.setenv("KETTLE_MODELS_DIR", str(extra_models))
    items = [{"id": "x", "text": DOCS[0]}]
    summary = batch({"Items": items, "BatchInput": batch_input(multi=True, multi_model=COLBERT)})
    assert summary["processed"] == 1, summary
    flat, offsets, _, _ = multi_outputs(aws, summary["outputs"][0].removesuffix(".manifest.json"))
    np.testing.assert_allclose(flat, next(kettle_colbert.embed([DOCS[0]])), atol=1e-6)
    with pytest.raises(BadBatchError, match="multi"):
        batch({"Items": items, "BatchInput": batch_input(multi="yes")})
