"""Read template.yaml as CloudFormation would, for the local run and the tests.

Tables, streams and the whole stack built locally come from the template itself, so a local
mock cannot drift from what `sam deploy` creates.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, cast

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

Template = dict[str, Any]

# Where the transformed template says the code of every function and layer is: the local
# deploy uploads a placeholder object there, since the handlers run in-process.
LOCAL_CODE_BUCKET = "streamscore-local-code"
LOCAL_CODE_KEY = "placeholder.zip"
# local paths in the template (a state machine's DefinitionUri) are relative to the repository
REPOSITORY = Path(__file__).resolve().parents[2]

# moto's CloudFormation has no model for these types and skips them with a warning. The policies
# only restrict access (moto enforces no resource policies); the retraining build never runs
# locally (there is no CodeBuild to run it), and nothing refers to the project but by its name.
# The local stack leaves them out.
MOTO_UNSUPPORTED_TYPES = frozenset(
    {"AWS::SQS::QueuePolicy", "AWS::S3::BucketPolicy", "AWS::CodeBuild::Project"}
)

# Where transform_template leaves the enhanced fan-out consumers moto's CloudFormation cannot
# create (no model for AWS::Kinesis::StreamConsumer): the local deploy registers them itself.
LOCAL_CONSUMERS = "LocalStreamConsumers"

_NO_VALUE = object()
_CONDITION_FUNCTIONS = ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition")


def load_template(path: str | Path) -> Template:
    """Parse a CloudFormation/SAM YAML template; short-form tags (!Ref, !Sub, ...) become their long form."""
    return cast(Template, yaml_parse(Path(path).read_text(encoding="utf-8")))


def parameter_values(template: Template, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Every parameter's value (default, or the override), checked against its constraints."""
    declared: dict[str, dict[str, Any]] = template.get("Parameters", {})
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ValueError(f"unknown template parameters: {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            value = str(overrides[name])
        elif "Default" in spec:
            value = str(spec["Default"])
        else:
            raise ValueError(f"parameter {name} has no default and no value")
        _check_parameter(name, spec, value)
        values[name] = value
    return values


def resolve_conditions(template: Template, node: Any, values: dict[str, str]) -> Any:
    """`node` with Ref to parameters (their `values`), Fn::If on the template's conditions and
    AWS::NoValue resolved; other intrinsics left as they are."""
    return _resolve(node, values, template.get("Conditions", {}))


def _check_parameter(name: str, spec: dict[str, Any], value: str) -> None:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        raise ValueError(f"{name}={value!r} is not one of {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        raise ValueError(f"{name}={value!r} does not match {pattern}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise ValueError(f"{name}={value} is below {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise ValueError(f"{name}={value} is above {spec['MaxValue']}")


def transform_template(
    template: Template,
    parameter_overrides: dict[str, str] | None = None,
    region: str = "us-east-1",
) -> Template:
    """Run the SAM transform offline and point all code at the local placeholder object.

    The result is the CloudFormation template the local deploy creates in moto; types moto
    cannot create (MOTO_UNSUPPORTED_TYPES) are left out. moto also ignores some properties
    (table TTL and PITR, stream encryption and mode, function layers and tracing; a layer's Ref
    is not its ARN), so the template tests check those on the template itself.
    """
    sam_template = copy.deepcopy(template)
    placeholder = {"Bucket": LOCAL_CODE_BUCKET, "Key": LOCAL_CODE_KEY}
    globals_function = sam_template.get("Globals", {}).get("Function", {})
    if "CodeUri" in globals_function:
        globals_function["CodeUri"] = dict(placeholder)
    for resource in sam_template.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and "CodeUri" in properties:
            properties["CodeUri"] = dict(placeholder)
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            properties["ContentUri"] = dict(placeholder)
        elif resource["Type"] == "AWS::Serverless::StateMachine" and isinstance(
            properties.get("DefinitionUri"), str
        ):  # a local file, which `sam deploy` would upload: inline, as the translator needs
            path = REPOSITORY / properties.pop("DefinitionUri")
            properties["Definition"] = json.loads(path.read_text(encoding="utf-8"))

    # No managed policy is named in the template (every role is explicit), so the translator
    # needs no IAM lookup and runs without credentials or network.
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=region))
    transformed = translator.translate(
        sam_template,
        parameter_values=dict(parameter_values(template, parameter_overrides)),
        get_managed_policy_map=dict,
    )
    transformed["Resources"] = {
        logical_id: resource
        for logical_id, resource in transformed["Resources"].items()
        if resource["Type"] not in MOTO_UNSUPPORTED_TYPES
    }
    return _without_consumers(
        transformed, template, parameter_values(template, parameter_overrides)
    )


def _without_consumers(
    transformed: Template, template: Template, values: dict[str, str]
) -> Template:
    """The stream consumers out of `transformed`, every Ref to one replaced by its stream's ARN
    (moto's mapping then reads the stream), and the ones the parameters create listed under
    Metadata LOCAL_CONSUMERS (logical id -> ConsumerName and the stream's logical id)."""
    resources = transformed["Resources"]
    consumers = {
        logical_id: resource
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Kinesis::StreamConsumer"
    }
    if not consumers:
        return transformed
    created: dict[str, dict[str, str]] = {}
    for logical_id, resource in consumers.items():
        del resources[logical_id]
        condition = resource.get("Condition")
        if condition is None or resolve_conditions(
            template, {"Fn::If": [condition, True, False]}, values
        ):
            stream = resource["Properties"]["StreamARN"]["Fn::GetAtt"]
            stream_id = stream[0] if isinstance(stream, list) else str(stream).split(".")[0]
            created[logical_id] = {
                "ConsumerName": str(resource["Properties"]["ConsumerName"]),
                "Stream": stream_id,
            }
    arns = {lid: r["Properties"]["StreamARN"] for lid, r in consumers.items()}
    rewritten = cast(Template, _replace_refs(transformed, arns))
    rewritten.setdefault("Metadata", {})[LOCAL_CONSUMERS] = created
    return rewritten


def _replace_refs(node: Any, replacements: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in replacements:
            return copy.deepcopy(replacements[node["Ref"]])
        return {k: _replace_refs(v, replacements) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_refs(v, replacements) for v in node]
    return node


def table_definitions(template: Template) -> dict[str, dict[str, Any]]:
    """boto3 `create_table` keyword arguments (all but TableName) of each DynamoDB table, by logical id."""
    definitions: dict[str, dict[str, Any]] = {}
    for logical_id, resource in _resources_of_type(template, "AWS::DynamoDB::Table"):
        properties = resource["Properties"]
        kwargs: dict[str, Any] = {
            "KeySchema": copy.deepcopy(properties["KeySchema"]),
            "AttributeDefinitions": copy.deepcopy(properties["AttributeDefinitions"]),
            "BillingMode": properties.get("BillingMode", "PROVISIONED"),
        }
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if key in properties:
                kwargs[key] = copy.deepcopy(properties[key])
        if "StreamSpecification" in properties:
            view = properties["StreamSpecification"]["StreamViewType"]
            kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
        definitions[logical_id] = kwargs
    return definitions


def stream_definitions(
    template: Template, parameter_overrides: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """boto3 Kinesis `create_stream` keyword arguments (all but StreamName) of each stream, by logical id."""
    values = parameter_values(template, parameter_overrides)
    conditions = template.get("Conditions", {})
    definitions: dict[str, dict[str, Any]] = {}
    for logical_id, resource in _resources_of_type(template, "AWS::Kinesis::Stream"):
        properties = _resolve(resource.get("Properties", {}), values, conditions)
        mode = properties.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED")
        kwargs: dict[str, Any] = {"StreamModeDetails": {"StreamMode": mode}}
        if mode == "PROVISIONED":
            kwargs["ShardCount"] = int(properties.get("ShardCount", 1))
        definitions[logical_id] = kwargs
    return definitions


def _resources_of_type(template: Template, resource_type: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (logical_id, resource)
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    ]


def _resolve(node: Any, values: dict[str, str], conditions: dict[str, Any]) -> Any:
    """Resolve Ref to parameters, Fn::If and AWS::NoValue; other intrinsics are left as they are."""
    if isinstance(node, list):
        items = [_resolve(item, values, conditions) for item in node]
        return [item for item in items if item is not _NO_VALUE]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        name = node["Ref"]
        if name == "AWS::NoValue":
            return _NO_VALUE
        return values.get(name, node)
    if set(node) == {"Fn::If"}:
        condition, if_true, if_false = node["Fn::If"]
        chosen = if_true if _condition(conditions[condition], values, conditions) else if_false
        return _resolve(chosen, values, conditions)
    resolved = {key: _resolve(value, values, conditions) for key, value in node.items()}
    return {key: value for key, value in resolved.items() if value is not _NO_VALUE}


def _condition(node: Any, values: dict[str, str], conditions: dict[str, Any]) -> bool:
    if isinstance(node, dict) and len(node) == 1:
        ((function, argument),) = node.items()
        if function == "Condition":
            return _condition(conditions[argument], values, conditions)
        if function == "Fn::Equals":
            left, right = (_resolve(side, values, conditions) for side in argument)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not _condition(argument[0], values, conditions)
        if function == "Fn::And":
            return all(_condition(item, values, conditions) for item in argument)
        if function == "Fn::Or":
            return any(_condition(item, values, conditions) for item in argument)
    raise ValueError(f"unsupported condition {node!r}; expected one of {_CONDITION_FUNCTIONS}")
