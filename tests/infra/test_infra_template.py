"""template.yaml: it translates, it lints clean, and each deployment variant gets the resources,
permissions and wiring the design promises (evaluated per parameter set, conditions applied)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _infra_sam import (
    DEPLOYMENTS,
    REGION,
    REPO,
    STATEMACHINES,
    TEMPLATE,
    effective,
    load_template,
)

HANDLERS = {
    "Api": "handler.app.api_handler",
    "Ingest": "handler.app.s3_handler",
    "Batch": "handler.app.batch_handler",
    "Dispatch": "handler.app.dispatch_handler",
}
ROUTES = {
    "POST /embed",
    "POST /v1/embeddings",
    "POST /embed_sparse",
    "POST /rerank",
    "POST /embed_image",
    "POST /embed_multi",
    "POST /tokenize",
    "POST /search",
    "POST /embed_all",
    "POST /predict",
    "POST /similarity",
    "POST /decode",
    "GET /info",
    "GET /v1/models",
    "GET /models",
    "GET /health",
    "GET /openapi.json",
    "GET /docs",
}
# The handler's environment contract.
ENVIRONMENT = {
    "KETTLE_MODELS_DIR",
    "KETTLE_MODEL",
    "KETTLE_SPARSE_MODEL",
    "KETTLE_RERANK_MODEL",
    "KETTLE_IMAGE_MODEL",
    "KETTLE_LATE_INTERACTION_MODEL",
    "OUTPUT_BUCKET",
    "INPUT_PREFIX",
    "OUTPUT_PREFIX",
    "DLQ_URL",
    "CHUNK_TOKENS",
    "CHUNK_OVERLAP",
    "MAX_TEXTS",
    "MAX_REQUEST_BYTES",
    "MAX_OBJECT_BYTES",
    "MAX_IMAGE_BYTES",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
# AWS managed policies a role may carry, and why each is acceptable:
#  - AWSLambdaBasicExecutionRole: logs:CreateLogGroup/CreateLogStream/PutLogEvents; SAM attaches it
#    to every function role and it has no narrower managed twin.
#  - AWSXrayWriteOnlyAccess: xray:PutTraceSegments/PutTelemetryRecords/Get*; X-Ray has no
#    resource-level permissions, so Resource "*" is the only form (Tracing: Active / Enabled).
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
# Inline statements allowed on Resource "*": CloudWatch Logs log delivery (state machine logging)
# has no resource-level permissions.
NO_RESOURCE_LEVEL_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def render(node: Any, params: dict[str, Any]) -> str:
    """A policy value as one string: parameters filled in, other references as ${Name[.Attr]}."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref":
            return str(params[arg]) if arg in params else "${" + arg + "}"
        if key == "Fn::GetAtt":
            return "${" + ".".join(arg) + "}"
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            for name, value in variables.items():
                text = text.replace("${" + name + "}", render(value, params))
            for name, value in params.items():
                text = text.replace("${" + name + "}", str(value))
            return text
    return json.dumps(node, sort_keys=True)


def resources(cfn: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in cfn["Resources"].items() if v["Type"] == kind}


def as_list(x: Any) -> list:
    return x if isinstance(x, list) else [x]


@pytest.fixture(params=sorted(DEPLOYMENTS), ids=sorted(DEPLOYMENTS))
def deployment(request, translated_cache) -> dict[str, Any]:
    """One deployment: the translated template with its conditions applied."""
    return effective(translated_cache(request.param), DEPLOYMENTS[request.param])


# ---- it translates and lints clean -------------------------------------------------------------


def lint_matches(text: str) -> list[str]:
    from cfnlint.api import ManualArgs, lint

    # Informational findings included: none are expected either.
    config = ManualArgs(regions=[REGION], include_checks=["I"])
    return [
        f"{m.rule.id} {m.path_string if hasattr(m, 'path_string') else ''}: {m.message}"
        for m in lint(text, config=config)
    ]


def test_cfn_lint_source_template_is_clean():
    """cfn-lint on template.yaml (it runs the SAM transform itself). No accepted findings."""
    assert lint_matches(TEMPLATE.read_text()) == []


