"""Step Functions batches: the batch shape directly, and statemachines/embed_prefix.asl.json run by
moto's interpreter with its Lambda invoke routed to batch_handler in-process."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
import zipfile
from typing import Any

import numpy as np
import pytest
from _handler_helpers import (
    DENSE,
    EVENTS,
    INPUT_BUCKET,
    OUTPUT_BUCKET,
    REPO,
    dlq_messages,
    lambda_context,
)

TEXT = "A kettle boils water. Tea steeps for three minutes. " * 3


def batch(event: dict[str, Any]) -> dict[str, Any]:
    from handler.app import batch_handler

    return batch_handler(event, lambda_context())


def listing_item(aws, key: str) -> dict[str, Any]:
    """An item as the Distributed Map's ItemReader (s3:listObjectsV2) hands it over."""
    head = aws["s3"].head_object(Bucket=INPUT_BUCKET, Key=key)
    return {
        "Etag": head["ETag"],  # quoted, as listings give it
        "Key": key,
        "LastModified": int(head["LastModified"].timestamp()),
        "Size": head["ContentLength"],
        "StorageClass": "STANDARD",
    }


def batch_input(**extra: Any) -> dict[str, Any]:
    return {
        "bucket": INPUT_BUCKET,
        "prefix": "corpus/",
        "output_bucket": OUTPUT_BUCKET,
        "output_prefix": "vectors/",
        "model": DENSE,
        "execution": "arn:aws:states:us-east-1:123456789012:execution:embed-prefix:test",
        **extra,
    }


def output_keys(aws) -> list[str]:
    listed = aws["s3"].list_objects_v2(Bucket=OUTPUT_BUCKET).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def test_a_batch_of_objects(aws, dense_model):
    keys = ["corpus/a one.txt", "corpus/ü/b.md", "corpus/c.jsonl"]
    bodies = [TEXT, TEXT + " Milk?", json.dumps({"id": "x", "text": TEXT}) + "\n"]
    for key, body in zip(keys, bodies, strict=True):
        aws["s3"].put_object(Bucket=INPUT_BUCKET, Key=key, Body=body.encode())
    aws["s3"].put_object(Bucket=INPUT_BUCKET, Key="corpus/slides.pptx", Body=b"PK")
    aws["s3"].put_object(Bucket=INPUT_BUCKET, Key="corpus/folder/", Body=b"")
    items = [listing_item(aws, k) for k in [*keys, "corpus/slides.pptx", "corpus/folder/"]]
    items.append({"Key": "corpus/gone.txt", "Etag": '"00"', "Size": 5})
    items.append({"what": "ever"})

    summary = batch({"Items": items, "BatchInput": batch_input()})
    assert summary["processed"] == 3 and summary["skipped"] == 1  # the folder placeholder
    failed = {f.get("key"): f for f in summary["failed"]}
    assert failed["corpus/slides.pptx"]["error"] == "unsupported_type"
    assert failed["corpus/gone.txt"]["error"] == "object_unavailable"
    assert failed[None]["index"] == 6
    assert sorted(summary["outputs"]) == sorted(f"vectors/{k}.manifest.json" for k in keys)

    manifest = json.loads(
        aws["s3"]
        .get_object(Bucket=OUTPUT_BUCKET, Key="vectors/corpus/a one.txt.manifest.json")["Body"]
        .read()
    )
    assert manifest["source"]["etag"] == items[0]["Etag"].strip('"')
    assert manifest["model"]["fingerprint"] == dense_model.manifest.fingerprint
    vectors = np.load(
        io.BytesIO(
            aws["s3"]
            .get_object(Bucket=OUTPUT_BUCKET, Key=manifest["files"]["vectors"])["Body"]
            .read()
        )
    )
    np.testing.assert_allclose(
        vectors, np.stack(list(dense_model.passage_embed([TEXT.strip()]))), atol=1e-6
    )
    # Batches report failures in their result; they do not use the ingestion DLQ.
    assert dlq_messages(aws["sqs"], aws["dlq"]) == []

    before = output_keys(aws)
    again = batch({"Items": items[:3], "BatchInput": batch_input()})
    assert again == {"processed": 0, "skipped": 3, "failed": [], "outputs": []}
    assert output_keys(aws) == before


def test_an_object_ingested_from_s3_is_skipped_by_a_batch(aws):
    """Both paths write the same outputs, so neither embeds what the other did."""
    aws["s3"].put_object(Bucket=INPUT_BUCKET, Key="incoming/shared.txt", Body=TEXT.encode())
    item = listing_item(aws, "incoming/shared.txt")
    first = batch({"Items": [item], "BatchInput": batch_input(output_prefix="embeddings/")})
    assert first["processed"] == 1
    from handler.app import s3_handler

    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": INPUT_BUCKET},
            "object": {"key": "incoming/shared.txt", "eTag": item["Etag"].strip('"'), "size": 1},
        },
    }
    result = s3_handler({"Records": [record]}, lambda_context())
    assert [r["status"] for r in result["results"]] == ["skipped"]


