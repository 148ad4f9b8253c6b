"""Deploy template.yaml into the embedded moto, or look up a deployed stack, by the stack's own names.

Everything the local run touches is found through the stack: its outputs and its resources'
physical ids, exactly as after `sam deploy`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.config import Config
from samtranslator.model.exceptions import InvalidDocumentException

from embedded.template import (
    LOCAL_CODE_BUCKET,
    LOCAL_CODE_KEY,
    LOCAL_CONSUMERS,
    load_template,
    transform_template,
)


class TemplateError(RuntimeError):
    """The template cannot be deployed locally; the message says why and what to do."""


class StackError(RuntimeError):
    """The stack is missing, incomplete or not what the local run expects."""


@dataclass(frozen=True)
class StackResource:
    logical_id: str
    resource_type: str
    physical_id: str


@dataclass(frozen=True)
class DeployedStack:
    """A stack's outputs and resources, by logical id."""

    name: str
    region: str
    outputs: dict[str, str]
    resources: dict[str, StackResource]
    # stream ARN -> its enhanced fan-out consumer's ARN, registered by the local deploy
    consumers: dict[str, str] = field(default_factory=dict)

    def output(self, key: str) -> str:
        try:
            return self.outputs[key]
        except KeyError:
            raise StackError(
                f"stack {self.name} has no output {key}; outputs: {', '.join(sorted(self.outputs))}"
            ) from None

    def of_type(self, resource_type: str) -> list[StackResource]:
        return [r for r in self.resources.values() if r.resource_type == resource_type]


def describe_stack(cloudformation: Any, stack_name: str) -> DeployedStack:
    """The stack as CloudFormation describes it; StackError unless it was created or updated."""
    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except cloudformation.exceptions.ClientError as error:
        raise StackError(f"stack {stack_name}: {error}") from None
    status = stack["StackStatus"]
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
        reason = stack.get("StackStatusReason", "")
        raise StackError(f"stack {stack_name} is {status}{': ' + reason if reason else ''}")
    resources: dict[str, StackResource] = {}
    paginator = cloudformation.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack_name):
        for summary in page["StackResourceSummaries"]:
            resources[summary["LogicalResourceId"]] = StackResource(
                summary["LogicalResourceId"],
                summary["ResourceType"],
                summary.get("PhysicalResourceId", ""),
            )
    region = cloudformation.meta.region_name
    return DeployedStack(
        name=stack_name,
        region=region,
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        resources=resources,
    )


def local_template(
    template_path: Path, parameter_overrides: dict[str, str], region: str
) -> dict[str, Any]:
    """template.yaml after the SAM transform, ready for moto; TemplateError saying what is wrong."""
    try:
        template = load_template(template_path)
    except OSError as error:
        raise TemplateError(f"cannot read {template_path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise TemplateError(
            f"{template_path} is not valid YAML: {error}. Fix it (`make validate` checks it)."
        ) from None
    try:
        return transform_template(template, parameter_overrides, region=region)
    except InvalidDocumentException as error:
        causes = "; ".join(str(cause).rstrip(".") for cause in error.causes) or str(error)
        raise TemplateError(
            f"the SAM translator rejected {template_path.name}: {causes}. Fix the template "
            "(`make validate` runs cfn-lint and `sam validate --lint` on it), then run again."
        ) from None
    except ValueError as error:
        raise TemplateError(f"{template_path.name}: {error}") from None


def deploy_local_stack(
    clients: Any,
    template_path: Path,
    stack_name: str,
    parameter_overrides: dict[str, str] | None = None,
) -> DeployedStack:
    """Create the stack of `template_path` in moto; `clients(service)` makes boto3 clients for it."""
    overrides = dict(parameter_overrides or {})
    cloudformation = clients("cloudformation")
    body = local_template(template_path, overrides, cloudformation.meta.region_name)
    s3 = clients("s3")
    # The transformed template points every function and layer at this object; the handlers
    # themselves run in-process.
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):  # a stack deployed before
        s3.create_bucket(Bucket=LOCAL_CODE_BUCKET)
    s3.put_object(Bucket=LOCAL_CODE_BUCKET, Key=LOCAL_CODE_KEY, Body=b"code runs in-process")
    try:
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(body),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in overrides.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    except cloudformation.exceptions.ClientError as error:
        raise TemplateError(
            f"moto's CloudFormation refused the transformed {template_path.name}: {error}"
        ) from None
    stack = describe_stack(cloudformation, stack_name)
    wanted = body.get("Metadata", {}).get(LOCAL_CONSUMERS, {})
    return replace(stack, consumers=register_consumers(clients("kinesis"), stack, wanted))


def register_consumers(
    kinesis: Any, stack: DeployedStack, consumers: dict[str, dict[str, str]]
) -> dict[str, str]:
    """Register the template's stream consumers (transform_template's LOCAL_CONSUMERS) as
    CloudFormation would; stream ARN -> consumer ARN. One already registered is kept."""
    registered: dict[str, str] = {}
    for consumer in consumers.values():
        stream = stack.resources[consumer["Stream"]].physical_id
        arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
            "StreamARN"
        ]
        try:
            answer = kinesis.register_stream_consumer(
                StreamARN=arn, ConsumerName=consumer["ConsumerName"]
            )
            registered[arn] = answer["Consumer"]["ConsumerARN"]
        except kinesis.exceptions.ResourceInUseException:
            described = kinesis.describe_stream_consumer(
                StreamARN=arn, ConsumerName=consumer["ConsumerName"]
            )
            registered[arn] = described["ConsumerDescription"]["ConsumerARN"]
    return registered


NO_CREDENTIALS = (
    "no AWS credentials found for --stack-name (configure a profile, or set "
    "AWS_PROFILE / AWS_ACCESS_KEY_ID)"
)
LAMBDA_READ_TIMEOUT_SECONDS = 910  # a synchronous invoke waits for the function (up to 900 s)


def open_deployed_stack(
    stack_name: str, region: str | None
) -> tuple[DeployedStack, Callable[[str], Any]]:
    """A deployed stack and a client factory on your credentials (one client per service).

    Clients retry in standard mode (10 attempts); Lambda's wait for a function's whole run.
    StackError without credentials, or when the stack is not there (naming the region).
    """
    session = boto3.session.Session(region_name=region)
    if session.get_credentials() is None:
        raise StackError(NO_CREDENTIALS)
    retries = Config(retries={"mode": "standard", "max_attempts": 10})
    invoking = Config(
        retries={"mode": "standard", "max_attempts": 3},
        read_timeout=LAMBDA_READ_TIMEOUT_SECONDS,
        connect_timeout=10,
    )
    made: dict[str, Any] = {}

    def clients(service: str) -> Any:
        if service not in made:
            config = invoking if service == "lambda" else retries
            made[service] = session.client(service, config=config)  # type: ignore[call-overload]
        return made[service]

    try:
        stack = describe_stack(clients("cloudformation"), stack_name)
    except StackError as error:
        raise StackError(f"{error}; is the stack deployed in {session.region_name}?") from None
    return stack, clients
