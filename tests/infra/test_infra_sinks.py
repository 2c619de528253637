"""template.yaml's vector sinks: the S3 Vectors bucket and index exist exactly when VectorSink
names s3vectors, the functions get only what their job needs on the one index (ingestion: Put /
DeleteVectors; the API: Query / GetVectors), the Qdrant API key is read from its secret or
parameter, and the translated templates lint clean."""

from __future__ import annotations

from typing import Any

import pytest
from _infra_sam import effective, translate
from test_infra_template import as_list, lint_matches, render, resources, statements

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:qdrant-key-AbCdEf"
PARAMETER = "arn:aws:ssm:us-east-1:123456789012:parameter/kettle/qdrant-key"
SINKS = {
    "s3vectors": {"VectorSink": "s3vectors"},
    "files-s3vectors-image": {
        "VectorSink": "files,s3vectors",
        "PackageType": "Image",
        "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/kettle:latest",
    },
    "qdrant-secret": {
        "VectorSink": "qdrant",
        "QdrantUrl": "https://q.example",
        "QdrantApiKey": SECRET,
    },
    "qdrant-ssm": {
        "VectorSink": "files,qdrant",
        "QdrantUrl": "https://q.example",
        "QdrantApiKey": PARAMETER,
    },
    "files": {},
}
_CACHE: dict[str, dict[str, Any]] = {}


@pytest.fixture(params=sorted(SINKS))
def sink_deployment(request, sam_template) -> tuple[str, dict[str, Any], dict[str, Any]]:
    if request.param not in _CACHE:
        _CACHE[request.param] = translate(sam_template, SINKS[request.param])
    cfn = _CACHE[request.param]
    return request.param, cfn, effective(cfn, SINKS[request.param])


def actions(cfn: dict[str, Any], role: str) -> dict[str, set[str]]:
    params = cfn["_params"]
    found: dict[str, set[str]] = {}
    for st in statements(cfn, role):
        for action in as_list(st["Action"]):
            found.setdefault(action, set()).update(
                render(r, params) for r in as_list(st["Resource"])
            )
    return found


def test_the_vector_index_and_its_permissions_follow_vector_sink(sink_deployment):
    name, _, cfn = sink_deployment
    params = cfn["_params"]
    wants_index = "s3vectors" in params["VectorSink"]
    assert bool(resources(cfn, "AWS::S3Vectors::VectorBucket")) == wants_index
    [index] = resources(cfn, "AWS::S3Vectors::Index").values() or [None]
    suffix = "ImageFunction" if params["PackageType"] == "Image" else "Function"
    api, ingest, batch = (actions(cfn, f"{r}{suffix}Role") for r in ("Api", "Ingest", "Batch"))
    vector_actions = {a for a in {**api, **ingest, **batch} if a.startswith("s3vectors:")}
    if not wants_index:
        assert index is None and not vector_actions
        return
    props = index["Properties"]
    assert props["DistanceMetric"] == "cosine" and props["DataType"] == "float32"
    assert props["Dimension"] == 384  # all-MiniLM-L6-v2, the default ModelName
    assert props["MetadataConfiguration"] == {"NonFilterableMetadataKeys": ["text"]}
    index_arn = "${VectorIndex.IndexArn}"
    assert {a: r for a, r in api.items() if a.startswith("s3vectors:")} == {
        "s3vectors:QueryVectors": {index_arn},
        "s3vectors:GetVectors": {index_arn},
    }
    for role in (ingest, batch):
        assert {a: r for a, r in role.items() if a.startswith("s3vectors:")} == {
            "s3vectors:PutVectors": {index_arn},
            "s3vectors:DeleteVectors": {index_arn},
        }
    env = cfn["Resources"][f"Ingest{suffix}"]["Properties"]["Environment"]["Variables"]
    assert env["VECTOR_SINK"] == params["VectorSink"] and env["VECTOR_INDEX"] == "chunks"
    bucket = render(env["VECTOR_BUCKET"], params)
    assert bucket == render(
        cfn["Resources"]["VectorBucket"]["Properties"]["VectorBucketName"], params
    )


def test_the_qdrant_key_is_read_from_its_secret_or_parameter(sink_deployment):
    name, _, cfn = sink_deployment
    params = cfn["_params"]
    suffix = "ImageFunction" if params["PackageType"] == "Image" else "Function"
    reference = params.get("QdrantApiKey", "")
    for fn in ("Api", "Ingest", "Batch"):
        granted = actions(cfn, f"{fn}{suffix}Role")
        env = cfn["Resources"][f"{fn}{suffix}"]["Properties"]["Environment"]["Variables"]
        assert env["QDRANT_API_KEY"] == reference  # a reference, never the key
        secret = granted.get("secretsmanager:GetSecretValue", set())
        ssm = granted.get("ssm:GetParameter", set())
        if reference:  # the one secret or parameter, whichever kind the ARN names
            assert secret == {reference} and ssm == {reference}
        else:
            assert not secret and not ssm


def test_sink_deployments_lint_clean(sink_deployment):
    import json

    name, translated, _ = sink_deployment
    translated = {k: v for k, v in translated.items() if not k.startswith("_")}
    assert lint_matches(json.dumps(translated)) == [], name