def test_inline_items_make_one_output_per_batch(aws, dense_model):
    from handler.batch import inline_batch_id

    items = [{"id": "q1", "text": "How long to boil?"}, {"id": "q2", "text": TEXT}]
    summary = batch({"Items": items, "BatchInput": batch_input()})
    assert summary["processed"] == 2 and summary["failed"] == []
    [manifest_key] = summary["outputs"]
    assert manifest_key == f"vectors/batches/{inline_batch_id(items)}.manifest.json"
    manifest = json.loads(
        aws["s3"].get_object(Bucket=OUTPUT_BUCKET, Key=manifest_key)["Body"].read()
    )
    body = aws["s3"].get_object(Bucket=OUTPUT_BUCKET, Key=manifest["files"]["chunks"])["Body"]
    rows = [json.loads(x) for x in body.read().splitlines()]
    assert [r["doc_id"] for r in rows] == ["q1", "q2"]
    again = batch({"Items": items, "BatchInput": batch_input()})
    assert again["skipped"] == 2 and again["processed"] == 0


def test_a_batch_event_without_items_is_refused():
    from handler.batch import BadBatchError

    with pytest.raises(BadBatchError, match="Items"):
        batch({"Items": None})


def test_an_unbaked_batch_model_fails_every_item(aws):
    aws["s3"].put_object(Bucket=INPUT_BUCKET, Key="corpus/a.txt", Body=TEXT.encode())
    item = listing_item(aws, "corpus/a.txt")
    summary = batch({"Items": [item], "BatchInput": batch_input(model="BAAI/bge-small-en-v1.5")})
    [failure] = summary["failed"]
    assert failure["error"] == "model_error" and "bge-small" in failure["reason"]


@pytest.mark.parametrize("name", ["stepfunctions_batch.json", "stepfunctions_inline.json"])
def test_sample_events(aws, name):
    from handler.app import dispatch_handler

    event = json.loads((EVENTS / name).read_text())
    spec = event["BatchInput"]
    aws["s3"].create_bucket(Bucket=spec["output_bucket"])
    if spec.get("bucket"):
        aws["s3"].create_bucket(Bucket=spec["bucket"])
    for item in event["Items"]:
        if "Key" in item:
            body = TEXT if item["Key"].endswith(".txt") else json.dumps({"text": TEXT})
            aws["s3"].put_object(Bucket=spec["bucket"], Key=item["Key"], Body=body.encode())
    summary = dispatch_handler(event, lambda_context())
    assert summary["failed"] == [] and summary["processed"] == len(event["Items"])


# ---- the state machine on moto's interpreter -----------------------------------------------------
def test_definition(max_items: int = 2) -> dict[str, Any]:
    """statemachines/embed_prefix.asl.json with its substitutions, for moto: the ItemBatcher
    (which moto rejects) becomes an ItemSelector that hands the Lambda the same batch shape."""
    text = (REPO / "statemachines" / "embed_prefix.asl.json").read_text()
    values = {
        "BatchFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:kettle-batch",
        "OutputBucket": OUTPUT_BUCKET,
        "OutputPrefix": "embeddings/",
        "ResultsPrefix": "stepfunctions/",
        "ModelName": DENSE,
        "MaxItemsPerBatch": str(max_items),
        "MaxConcurrency": "2",
        "ToleratedFailurePercentage": "0",
    }
    for key, value in values.items():
        text = text.replace("${%s}" % key, value)  # noqa: UP031 - the ${...} is literal
    assert "${" not in text
    definition = json.loads(text)
    state = definition["States"]["EmbedPrefix"]
    batcher = state.pop("ItemBatcher")
    state["ItemSelector"] = {
        "Items.$": "States.Array($$.Map.Item.Value)",
        "BatchInput": batcher["BatchInput"],
    }
    return definition


test_definition.__test__ = False  # a helper, not a test


