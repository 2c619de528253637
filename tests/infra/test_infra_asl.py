"""statemachines/*.asl.json: valid Amazon States Language (asl-validator, from npm), and the
embed_prefix machine has the Distributed Map shape the template and the batch handler rely on.

node_modules/ comes from `npm ci` (the Makefile's `npm` target); without it these tests fail
rather than skip.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from _infra_sam import REPO, STATEMACHINES, load_template

VALIDATOR = REPO / "node_modules" / ".bin" / "asl-validator"
DEFINITIONS = sorted(STATEMACHINES.glob("*.asl.json"))
EMBED_PREFIX = STATEMACHINES / "embed_prefix.asl.json"


def validate(*paths: Path) -> subprocess.CompletedProcess:
    if not VALIDATOR.exists():
        pytest.fail(f"{VALIDATOR} is missing: run `npm ci` (make npm) first")
    args = [str(VALIDATOR)]
    for path in paths:
        args += ["--json-path", str(path)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def substituted(path: Path = EMBED_PREFIX) -> dict:
    """The definition as Step Functions gets it: DefinitionSubstitutions applied with the
    template's defaults and plausible resource values."""
    params = load_template()["Parameters"]
    values = {
        "BatchFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:kettle-batch",
        "OutputBucket": "kettle-output-bucket",
        "OutputPrefix": params["OutputPrefix"]["Default"],
        "ResultsPrefix": "stepfunctions/",
        "ModelName": params["ModelName"]["Default"],
        "MaxItemsPerBatch": str(params["MaxItemsPerBatch"]["Default"]),
        "MaxConcurrency": str(params["MaxConcurrency"]["Default"]),
        "ToleratedFailurePercentage": str(params["ToleratedFailurePercentage"]["Default"]),
    }
    text = path.read_text()
    for key, value in values.items():
        text = text.replace("${%s}" % key, value)  # noqa: UP031 - the ${...} is literal
    assert "${" not in text, re.findall(r"\$\{[^}]*\}", text)
    return json.loads(text)


def test_there_are_state_machines():
    assert EMBED_PREFIX in DEFINITIONS


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_asl_validator_accepts(path):
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_asl_validator_accepts_the_substituted_definition(tmp_path):
    out = tmp_path / "embed_prefix.substituted.asl.json"
    out.write_text(json.dumps(substituted()))
    result = validate(out)
    assert result.returncode == 0, result.stdout + result.stderr


def test_asl_validator_rejects_a_broken_definition(tmp_path):
    """The validation can fail: a Map without its ItemProcessor is not a state machine."""
    broken = json.loads(EMBED_PREFIX.read_text())
    del broken["States"]["EmbedPrefix"]["ItemProcessor"]
    out = tmp_path / "broken.asl.json"
    out.write_text(json.dumps(broken))
    assert validate(out).returncode != 0


def test_embed_prefix_is_a_distributed_map_over_an_s3_prefix():
    definition = json.loads(EMBED_PREFIX.read_text())
    configure = definition["States"][definition["StartAt"]]
    assert configure["Type"] == "Pass"
    assert configure["Parameters"]["bucket.$"] == "$.bucket"
    assert configure["Parameters"]["prefix.$"] == "$.prefix"
    state = definition["States"][configure["Next"]]
    assert state["Type"] == "Map"
    assert state["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"
    assert state["ItemReader"]["Parameters"] == {"Bucket.$": "$.bucket", "Prefix.$": "$.prefix"}
    processor = state["ItemProcessor"]
    assert processor["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    # Batches of keys, with what every batch needs to know beside the keys.
    batcher = state["ItemBatcher"]
    assert batcher["MaxItemsPerBatchPath"] == "$.max_items_per_batch"
    assert set(batcher["BatchInput"]) >= {
        "bucket.$",
        "output_bucket.$",
        "output_prefix.$",
        "model.$",
    }
    assert state["MaxConcurrencyPath"] == "$.max_concurrency"
    assert state["ToleratedFailurePercentagePath"] == "$.tolerated_failure_percentage"
    # Each batch: one synchronous invocation of the batch function with the whole batch.
    task = processor["States"][processor["StartAt"]]
    assert task["Resource"] == "arn:aws:states:::lambda:invoke"
    assert task["Parameters"] == {"FunctionName": "${BatchFunctionArn}", "Payload.$": "$"}
    assert task["TimeoutSeconds"] > 900  # the batch function's own limit is 900 s
    throttles = task["Retry"][0]
    assert {"Lambda.TooManyRequestsException", "Lambda.ServiceException"} <= set(
        throttles["ErrorEquals"]
    )
    assert throttles["BackoffRate"] > 1 and throttles["MaxAttempts"] >= 3
    # Items that met only transient failures (throttled sinks) make the batch run again.
    [transient] = [r for r in task["Retry"] if r["ErrorEquals"] == ["TransientBatchError"]]
    assert transient["BackoffRate"] > 1 and transient["MaxAttempts"] >= 3
    # Run results go to the output bucket.
    assert state["ResultWriter"]["Resource"] == "arn:aws:states:::s3:putObject"
    assert state["ResultWriter"]["Parameters"] == {
        "Bucket": "${OutputBucket}",
        "Prefix": "${ResultsPrefix}",
    }


def test_substituted_settings_become_numbers():
    params = substituted()["States"]["Configure"]["Parameters"]
    for key in (
        "max_items_per_batch.$",
        "max_concurrency.$",
        "tolerated_failure_percentage.$",
    ):
        match = re.fullmatch(r"States\.StringToJson\('(.*)'\)", params[key])
        assert match, params[key]
        assert isinstance(json.loads(match.group(1)), int), params[key]


def test_moto_parses_it_without_the_item_batcher():
    """moto's interpreter (used by the execution tests) has no ItemBatcher; everything else in
    the definition must parse there once that key is removed."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    definition = substituted()
    del definition["States"]["EmbedPrefix"]["ItemBatcher"]
    AmazonStateLanguageParser.parse(json.dumps(definition))
