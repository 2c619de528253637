"""Helpers for the infrastructure tests: load template.yaml, translate it with the SAM
translator the way `sam package` + CloudFormation would, and evaluate its Conditions for one set of
parameter values, so the tests look at the template a given deployment actually gets.

No network and no AWS account: the managed-policy loader is a fixed map, artifacts get
placeholder S3 / ECR locations.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
STATEMACHINES = REPO / "statemachines"

ACCOUNT = "123456789012"
REGION = "us-east-1"
IMAGE_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/kettle:latest"

# The AWS managed policies SAM attaches by name (Tracing, event sources) with their real ARNs.
# samtranslator only asks the loader for names it finds in Policies; a name missing here would
# make the translation fail, which is what we want to notice.
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSXRayDaemonWriteAccess": "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess",
    "AWSLambdaSQSQueueExecutionRole": (
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
    ),
    "AWSLambdaRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaRole",
}


class FixedManagedPolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader (which lists policies through IAM)."""

    def load(self) -> dict[str, str]:
        return dict(MANAGED_POLICIES)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """template.yaml as plain dicts/lists/strings (short-form tags become Ref/Fn::* maps)."""
    from cfnlint.decode import decode

    template, matches = decode(str(path))
    assert not matches, [str(m) for m in matches]
    return json.loads(json.dumps(template))


def package(template: dict[str, Any]) -> dict[str, Any]:
    """What `sam build && sam package` hand CloudFormation: local CodeUri/ContentUri/DefinitionUri
    become S3 locations and image functions get an ImageUri."""
    template = copy.deepcopy(template)
    for name, res in template["Resources"].items():
        props = res.get("Properties", {})
        kind = res["Type"]
        if kind == "AWS::Serverless::Function":
            if props.get("PackageType") == "Image":
                props.setdefault(
                    "ImageUri", f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/kettle:{name.lower()}"
                )
            elif isinstance(props.get("CodeUri"), str):
                props["CodeUri"] = f"s3://kettle-artifacts/{name}.zip"
        elif kind == "AWS::Serverless::LayerVersion" and isinstance(props.get("ContentUri"), str):
            props["ContentUri"] = f"s3://kettle-artifacts/{name}.zip"
        elif kind == "AWS::Serverless::StateMachine" and isinstance(
            props.get("DefinitionUri"), str
        ):
            props["DefinitionUri"] = f"s3://kettle-artifacts/{Path(props['DefinitionUri']).name}"
    return template


def translate(template: dict[str, Any], params: dict[str, str] | None = None) -> dict[str, Any]:
    """The CloudFormation template the SAM transform produces (conditions still unevaluated)."""
    from samtranslator.translator.transform import transform

    return transform(package(template), dict(params or {}), FixedManagedPolicyLoader())


# ---- evaluating Conditions / Fn::If for one deployment ------------------------------------------


def parameter_values(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    values = {k: v.get("Default") for k, v in template.get("Parameters", {}).items()}
    values.update(overrides)
    unknown = set(overrides) - set(template.get("Parameters", {}))
    assert not unknown, f"not template parameters: {unknown}"
    values.update({"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws"})
    return values


def _value(node: Any, params: dict[str, Any], conditions: dict[str, bool]) -> Any:
    if isinstance(node, dict) and len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref" and arg in params:
            return params[arg]
        if key == "Condition":
            return conditions[arg]
        if key == "Fn::Equals":
            a, b = (_value(x, params, conditions) for x in arg)
            return str(a) == str(b)
        if key == "Fn::Not":
            return not _value(arg[0], params, conditions)
        if key == "Fn::And":
            return all(_value(x, params, conditions) for x in arg)
        if key == "Fn::Or":
            return any(_value(x, params, conditions) for x in arg)
    return node


def evaluate_conditions(template: dict[str, Any], params: dict[str, Any]) -> dict[str, bool]:
    pending = dict(template.get("Conditions", {}))
    done: dict[str, bool] = {}
    while pending:
        progressed = False
        for name, expr in list(pending.items()):
            try:
                done[name] = bool(_value(expr, params, done))
            except KeyError:
                continue  # refers to a condition not evaluated yet
            del pending[name]
            progressed = True
        assert progressed, f"circular or unknown conditions: {sorted(pending)}"
    return done


def _resolve(node: Any, conditions: dict[str, bool], params: dict[str, Any]) -> Any:
    """Fn::If -> its chosen branch; Ref to a template parameter -> its value; AWS::NoValue
    dropped. Pseudo parameters and resource references stay as they are."""
    if isinstance(node, dict):
        if len(node) == 1 and "Fn::If" in node:
            cond, yes, no = node["Fn::If"]
            return _resolve(yes if conditions[cond] else no, conditions, params)
        if len(node) == 1 and "Ref" in node and node["Ref"] in params:
            return params[node["Ref"]]
        out = {}
        for k, v in node.items():
            v = _resolve(v, conditions, params)
            if v != {"Ref": "AWS::NoValue"}:
                out[k] = v
        return out
    if isinstance(node, list):
        resolved = (_resolve(v, conditions, params) for v in node)
        return [x for x in resolved if x != {"Ref": "AWS::NoValue"}]
    return node


def effective(cfn: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """The translated template as one deployment sees it: resources and outputs whose Condition
    is false removed, every Fn::If replaced by its chosen branch, template parameters filled in.
    Adds `_params` (parameter and pseudo-parameter values)."""
    params = parameter_values(cfn, overrides)
    conditions = evaluate_conditions(cfn, params)
    out = copy.deepcopy(cfn)
    for section in ("Resources", "Outputs"):
        out[section] = {
            name: body
            for name, body in out.get(section, {}).items()
            if "Condition" not in body or conditions[body["Condition"]]
        }
    template_params = {k: params[k] for k in cfn.get("Parameters", {})}
    out["Resources"] = _resolve(out["Resources"], conditions, template_params)
    out["Outputs"] = _resolve(out["Outputs"], conditions, template_params)
    out["_params"] = params
    return out


# Parameter sets the tests translate and check; the ids name them in test output.
DEPLOYMENTS = {
    "default": {},
    "auth-none": {"ApiAuth": "NONE"},
    "x86_64": {"Architecture": "x86_64"},
    "image": {"PackageType": "Image", "ImageUri": IMAGE_URI},
    "no-snapstart-dispatch": {"EnableSnapStart": "false", "EnableDispatchFunction": "true"},
    # Every optional input-bucket setting on, other prefixes, the other Lambda Python.
    "bucket-options-py312": {
        "InputBucketVersioning": "true",
        "InputBucketAccessLogs": "true",
        "ImagePrefix": "pictures/",
        "BatchPrefix": "corpus/2026/",
        "InputPrefix": "inbox/",
        "PythonRuntime": "python3.12",
        "EnableDispatchFunction": "true",
    },
    "image-dispatch-x86": {
        "PackageType": "Image",
        "ImageUri": IMAGE_URI,
        "EnableDispatchFunction": "true",
        "Architecture": "x86_64",
    },
}