@pytest.fixture
def state_machine(aws, monkeypatch):
    """(client, state machine arn, invocations): moto executes the definition; its Lambda invoke
    runs batch_handler here, one invocation at a time as one Lambda environment would."""
    import boto3
    from moto import mock_aws
    from moto.awslambda_simple.models import LambdaSimpleBackend

    from handler.app import batch_handler

    invocations: list[tuple[dict, dict]] = []
    lock = threading.Lock()

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        with lock:
            event = json.loads(body)
            result = batch_handler(event, lambda_context())
            invocations.append((event, result))
            return json.dumps(result).encode()

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock_aws(config=config):
        role = boto3.client("iam").create_role(
            RoleName="kettle-sfn", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as z:
            z.writestr("handler/__init__.py", "")
        boto3.client("lambda").create_function(
            FunctionName="kettle-batch",
            Runtime="python3.12",
            Role=role,
            Handler="handler.app.batch_handler",
            Code={"ZipFile": code.getvalue()},
        )
        sfn = boto3.client("stepfunctions")
        arn = sfn.create_state_machine(
            name="kettle-embed-prefix", definition=json.dumps(test_definition()), roleArn=role
        )["stateMachineArn"]
        yield sfn, arn, invocations


def execute(sfn, arn: str, execution_input: dict, limit_s: float = 60.0) -> dict[str, Any]:
    execution = sfn.start_execution(
        stateMachineArn=arn, name=uuid.uuid4().hex, input=json.dumps(execution_input)
    )
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.1)
    pytest.fail(f"the execution did not finish in {limit_s} s")


def test_the_state_machine_embeds_a_prefix(aws, state_machine):
    sfn, arn, invocations = state_machine
    keys = ["corpus/one.txt", "corpus/deux é.md", "corpus/drei.jsonl", "corpus/vier.pdf"]
    bodies = [TEXT, TEXT, json.dumps({"id": "d", "text": TEXT}), "%PDF"]
    for key, body in zip(keys, bodies, strict=True):
        aws["s3"].put_object(Bucket=INPUT_BUCKET, Key=key, Body=body.encode())
    aws["s3"].put_object(Bucket=INPUT_BUCKET, Key="elsewhere/x.txt", Body=TEXT.encode())

    described = execute(sfn, arn, {"bucket": INPUT_BUCKET, "prefix": "corpus/"})
    assert described["status"] == "SUCCEEDED", described
    assert len(invocations) == 4
    for event, _ in invocations:
        assert len(event["Items"]) == 1 and event["Items"][0]["Key"].startswith("corpus/")
        assert event["BatchInput"]["bucket"] == INPUT_BUCKET
        assert event["BatchInput"]["output_bucket"] == OUTPUT_BUCKET
        assert event["BatchInput"]["model"] == DENSE
        assert event["BatchInput"]["execution"].startswith("arn:aws:states:")
    results = {event["Items"][0]["Key"]: result for event, result in invocations}
    assert results["corpus/vier.pdf"]["failed"][0]["error"] == "unsupported_type"
    assert sum(r["processed"] for r in results.values()) == 3
    written = [k for k in output_keys(aws) if k.endswith(".manifest.json")]
    assert sorted(k for k in written if k.startswith("embeddings/")) == sorted(
        f"embeddings/{k}.manifest.json" for k in keys[:3]
    )

    invocations.clear()
    before = output_keys(aws)
    assert execute(sfn, arn, {"bucket": INPUT_BUCKET, "prefix": "corpus/"})["status"] == "SUCCEEDED"
    assert sum(r["skipped"] for _, r in invocations) == 3
    assert [k for k in output_keys(aws) if k.startswith("embeddings/")] == [
        k for k in before if k.startswith("embeddings/")
    ]


@pytest.mark.parametrize("shape", ["parent", "absolute"])
def test_a_batch_model_is_a_baked_name_never_a_path(aws, monkeypatch, tmp_path, models_dir, shape):
    """BatchInput.model "../evil-bake" (or an absolute path) named a bake outside the models
    directory, and it was loaded. Now every item fails with model_error listing the baked models."""
    from handler.models import MODELS

    inside, outside = tmp_path / "models", tmp_path / "evil-bake"
    name = "../evil-bake" if shape == "parent" else str(outside)
    for folder in (inside / DENSE, outside):  # files linked: list_baked's glob skips linked folders
        folder.mkdir(parents=True)
        for path in (models_dir / DENSE).iterdir():
            if folder != outside or path.name != "manifest.json":
                (folder / path.name).symlink_to(path)
    manifest = json.loads((models_dir / DENSE / "manifest.json").read_text())
    (outside / "manifest.json").write_text(json.dumps({**manifest, "name": name}))
    monkeypatch.setenv("KETTLE_MODELS_DIR", str(inside))
    aws["s3"].put_object(Bucket=INPUT_BUCKET, Key="corpus/a.txt", Body=TEXT.encode())
    item = listing_item(aws, "corpus/a.txt")
    summary = batch({"Items": [item], "BatchInput": batch_input(model=name)})
    assert summary["processed"] == 0, summary
    [failure] = summary["failed"]
    assert failure["error"] == "model_error" and f"baked dense models: {DENSE}" in failure["reason"]
    assert not any(n == name for _, n in MODELS._models)


def test_a_batch_model_that_is_not_a_string_is_refused():
    from handler.batch import BadBatchError

    with pytest.raises(BadBatchError, match="BatchInput.model must be a model name"):
        batch({"Items": [], "BatchInput": batch_input(model=["x"])})