SAM = REPO / ".venv-sam" / "bin" / "sam"


def sam_validate(template: Path, cwd: Path) -> subprocess.CompletedProcess:
    """`sam validate --lint` by the SAM CLI from PyPI (its own venv: `make sam`). No AWS account:
    the region is set, the credentials are absent, telemetry is off."""
    if not SAM.is_file():
        pytest.fail(f"{SAM} missing: run `make sam`")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cwd),
        "AWS_DEFAULT_REGION": REGION,
        "SAM_CLI_TELEMETRY": "0",
    }
    args = [str(SAM), "validate", "--lint", "--template-file", str(template)]
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_sam_validate_accepts_the_template(tmp_path):
    done = sam_validate(TEMPLATE, REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is a valid SAM Template" in done.stdout + done.stderr


def test_sam_validate_refuses_a_broken_template(tmp_path):
    """The check can fail: a Runtime Lambda does not offer."""
    broken = tmp_path / "template.yaml"
    text = TEMPLATE.read_text()
    assert "Runtime: !Ref PythonRuntime" in text
    broken.write_text(text.replace("Runtime: !Ref PythonRuntime", "Runtime: python2.7", 1))
    done = sam_validate(broken, tmp_path)
    assert done.returncode != 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_cfn_lint_translated_template_is_clean(name, translated_cache):
    """cfn-lint on the SAM translator's CloudFormation, per parameter set. No accepted findings:
    that is why the template writes its SQS and Lambda-invoke statements out instead of using
    SAM's SQSPollerPolicy (it names sqs:*Batch actions IAM does not have, W3037) and why queues
    carry explicit Deletion/UpdateReplace policies (I3011)."""
    assert lint_matches(json.dumps(translated_cache(name))) == []


def test_translation_fails_on_a_broken_template(sam_template):
    """The translation check can fail: an image function that also names a Runtime is refused."""
    from _infra_sam import translate
    from samtranslator.model.exceptions import InvalidDocumentException

    broken = json.loads(json.dumps(sam_template))
    broken["Resources"]["ApiImageFunction"]["Properties"]["Runtime"] = "python3.12"
    with pytest.raises(InvalidDocumentException):
        translate(broken, {})


# ---- functions ------------------------------------------------------------------------------------


def test_functions_follow_package_type_and_architecture(deployment):
    params = deployment["_params"]
    image = params["PackageType"] == "Image"
    functions = resources(deployment, "AWS::Lambda::Function")
    expected = {"Api", "Ingest", "Batch"} | (
        {"Dispatch"} if params["EnableDispatchFunction"] == "true" else set()
    )
    suffix = "ImageFunction" if image else "Function"
    assert set(functions) == {f"{role}{suffix}" for role in expected}
    for name, fn in functions.items():
        props = fn["Properties"]
        assert props["Architectures"] == [params["Architecture"]], name
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        role = name.removesuffix(suffix)
        if image:
            assert props["PackageType"] == "Image"
            assert "Runtime" not in props and "Handler" not in props and "Layers" not in props
            assert props["ImageConfig"]["Command"] == [HANDLERS[role]]
            assert props["Code"] == {"ImageUri": params["ImageUri"]}
        else:
            assert props["Runtime"] == params["PythonRuntime"], name
            assert props["Handler"] == HANDLERS[role], name
            layer_ids = [layer["Ref"] for layer in props["Layers"]]
            assert [lid.rstrip("0123456789abcdef") for lid in layer_ids] == [
                "RuntimeLayer",
                "ModelLayer",
            ], name


def test_environment_contract(deployment):
    for name, fn in resources(deployment, "AWS::Lambda::Function").items():
        env = fn["Properties"]["Environment"]["Variables"]
        assert set(env) >= ENVIRONMENT, f"{name} lacks {ENVIRONMENT - set(env)}"
        assert env["KETTLE_MODELS_DIR"] == "/opt/models"
        assert env["DLQ_URL"] == {"Ref": "DeadLetterQueue"}
        assert env["OUTPUT_BUCKET"] == {"Ref": "OutputBucket"}
        assert env["POWERTOOLS_SERVICE_NAME"] == "kettle"


def test_layers_match_the_architecture(deployment):
    params = deployment["_params"]
    layers = resources(deployment, "AWS::Lambda::LayerVersion")
    if params["PackageType"] == "Image":
        assert layers == {}
        return
    runtime = next(v for k, v in layers.items() if k.startswith("RuntimeLayer"))
    model = next(v for k, v in layers.items() if k.startswith("ModelLayer"))
    assert runtime["Properties"]["CompatibleArchitectures"] == [params["Architecture"]]
    assert runtime["Properties"]["CompatibleRuntimes"] == [params["PythonRuntime"]]
    assert sorted(model["Properties"]["CompatibleArchitectures"]) == ["arm64", "x86_64"]


def test_snapstart_only_on_the_zip_api_function(deployment):
    params = deployment["_params"]
    functions = resources(deployment, "AWS::Lambda::Function")
    for name, fn in functions.items():
        snap = fn["Properties"].get("SnapStart")
        if name == "ApiFunction":
            want = "PublishedVersions" if params["EnableSnapStart"] == "true" else "None"
            assert snap == {"ApplyOn": want}
        else:
            assert snap is None, name
    # The API is served through the `live` alias (SnapStart applies to published versions only).
    aliases = resources(deployment, "AWS::Lambda::Alias")
    api = "ApiImageFunction" if params["PackageType"] == "Image" else "ApiFunction"
    assert f"{api}Aliaslive" in aliases


# ---- HTTP API ---------------------------------------------------------------------------------------


def test_http_api_routes_and_authorization(deployment):
    params = deployment["_params"]
    want = "AWS_IAM" if params["ApiAuth"] == "IAM" else "NONE"
    routes = resources(deployment, "AWS::ApiGatewayV2::Route")
    assert {r["Properties"]["RouteKey"] for r in routes.values()} == handler_routes()["http"]
    for name, route in routes.items():
        assert route["Properties"]["AuthorizationType"] == want, name
        assert route["Properties"]["Target"] == {"Fn::Sub": "integrations/${HttpApiIntegration}"}
    api = "ApiImageFunction" if params["PackageType"] == "Image" else "ApiFunction"
    integration = deployment["Resources"]["HttpApiIntegration"]["Properties"]
    assert integration["IntegrationUri"] == {"Ref": f"{api}Aliaslive"}
    assert integration["PayloadFormatVersion"] == "2.0"
    permission = deployment["Resources"]["HttpApiInvokePermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": f"{api}Aliaslive"}
    assert render(permission["SourceArn"], params).endswith(":${HttpApi}/*")


def test_the_http_api_routes_every_route_the_handler_serves():
    """A route the handler serves but the HTTP API does not route answers API Gateway's 404."""
    from handler import openapi
    from handler.api import http_app

    spec = json.loads(openapi.document(http_app))
    served = {f"{method.upper()} {path}" for path, ops in spec["paths"].items() for method in ops}
    assert served | {"GET /openapi.json", "GET /docs"} == ROUTES


def handler_routes() -> dict[str, set[str]]:
    """The "METHOD /path" of every route each of the handler's resolvers serves: "http" (HTTP API
    and function URLs, payload 2.0) and "rest" (REST API, payload 1.0)."""
    from handler.api import http_app, rest_app

    return {
        name: {f"{r.method} {r.path}" for r in app._static_routes + app._dynamic_routes}
        for name, app in (("http", http_app), ("rest", rest_app))
    }


def _rest_path(cfn: dict[str, Any], ref: Any) -> str:
    """The path of a REST API resource: its PathPart after its parent's (the root is "")."""
    if not (isinstance(ref, dict) and "Ref" in ref):  # Fn::GetAtt RestApi.RootResourceId
        return ""
    props = cfn["Resources"][ref["Ref"]]["Properties"]
    return _rest_path(cfn, props["ParentId"]) + "/" + props["PathPart"]


def template_routes(cfn: dict[str, Any]) -> dict[str, set[str]]:
    """Every API Gateway API of a translated template -> its "METHOD /path" routes, whichever
    way it is written: API Gateway v2 Route resources, REST API Method resources, or an API's
    OpenAPI Body (what SAM's Api / HttpApi events become)."""
    apis: dict[str, set[str]] = {}
    for name, res in cfn["Resources"].items():
        body = res.get("Properties", {}).get("Body")
        if res["Type"] in ("AWS::ApiGatewayV2::Api", "AWS::ApiGateway::RestApi"):
            apis.setdefault(name, set())
            for path, methods in (body or {}).get("paths", {}).items():
                for method in methods:
                    if not method.startswith("x-"):
                        apis[name].add(f"{method.upper()} {path}")
    for res in resources(cfn, "AWS::ApiGatewayV2::Route").values():
        apis[res["Properties"]["ApiId"]["Ref"]].add(res["Properties"]["RouteKey"])
    for res in resources(cfn, "AWS::ApiGateway::Method").values():
        props = res["Properties"]
        path = _rest_path(cfn, props["ResourceId"]) or "/"
        apis[props["RestApiId"]["Ref"]].add(f"{props['HttpMethod']} {path}")
    return apis


def test_every_route_the_handler_serves_is_deployed_and_no_other(deployment):
    """A route the handler serves but the template lacks answers 404 once deployed (it happened
    to /similarity, /decode, /embed_all and /predict); a route only the template has, 404 from
    the handler. Both resolvers serve one set, and every API of the template routes all of it."""
    served = handler_routes()
    assert served["http"] == served["rest"]
    apis = template_routes(deployment)
    assert apis, "the template has no API"
    for api, routes in apis.items():
        missing, extra = served["http"] - routes, routes - served["http"]
        assert not missing and not extra, f"{api}: not deployed {missing}; not served {extra}"


def test_image_route_requires_an_image_uri(sam_template):
    [rule] = sam_template["Rules"].values()
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "PackageType"}, "Image"]}
    assert rule["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ImageUri"}, ""]}]
    }


def test_api_auth_defaults_to_iam(sam_template):
    assert sam_template["Parameters"]["ApiAuth"]["Default"] == "IAM"
    assert sam_template["Parameters"]["EnableSnapStart"]["Default"] == "true"
    assert sam_template["Parameters"]["Architecture"]["Default"] == "arm64"


# ---- IAM -----------------------------------------------------------------------------------------


def test_roles_are_least_privilege(deployment):
    params = deployment["_params"]
    roles = resources(deployment, "AWS::IAM::Role")
    assert roles
    for name, role in roles.items():
        props = role["Properties"]
        managed = set(props.get("ManagedPolicyArns", []))
        assert managed <= ALLOWED_MANAGED_POLICIES, f"{name}: {managed - ALLOWED_MANAGED_POLICIES}"
        for policy in props.get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                assert st["Effect"] == "Allow", (name, st)
                actions = as_list(st["Action"])
                for action in actions:
                    assert "*" not in action, f"{name}: wildcard action {action}"
                for res in as_list(st["Resource"]):
                    if render(res, params) == "*":
                        assert set(actions) <= NO_RESOURCE_LEVEL_ACTIONS, (name, actions)


def statements(cfn: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [
        st
        for policy in cfn["Resources"][role]["Properties"].get("Policies", [])
        for st in policy["PolicyDocument"]["Statement"]
    ]


def grants(cfn: dict[str, Any], role: str, action: str) -> set[str]:
    params = cfn["_params"]
    return {
        render(res, params)
        for st in statements(cfn, role)
        if action in as_list(st["Action"])
        for res in as_list(st["Resource"])
    }


def test_function_permissions_follow_their_job(deployment):
    suffix = "ImageFunction" if deployment["_params"]["PackageType"] == "Image" else "Function"
    api, ingest, batch = (f"{r}{suffix}Role" for r in ("Api", "Ingest", "Batch"))
    params = deployment["_params"]
    images, inbox, batches = (params[k] for k in ("ImagePrefix", "InputPrefix", "BatchPrefix"))
    outputs = params["OutputPrefix"]
    # The API reads the image prefix of the input bucket (s3:// images for /embed_image), nothing
    # else, and names that bucket as the only one it reads images from.
    assert grants(deployment, api, "s3:GetObject") == {f"${{InputBucket.Arn}}/{images}*"}
    assert {a for st in statements(deployment, api) for a in as_list(st["Action"])} == {
        "s3:GetObject"
    }
    api_function = deployment["Resources"][api.removesuffix("Role")]["Properties"]
    assert api_function["Environment"]["Variables"]["IMAGE_BUCKETS"] == {"Ref": "InputBucket"}
    # Ingest: read the input prefix, read (the idempotency manifest) and write the output prefix
    # only, feed the DLQ, poll the queue.
    assert grants(deployment, ingest, "s3:GetObject") == {
        f"${{InputBucket.Arn}}/{inbox}*",
        f"${{OutputBucket.Arn}}/{outputs}*",
    }
    assert grants(deployment, ingest, "s3:PutObject") == {f"${{OutputBucket.Arn}}/{outputs}*"}
    assert grants(deployment, ingest, "sqs:SendMessage") == {"${DeadLetterQueue.Arn}"}
    assert grants(deployment, ingest, "sqs:ReceiveMessage") == {"${IngestQueue.Arn}"}
    # Batch: the prefix runs may name (BatchPrefix), the output prefix.
    assert grants(deployment, batch, "s3:GetObject") == {
        f"${{InputBucket.Arn}}/{batches}*",
        f"${{OutputBucket.Arn}}/{outputs}*",
    }
    assert grants(deployment, batch, "s3:PutObject") == {f"${{OutputBucket.Arn}}/{outputs}*"}
    assert grants(deployment, batch, "sqs:SendMessage") == set()


def _rendered(node: Any, params: dict[str, Any]) -> Any:
    if (
        isinstance(node, dict)
        and len(node) == 1
        and next(iter(node)) in {"Ref", "Fn::GetAtt", "Fn::Sub"}
    ):
        return render(node, params)
    if isinstance(node, dict):
        return {k: _rendered(v, params) for k, v in node.items()}
    if isinstance(node, list):
        return [_rendered(v, params) for v in node]
    return node


def statement_table(cfn: dict[str, Any]) -> dict[str, set[tuple]]:
    """Every inline statement of every role: (Sid, actions, resources, condition), rendered."""
    params = cfn["_params"]
    return {
        name: {
            (
                st.get("Sid"),
                frozenset(as_list(st["Action"])),
                frozenset(render(r, params) for r in as_list(st["Resource"])),
                json.dumps(_rendered(st.get("Condition"), params), sort_keys=True),
            )
            for policy in role["Properties"].get("Policies", [])
            for st in policy["PolicyDocument"]["Statement"]
        }
        for name, role in resources(cfn, "AWS::IAM::Role").items()
    }


def expected_statement_table(params: dict[str, Any]) -> dict[str, set[tuple]]:
    """What README's security bullet promises, statement by statement, for one deployment."""
    inp, out = "${InputBucket.Arn}", "${OutputBucket.Arn}"
    images, inbox, batches = (params[k] for k in ("ImagePrefix", "InputPrefix", "BatchPrefix"))
    outputs = params["OutputPrefix"]
    suffix = "ImageFunction" if params["PackageType"] == "Image" else "Function"
    none = json.dumps(None)

    def st(sid, actions, res, condition=None):
        return (sid, frozenset(actions), frozenset(res), json.dumps(condition, sort_keys=True))

    read_write_output = st(
        "ReadWriteOutputPrefix", ["s3:GetObject", "s3:PutObject"], [f"{out}/{outputs}*"]
    )
    dead_letters = st("SendToDeadLetterQueue", ["sqs:SendMessage"], ["${DeadLetterQueue.Arn}"])
    # The sinks replace a version's files and the sync ledger, under the output prefix only.
    delete_old = st("DeleteOldOutputs", ["s3:DeleteObject"], [f"{out}/{outputs}*"])
    account = f"aws:states:{params['AWS::Region']}:{params['AWS::AccountId']}"
    table = {
        f"Api{suffix}Role": {st("ReadImagePrefix", ["s3:GetObject"], [f"{inp}/{images}*"])},
        f"Ingest{suffix}Role": {
            st("ReadInputPrefix", ["s3:GetObject", "s3:GetObjectVersion"], [f"{inp}/{inbox}*"]),
            read_write_output,
            delete_old,
            dead_letters,
            st(
                "PollIngestQueue",
                [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                ],
                ["${IngestQueue.Arn}"],
            ),
        },
        f"Batch{suffix}Role": {
            st("ReadBatchPrefix", ["s3:GetObject"], [f"{inp}/{batches}*"]),
            read_write_output,
            delete_old,
        },
        "EmbedPrefixStateMachineRole": {
            st("InvokeBatchFunction", ["lambda:InvokeFunction"], [f"${{Batch{suffix}.Arn}}"]),
            st(
                "ListBatchPrefix",
                ["s3:ListBucket"],
                ["${InputBucket.Arn}"],
                {"StringLike": {"s3:prefix": f"{batches}*"}},
            ),
            st(
                "WriteMapRunResults",
                [
                    "s3:PutObject",
                    "s3:GetObject",
                    "s3:ListMultipartUploadParts",
                    "s3:AbortMultipartUpload",
                ],
                [f"{out}/stepfunctions/*"],
            ),
            st(
                "RunDistributedMapChildren",
                ["states:StartExecution"],
                [f"arn:{account}:stateMachine:${{AWS::StackName}}-embed-prefix"],
            ),
            st(
                "ManageDistributedMapChildren",
                ["states:DescribeExecution", "states:StopExecution", "states:RedriveExecution"],
                [f"arn:{account}:execution:${{AWS::StackName}}-embed-prefix/*"],
            ),
            st("LogDelivery", NO_RESOURCE_LEVEL_ACTIONS, ["*"]),
        },
    }
    if params["EnableDispatchFunction"] == "true":
        table[f"Dispatch{suffix}Role"] = {
            st(
                "ReadImageIngestAndBatchPrefixes",
                ["s3:GetObject", "s3:GetObjectVersion"],
                [f"{inp}/{images}*", f"{inp}/{inbox}*", f"{inp}/{batches}*"],
            ),
            read_write_output,
            delete_old,
            dead_letters,
        }
    assert none == "null"
    return table


def test_every_statement_names_exactly_its_resources(deployment):
    """The whole of every role, statement by statement: a widened resource, an added action or
    an extra statement fails here (README's security bullet, as deployed)."""
    assert statement_table(deployment) == expected_statement_table(deployment["_params"])


def test_the_statement_table_catches_a_widening(sam_template):
    """The table check can fail: the API reading the whole input bucket is caught."""
    from _infra_sam import translate

    widened = json.loads(json.dumps(sam_template))
    policy = widened["Resources"]["ApiFunction"]["Properties"]["Policies"][0]
    policy["Statement"][0]["Resource"] = {"Fn::Sub": "${InputBucket.Arn}/*"}
    cfn = effective(translate(widened, {}), {})
    got, want = statement_table(cfn), expected_statement_table(cfn["_params"])
    assert got["ApiFunctionRole"] != want["ApiFunctionRole"]
    assert {k: v for k, v in got.items() if k != "ApiFunctionRole"} == {
        k: v for k, v in want.items() if k != "ApiFunctionRole"
    }


def test_input_bucket_versioning_and_access_logs_are_optional(deployment):
    params = deployment["_params"]
    bucket = deployment["Resources"]["InputBucket"]["Properties"]
    if params["InputBucketVersioning"] == "true":
        assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    else:
        assert "VersioningConfiguration" not in bucket
    if params["InputBucketAccessLogs"] != "true":
        assert "LoggingConfiguration" not in bucket
        assert "AccessLogBucket" not in deployment["Resources"]
        return
    assert bucket["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": "AccessLogBucket"},
        "LogFilePrefix": "input-bucket/",
    }
    logs = deployment["Resources"]["AccessLogBucket"]["Properties"]
    [rule] = logs["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == params["LogRetentionDays"]
    policy = deployment["Resources"]["AccessLogBucketPolicy"]["Properties"]["PolicyDocument"]
    [allow] = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert allow["Action"] == "s3:PutObject"
    assert render(allow["Resource"], params) == "${AccessLogBucket.Arn}/input-bucket/*"
    assert allow["Condition"]["ArnLike"] == {
        "aws:SourceArn": {"Fn::GetAtt": ["InputBucket", "Arn"]}
    }


# ---- storage, queues, dead letters ---------------------------------------------------------------


def test_buckets_are_private_encrypted_and_tls_only(deployment):
    buckets = resources(deployment, "AWS::S3::Bucket")
    logs = deployment["_params"]["InputBucketAccessLogs"] == "true"
    assert set(buckets) == {"InputBucket", "OutputBucket"} | (
        {"AccessLogBucket"} if logs else set()
    )
    policies = resources(deployment, "AWS::S3::BucketPolicy")
    for name, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name
        sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
        assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
        policy = next(p for p in policies.values() if p["Properties"]["Bucket"] == {"Ref": name})
        [deny] = [
            s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"
        ]
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny["Principal"] == "*" and deny["Action"] == "s3:*"


def test_s3_ingest_path_ends_in_the_dead_letter_queue(deployment):
    params = deployment["_params"]
    res = deployment["Resources"]
    ingest = "IngestImageFunction" if params["PackageType"] == "Image" else "IngestFunction"
    # S3 ObjectCreated under the input prefix -> IngestQueue.
    # S3 ObjectRemoved too: a deleted object's vectors are deleted (the sync lifecycle).
    notifications = res["InputBucket"]["Properties"]["NotificationConfiguration"][
        "QueueConfigurations"
    ]
    assert [n["Event"] for n in notifications] == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    for notification in notifications:
        assert notification["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
        assert notification["Filter"]["S3Key"]["Rules"] == [
            {"Name": "prefix", "Value": deployment["_params"]["InputPrefix"]}
        ]
    assert "IngestQueuePolicy" in as_list(res["InputBucket"]["DependsOn"])
    # The queue accepts the input bucket's notifications only, by the name the bucket gets.
    allow = next(
        s
        for s in res["IngestQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
    )
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    source = render(allow["Condition"]["ArnEquals"]["aws:SourceArn"], params)
    bucket_name = render(res["InputBucket"]["Properties"]["BucketName"], params)
    assert source == f"arn:aws:s3:::{bucket_name}"
    # IngestQueue -> the ingest function, partial batch failures; retries then the DLQ.
    [mapping] = resources(deployment, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert mapping["Properties"]["FunctionName"] == {"Ref": ingest}
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = res["IngestQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
    }
    receives = render(queue["RedrivePolicy"]["maxReceiveCount"], params)
    assert 1 <= int(receives) <= 5
    # The function knows the same count: on the last receive it dead-letters with a reason.
    env = res[ingest]["Properties"]["Environment"]["Variables"]
    assert render(env["MAX_RECEIVE_COUNT"], params) == receives
    timeout = res[ingest]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout
    # The DLQ keeps failures the longest SQS allows; both queues are encrypted.
    assert res["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == 1209600
    for q in ("IngestQueue", "DeadLetterQueue"):
        assert res[q]["Properties"]["SqsManagedSseEnabled"] is True


# ---- Step Functions ------------------------------------------------------------------------------


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\$\{([^}]*)\}", text))


def test_state_machine_substitutions_and_permissions(deployment):
    params = deployment["_params"]
    res = deployment["Resources"]
    [(sm_name, sm)] = resources(deployment, "AWS::StepFunctions::StateMachine").items()
    props = sm["Properties"]
    definition = (STATEMACHINES / "embed_prefix.asl.json").read_text()
    subs = props["DefinitionSubstitutions"]
    assert set(subs) == placeholders(definition)
    batch = "BatchImageFunction" if params["PackageType"] == "Image" else "BatchFunction"
    assert subs["BatchFunctionArn"] == {"Fn::GetAtt": [batch, "Arn"]}
    assert subs["OutputBucket"] == {"Ref": "OutputBucket"}
    role = props["RoleArn"]["Fn::GetAtt"][0]
    assert grants(deployment, role, "lambda:InvokeFunction") == {"${" + batch + ".Arn}"}
    assert grants(deployment, role, "s3:ListBucket") == {"${InputBucket.Arn}"}
    assert grants(deployment, role, "s3:PutObject") == {"${OutputBucket.Arn}/stepfunctions/*"}
    # A Distributed Map starts its children as executions of its own state machine.
    name = render(props["StateMachineName"], params)
    assert grants(deployment, role, "states:StartExecution") == {
        f"arn:aws:states:{REGION}:123456789012:stateMachine:{name}"
    }
    assert grants(deployment, role, "states:DescribeExecution") == {
        f"arn:aws:states:{REGION}:123456789012:execution:{name}/*"
    }
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] in {"ERROR", "ALL"}
    assert sm_name == "EmbedPrefixStateMachine"
    assert "StateMachineLogGroup" in res


# ---- outputs and build wiring ----------------------------------------------------------------------


def test_outputs(deployment):
    outputs = deployment["Outputs"]
    for key in (
        "ApiUrl",
        "InputBucketName",
        "OutputBucketName",
        "StateMachineArn",
        "DeadLetterQueueUrl",
        "IngestQueueUrl",
    ):
        assert key in outputs, key
    assert ("DispatchFunctionUrl" in outputs) == (
        deployment["_params"]["EnableDispatchFunction"] == "true"
    )


def test_sam_build_targets_exist_in_layers_makefile(sam_template):
    """Every `BuildMethod: makefile` resource builds from layers/, whose Makefile must have its
    build-<LogicalId> target."""
    makefile = (REPO / "layers" / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z0-9_\- ]+):", makefile, flags=re.M))
    targets = {t for line in targets for t in line.split()}
    built = [
        name
        for name, r in sam_template["Resources"].items()
        if r.get("Metadata", {}).get("BuildMethod") == "makefile"
    ]
    assert len(built) == 6
    for name in built:
        props = sam_template["Resources"][name]["Properties"]
        assert (props.get("CodeUri") or props.get("ContentUri")) == "layers/", name
        assert f"build-{name}" in targets, name


def test_dockerfile_copies_what_exists_and_defaults_to_the_api():
    dockerfile = (REPO / "Dockerfile").read_text()
    # The image runs the zip route's default Python (template PythonRuntime, layers/Makefile).
    default = load_template()["Parameters"]["PythonRuntime"]["Default"].removeprefix("python")
    assert f"BASE_IMAGE=public.ecr.aws/lambda/python:{default}" in dockerfile
    layers_makefile = (REPO / "layers" / "Makefile").read_text()
    assert f"PYTHON_VERSION ?= {default}\n" in layers_makefile
    assert 'CMD ["handler.app.api_handler"]' in dockerfile
    allowed = (REPO / ".dockerignore").read_text().split()
    for line in dockerfile.splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            for src in line.split()[1:-1]:
                assert (REPO / src).exists(), src
                assert f"!{src}" in allowed, f".dockerignore drops {src}"


def test_runtime_requirements_agree_with_pyproject():
    """The layer's pins satisfy the ranges and pins pyproject.toml gives the same packages."""
    import tomllib

    from packaging.requirements import Requirement

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in pyproject["dependencies"]]
    declared += [Requirement(r) for r in pyproject["optional-dependencies"]["lambda"]]
    pins = {}
    for line in (REPO / "layers" / "runtime" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            [spec] = req.specifier
            assert spec.operator == "==", f"not pinned: {line}"
            pins[req.name.lower().replace("_", "-")] = spec.version
    for req in declared:
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is a runtime/lambda dependency but not in the layer"
        assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name])
