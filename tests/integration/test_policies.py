"""The deployed policies against the requests the functions really make.

moto enforces no IAM, bucket or key policy, so an upload every deployed drift check is refused
passes every local test. Here the policies of template.yaml are evaluated offline
(iam_policies.py): first the evaluator against the IAM User Guide's own examples, then the
bucket policy and the roles on requests written out (what must be refused), then every request
a small embedded run records (aws_requests.py: the real handlers behind the event-source
emulator, then the drift check) and the KMS request S3 or Kinesis makes on the caller's behalf
for each write, each checked against its function role, the bucket policy and the key policy.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_requests import RecordedCall, RequestRecorder, authorization_requests
from iam_policies import (
    Decision,
    Policy,
    Request,
    StackNames,
    StackPolicies,
    UnsupportedPolicyError,
    condition_holds,
    evaluate,
)

from embedded.containers import FUNCTION_OUTPUT
from embedded.moto_process import ASYNC_INVOCATIONS_QUEUE
from embedded.producer import Producer, simulated_traffic
from embedded.server import MotoServer
from embedded.stack import EmbeddedStack
from embedded.template import Template, load_template, parameter_values
from lifecycle.registry import Registry
from lifecycle.retrain_command import add_arguments as add_retrain_arguments
from lifecycle.retrain_command import publish_candidate, run_retrain

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ACCOUNT = "111122223333"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/example"
SSE = "s3:x-amz-server-side-encryption"
SSE_KEY = "s3:x-amz-server-side-encryption-aws-kms-key-id"
OTHER_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-1111-2222-3333-444444444444"
ARTIFACTS = Path(__file__).resolve().parents[2] / "models" / "artifacts"
FUNCTIONS = (
    "PreprocessFunction",
    "ScoreFunction",
    "DriftCheckFunction",
    "LabelsFunction",
    "FeatureLogFunction",
    "RetrainStartFunction",
)


def allow(statement: dict[str, Any]) -> Policy:
    return Policy("p", {"Version": "2012-10-17", "Statement": [statement]})


# ---------------------------------------------------------------- the evaluator, on the docs' examples
# IAM User Guide, "IAM JSON policy elements: Condition operators" unless said otherwise.


def test_string_equals_on_a_missing_key_does_not_match() -> None:
    # given
    # "If a user without the tag attempts to view or edit an access key, the condition returns
    # false and the request is implicitly denied by this statement."
    policy = allow(
        {
            "Effect": "Allow",
            "Action": "iam:*AccessKey*",
            "Resource": f"arn:aws:iam::{ACCOUNT}:user/*",
            "Condition": {"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}},
        }
    )
    request = Request(ROLE, "iam:ListAccessKeys", f"arn:aws:iam::{ACCOUNT}:user/alice")

    # when
    untagged = evaluate(request, [policy])
    tagged = evaluate(
        request.with_context({"aws:PrincipalTag/job-category": "iamuser-admin"}), [policy]
    )
    other = evaluate(request.with_context({"AWS:principaltag/job-category": "other"}), [policy])

    # then
    assert untagged.decision is Decision.IMPLICIT_DENY
    assert tagged.decision is Decision.ALLOW
    assert other.decision is Decision.IMPLICIT_DENY


def test_a_negated_operator_on_a_missing_key_is_true() -> None:
    # "If the policy condition requires that the key is not matched, such as StringNotLike or
    # ArnNotLike, and the right key is not present, the condition is true."
    for operator in ("StringNotLike", "ArnNotLike", "StringNotEquals", "ArnNotEquals"):
        assert condition_holds({operator: {"aws:SourceArn": "arn:aws:sns:*:*:topic"}}, {})
    for operator in ("StringLike", "ArnLike", "StringEquals", "ArnEquals", "Bool"):
        assert not condition_holds({operator: {"aws:SourceArn": "x"}}, {})


def test_arn_like_matches_component_by_component_where_string_like_does_not() -> None:
    # "With a StringLike condition, the match succeeds. ... With an ArnLike condition, which
    # matches elements between colons, the match fails."
    pattern = "arn:aws:someservice:*:111122223333:finance/*"
    value = "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"
    context = {"aws:SourceArn": value}

    assert condition_holds({"StringLike": {"aws:SourceArn": pattern}}, context)
    assert not condition_holds({"ArnLike": {"aws:SourceArn": pattern}}, context)
    assert condition_holds(
        {"ArnLike": {"aws:SourceArn": pattern}},
        {"aws:SourceArn": "arn:aws:someservice:us-east-2:111122223333:finance/document.txt"},
    )


def test_arn_equals_in_a_resource_policy_needs_the_source_arn() -> None:
    # The SQS queue policy example: "If an IAM user attempts to perform this operation directly,
    # the condition returns false and the request is implicitly denied by this statement."
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:queue"
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:topic"
    queue_policy = allow(
        {
            "Effect": "Allow",
            "Principal": {"AWS": ACCOUNT},
            "Action": "SQS:SendMessage",
            "Resource": queue,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic}},
        }
    )
    identity = allow({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue})
    direct = Request(ROLE, "sqs:SendMessage", queue)

    assert evaluate(direct, [], [queue_policy]).decision is Decision.IMPLICIT_DENY
    # "If an action is allowed by an identity-based policy, a resource-based policy, or both,
    # then AWS allows the action." (IAM User Guide, "Policy evaluation logic")
    assert evaluate(direct, [identity], [queue_policy]).decision is Decision.ALLOW


def test_if_exists_skips_a_missing_key() -> None:
    # The StringLikeIfExists example: "If the resource being checked does not have that condition
    # key, then don't worry about it."
    policy = allow(
        {
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": "*",
            "Condition": {"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}},
        }
    )
    image = Request(ROLE, "ec2:RunInstances", f"arn:aws:ec2:{REGION}::image/ami-1")
    instance = Request(ROLE, "ec2:RunInstances", f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*")

    assert evaluate(image, [policy]).allowed
    assert evaluate(instance.with_context({"ec2:InstanceType": "t2.micro"}), [policy]).allowed
    assert not evaluate(instance.with_context({"ec2:InstanceType": "m5.large"}), [policy]).allowed
    # without IfExists the image is not covered: "the StringLike check fails"
    strict = allow(
        policy.statements()[0] | {"Condition": {"StringLike": {"ec2:InstanceType": "t2.*"}}}
    )
    assert not evaluate(image, [strict]).allowed


def test_a_deny_with_a_negated_if_exists_operator_denies_a_request_without_the_key() -> None:
    # "If you are using an "Effect": "Deny" element with a negated condition operator like
    # StringNotEqualsIfExists, the request is still denied even if the tag is missing."
    everything = allow({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    deny = allow(
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::bucket/*",
            "Condition": {"StringNotEqualsIfExists": {SSE: "aws:kms"}},
        }
    )
    put = Request(ROLE, "s3:PutObject", "arn:aws:s3:::bucket/key")

    assert evaluate(put, [everything], [deny]).decision is Decision.EXPLICIT_DENY
    assert evaluate(put.with_context({SSE: "AES256"}), [everything], [deny]).decision is (
        Decision.EXPLICIT_DENY
    )
    assert evaluate(put.with_context({SSE: "aws:kms"}), [everything], [deny]).allowed


def test_null_tests_whether_the_key_is_there() -> None:
    # The aws:TokenIssueTime example: "the user must not be using temporary credentials (the key
    # must not exist) for the user to use the Amazon EC2 API."
    policy = allow(
        {
            "Effect": "Allow",
            "Action": "ec2:*",
            "Resource": "*",
            "Condition": {"Null": {"aws:TokenIssueTime": "true"}},
        }
    )
    request = Request(ROLE, "ec2:DescribeInstances", "*")

    assert evaluate(request, [policy]).allowed
    assert not evaluate(
        request.with_context({"aws:TokenIssueTime": "2026-01-01T00:00:00Z"}), [policy]
    ).allowed
    assert condition_holds({"Null": {"aws:TokenIssueTime": "false"}}, {"aws:TokenIssueTime": "x"})


def test_bool_secure_transport_deny() -> None:
    # given
    # The BooleanExample: "deny all S3 actions on a bucket and its contents if the request is not
    # over SSL"; this policy "does not allow any actions".
    deny = allow(
        {
            "Sid": "BooleanExample",
            "Action": "s3:*",
            "Effect": "Deny",
            "Resource": ["arn:aws:s3:::DOC-EXAMPLE-BUCKET", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
    everything = allow({"Effect": "Allow", "Action": "*", "Resource": "*"})
    get = Request(ROLE, "s3:GetObject", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a")

    # when
    plain, tls = (get.with_context({"aws:SecureTransport": v}) for v in ("false", "true"))

    # then
    # an identity-based policy (no Principal), next to one that allows everything
    assert evaluate(plain, [everything, deny]).decision is Decision.EXPLICIT_DENY
    assert evaluate(tls, [everything, deny]).allowed
    assert evaluate(tls, [deny]).decision is Decision.IMPLICIT_DENY


def test_actions_ignore_case_and_resources_take_wildcards() -> None:
    # "The prefix and the action name are case insensitive." (IAM User Guide, "IAM JSON policy
    # elements: Action")
    policy = allow(
        {"Effect": "Allow", "Action": "KMS:generate*", "Resource": "arn:aws:kms:*:*:key/?bc"}
    )

    assert evaluate(
        Request(ROLE, "kms:GenerateDataKey", "arn:aws:kms:r:a:key/abc"), [policy]
    ).allowed
    assert not evaluate(Request(ROLE, "kms:Decrypt", "arn:aws:kms:r:a:key/abc"), [policy]).allowed
    assert not evaluate(
        Request(ROLE, "kms:GenerateDataKey", "arn:aws:kms:r:a:key/abcd"), [policy]
    ).allowed


def test_a_key_policy_must_allow_the_role_or_delegate_to_iam() -> None:
    # "IAM role trust policies and KMS key policies are exceptions to this logic, because they
    # must explicitly allow access for principals." (IAM User Guide, "Policy evaluation logic")
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k"
    identity = allow({"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": key})
    delegating = allow(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    )
    services_only = allow(
        {
            "Effect": "Allow",
            "Principal": {"Service": "logs.amazonaws.com"},
            "Action": "kms:*",
            "Resource": "*",
        }
    )
    request = Request(ROLE, "kms:GenerateDataKey", key)

    assert evaluate(request, [identity], key_policy=delegating).allowed
    assert not evaluate(request, [], key_policy=delegating).allowed
    assert not evaluate(request, [identity], key_policy=services_only).allowed


def test_set_operators_follow_the_iam_user_guide() -> None:
    # ForAllValues: every request value must be allowed; no value at all holds too
    everything_model = {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["MODEL"]}}
    assert condition_holds(everything_model, {"dynamodb:LeadingKeys": ["MODEL"]})
    assert not condition_holds(everything_model, {"dynamodb:LeadingKeys": ["MODEL", "COUNT#x"]})
    assert not condition_holds(everything_model, {"dynamodb:LeadingKeys": "COUNT#x"})
    assert condition_holds(everything_model, {})
    # ForAnyValue: one allowed value is enough; no value at all does not hold
    any_model = {"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": ["MODEL"]}}
    assert condition_holds(any_model, {"dynamodb:LeadingKeys": ["MODEL", "COUNT#x"]})
    assert not condition_holds(any_model, {})


def test_what_the_evaluator_does_not_implement_is_refused() -> None:
    with pytest.raises(UnsupportedPolicyError):
        condition_holds({"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "5"})
    with pytest.raises(UnsupportedPolicyError):
        condition_holds({"ForAllValues:NumericLessThan": {"k": "10"}}, {"k": ["5"]})
    with pytest.raises(UnsupportedPolicyError):
        condition_holds({"ForEachValue:StringEquals": {"k": "a"}}, {"k": ["a"]})
    with pytest.raises(UnsupportedPolicyError):
        evaluate(
            Request(ROLE, "s3:GetObject", "arn:aws:s3:::b/k"),
            [allow({"Effect": "Allow", "NotAction": "s3:*"})],
        )


# ---------------------------------------------------------------- template.yaml on written-out requests


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(TEMPLATE)


def example_names(template: Template) -> StackNames:
    """Names as a stack called streamscore-test would have them (no deploy needed)."""
    stack = "streamscore-test"
    physical = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::SQS::Queue":
            physical[logical_id] = (
                f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{stack}-{logical_id}"
            )
        elif resource["Type"] == "AWS::KMS::Key":
            physical[logical_id] = "1234abcd-12ab-34cd-56ef-1234567890ab"
        elif resource["Type"] == "AWS::Events::EventBus":
            physical[logical_id] = stack
        else:
            physical[logical_id] = f"{stack}-{logical_id.lower()}"
    return StackNames(
        stack_name=stack,
        region=REGION,
        account=ACCOUNT,
        parameters=parameter_values(template),
        physical_ids=physical,
        types={logical_id: r["Type"] for logical_id, r in template["Resources"].items()},
        conditions=template.get("Conditions", {}),
    )


@pytest.fixture(scope="module")
def stack(template: Template) -> StackPolicies:
    return StackPolicies(template, example_names(template))


def test_the_retraining_runner_reaches_only_what_a_retrain_needs(stack: StackPolicies) -> None:
    """The build: the log, the registry's objects and pointer, its reports and the labels;
    not the pipeline's state, other objects or other MonitoringTable items. The start
    function: its own state machine only."""
    build = stack.role_arn("RetrainProject")
    start = stack.role_arn("RetrainStartFunction")
    bucket = stack.arn("ArtifactsBucket")
    monitoring, labels = stack.arn("MonitoringTable"), stack.arn("LabelsTable")
    tls = {"aws:SecureTransport": "true"}

    def item(action: str, pk: str) -> Request:
        return Request(build, action, monitoring, tls | {"dynamodb:LeadingKeys": pk})

    allowed = [
        Request(
            build, "s3:ListBucket", bucket, tls | {"s3:prefix": "feature-log/date=2026-03-04/"}
        ),
        Request(build, "s3:GetObject", f"{bucket}/feature-log/date=2026-03-04/1-a.jsonl.gz", tls),
        Request(build, "s3:PutObject", f"{bucket}/models/v2/model.onnx", tls),
        Request(build, "s3:PutObject", f"{bucket}/reports/retrain/v2/report.json", tls),
        Request(build, "dynamodb:Scan", labels, tls),
        item("dynamodb:PutItem", "MODEL"),
        item("dynamodb:GetItem", "RETRAIN#v1"),
        Request(build, "lambda:GetLayerVersion", stack.names.ref("TrainingCodeLayer"), tls),
        Request(
            start, "states:StartExecution", stack.names.ref("RetrainingRunnerStateMachine"), tls
        ),
    ]
    refused = [
        Request(build, "s3:ListBucket", bucket, tls | {"s3:prefix": "reports/"}),
        Request(build, "s3:GetObject", f"{bucket}/reports/2026/03/04/r.json", tls),
        Request(build, "s3:PutObject", f"{bucket}/feature-log/date=2026-03-04/x.jsonl.gz", tls),
        Request(build, "dynamodb:Scan", monitoring, tls),
        Request(build, "dynamodb:Scan", stack.arn("FeaturesTable"), tls),
        item("dynamodb:PutItem", "RETRAIN#v1"),  # the cooldown is the drift check's
        item("dynamodb:PutItem", "COUNT#PRED#v1#2026-03-04T00#s#0"),
        item("dynamodb:UpdateItem", "MODEL"),
        Request(build, "dynamodb:PutItem", labels, tls | {"dynamodb:LeadingKeys": "t-1"}),
        Request(
            start,
            "states:StartExecution",
            f"{stack.names.ref('RetrainingRunnerStateMachine')}x",
            tls,
        ),
        Request(
            start, "states:StopExecution", stack.names.ref("RetrainingRunnerStateMachine"), tls
        ),
    ]
    assert [str(r) for r in allowed if not stack.evaluate(r).allowed] == []
    assert [str(r) for r in refused if stack.evaluate(r).allowed] == []


def report_put(
    stack: StackPolicies, object_key: str = "reports/2026/03/04/report.json", **headers: str
) -> Request:
    """The drift check's PutObject of a report, over TLS, with these encryption headers."""
    context = {"aws:SecureTransport": "true"} | {
        {"sse": SSE, "key": SSE_KEY}[name]: value for name, value in headers.items()
    }
    bucket = stack.arn("ArtifactsBucket")
    return Request(
        stack.role_arn("DriftCheckFunction"), "s3:PutObject", f"{bucket}/{object_key}", context
    )


def test_the_bucket_policy_lets_a_put_without_encryption_headers_through(
    stack: StackPolicies,
) -> None:
    # Without headers the bucket default encrypts with the stack key (test below): the drift
    # check's upload is one of these.
    verdict = stack.evaluate(report_put(stack))

    assert verdict.allowed, verdict


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"sse": "aws:kms", "key": "STACK_KEY"}, True),
        ({"sse": "AES256"}, False),
        ({"sse": "aws:kms", "key": OTHER_KEY}, False),
        ({"sse": "aws:kms"}, False),  # S3 would use the AWS managed key aws/s3
        ({"sse": "aws:kms:dsse", "key": "STACK_KEY"}, False),
        ({"sse": "AES256", "key": "STACK_KEY"}, False),
        ({"key": OTHER_KEY}, False),
    ],
)
def test_the_bucket_policy_refuses_any_other_encryption(
    stack: StackPolicies, headers: dict[str, str], allowed: bool
) -> None:
    # given
    key = stack.arn("EncryptionKey")
    named = {name: key if value == "STACK_KEY" else value for name, value in headers.items()}

    # when
    verdict = stack.evaluate(report_put(stack, **named))

    # then
    assert verdict.allowed is allowed, verdict
    if not allowed:
        assert verdict.decision is Decision.EXPLICIT_DENY  # by the bucket policy, for anyone


def test_the_bucket_policy_refuses_plain_http(stack: StackPolicies) -> None:
    # given
    put = report_put(stack).with_context({"aws:SecureTransport": "false"})

    # when
    verdict = stack.evaluate(put)

    # then
    assert verdict.decision is Decision.EXPLICIT_DENY
    assert verdict.because.endswith("DenyInsecureTransport")


def test_an_upload_without_headers_needs_generate_data_key_on_the_stack_key(
    stack: StackPolicies,
) -> None:
    (kms,) = stack.implied_kms(report_put(stack))

    assert (kms.action, kms.resource) == ("kms:GenerateDataKey", stack.arn("EncryptionKey"))
    assert stack.evaluate(kms).allowed
    # and the drift role could not have used another key
    other = stack.implied_kms(report_put(stack, sse="aws:kms", key=OTHER_KEY))
    assert [stack.evaluate(r).decision for r in other] == [Decision.IMPLICIT_DENY]


LEAST_PRIVILEGE = [
    ("ScoreFunction", "dynamodb:PutItem", "EntityStateTable", ""),
    ("ScoreFunction", "dynamodb:BatchWriteItem", "EntityStateTable", ""),
    ("ScoreFunction", "kinesis:PutRecords", "FeaturesStream", ""),
    ("ScoreFunction", "s3:PutObject", "ArtifactsBucket", "/reports/x.json"),
    ("PreprocessFunction", "events:PutEvents", "EventBus", ""),
    ("PreprocessFunction", "kinesis:PutRecords", "TransactionsStream", ""),
    ("PreprocessFunction", "dynamodb:PutItem", "PredictionsTable", ""),
    ("PreprocessFunction", "dynamodb:Query", "MonitoringTable", "/index/WindowIndex"),
    ("DriftCheckFunction", "dynamodb:PutItem", "PredictionsTable", ""),
    ("DriftCheckFunction", "dynamodb:Query", "MonitoringTable", ""),
    ("DriftCheckFunction", "dynamodb:DeleteItem", "MonitoringTable", ""),
    ("DriftCheckFunction", "s3:PutObject", "ArtifactsBucket", "/models/model.onnx"),
    ("DriftCheckFunction", "s3:GetObject", "ArtifactsBucket", "/reports/x.json"),
    ("DriftCheckFunction", "kinesis:PutRecords", "FeaturesStream", ""),
    ("DriftCheckFunction", "kms:Decrypt", "", OTHER_KEY),
    ("LabelsFunction", "dynamodb:PutItem", "PredictionsTable", ""),
    ("LabelsFunction", "dynamodb:UpdateItem", "LabelsTable", ""),
    ("LabelsFunction", "dynamodb:BatchWriteItem", "LabelsTable", ""),
    ("LabelsFunction", "kinesis:PutRecords", "LabelsStream", ""),
    ("LabelsFunction", "events:PutEvents", "EventBus", ""),
    ("ScoreFunction", "dynamodb:PutItem", "LabelsTable", ""),
    ("PreprocessFunction", "kinesis:GetRecords", "LabelsStream", ""),
    # the feature log writes only under feature-log/, reads only features and its stream
    ("FeatureLogFunction", "s3:PutObject", "ArtifactsBucket", "/models/x/model.onnx"),
    ("FeatureLogFunction", "s3:PutObject", "ArtifactsBucket", "/reports/x.json"),
    ("FeatureLogFunction", "s3:GetObject", "ArtifactsBucket", "/feature-log/x.jsonl.gz"),
    ("FeatureLogFunction", "dynamodb:BatchGetItem", "PredictionsTable", ""),
    ("FeatureLogFunction", "dynamodb:PutItem", "PredictionsTable", ""),
    ("FeatureLogFunction", "dynamodb:BatchWriteItem", "FeaturesTable", ""),
    ("FeatureLogFunction", "dynamodb:GetRecords", "LabelsTable", "/stream/x"),
    ("PreprocessFunction", "s3:PutObject", "ArtifactsBucket", "/feature-log/x.jsonl.gz"),
]


@pytest.mark.parametrize(("function", "action", "resource", "suffix"), LEAST_PRIVILEGE)
def test_each_role_is_refused_what_its_function_does_not_do(
    stack: StackPolicies, function: str, action: str, resource: str, suffix: str
) -> None:
    # given
    arn = stack.arn(resource) + suffix if resource else suffix
    request = Request(stack.role_arn(function), action, arn, {"aws:SecureTransport": "true"})

    # when
    # the role alone: a bucket policy's deny must not hide a grant the role should not have
    verdict = evaluate(request, stack.identity(request.principal))

    # then
    assert verdict.decision is Decision.IMPLICIT_DENY, verdict


# ---------------------------------------------------------------- the requests of an embedded run

TRANSACTIONS = 300
# TRIM_HORIZON: records put before the emulator starts are read. Thresholds of 0 make the drift
# check find drift (and ask for retraining); low score thresholds make score alert.
RUN_PARAMETERS = {
    "PreprocessStartingPosition": "TRIM_HORIZON",
    "ScoreStartingPosition": "TRIM_HORIZON",
    "PreprocessMaximumBatchingWindowInSeconds": "0",
    "ScoreMaximumBatchingWindowInSeconds": "0",
    "MinSampleSize": "20",
    "PsiWarnThreshold": "0",
    "PsiDriftThreshold": "0",
    "ReviewThreshold": "0.01",
    "DeclineThreshold": "0.05",
}
# What each function must have done for the run to say anything about its role.
EXPECTED_ACTIONS = {
    "PreprocessFunction": {
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:PutItem",  # a quarantine item, in a transaction
        "dynamodb:UpdateItem",  # its count
        "kinesis:PutRecords",
    },
    "ScoreFunction": {
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "events:PutEvents",
    },
    "DriftCheckFunction": {
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "s3:PutObject",
        "events:PutEvents",
    },
    "LabelsFunction": {
        "dynamodb:BatchGetItem",  # labels and predictions
        "dynamodb:PutItem",  # a label, and a quarantine item, in transactions
        "dynamodb:UpdateItem",  # their counts
    },
    "FeatureLogFunction": {
        "dynamodb:BatchGetItem",  # the feature records
        "s3:PutObject",  # the log's objects (If-None-Match)
    },
    "RetrainStartFunction": {"states:ListExecutions", "states:StartExecution"},
    # the retraining build (RetrainProject's role): `python -m models retrain` and the
    # publication of a passing candidate as the challenger
    "RetrainProject": {
        "s3:ListBucket",  # the feature log's objects of each day
        "s3:GetObject",  # each of them, and the registry's manifests
        "s3:PutObject",  # the report, the candidate's files
        "dynamodb:Scan",  # LabelsTable
        "dynamodb:GetItem",  # the pointer
        "dynamodb:PutItem",  # the pointer naming the challenger
    },
}


def _async_invocations(embedded: EmbeddedStack) -> list[dict[str, Any]]:
    """What moto's EventBridge left for the rules' Lambda targets (embedded/moto_process.py)."""
    sqs = embedded.client("sqs")
    url = sqs.get_queue_url(QueueName=ASYNC_INVOCATIONS_QUEUE)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def _role_arn(embedded: EmbeddedStack, logical_id: str) -> str:
    name = embedded.deployed.resources[logical_id].physical_id
    account = next(iter(embedded.functions.values())).config.role.split(":")[4]
    return f"arn:aws:iam::{account}:role/{name}"


def _run_the_retraining_build(
    embedded: EmbeddedStack, recorder: RequestRecorder, role: str, end: Any, out: Path
) -> None:
    """The build's command on the run's log and labels (too few to train on: it reports), then
    the publication a passing candidate gets (the shipped model's files stand for one)."""
    outputs = embedded.deployed.outputs

    def client(service: str) -> Any:
        made = embedded.client(service)
        recorder.attach(made, "RetrainProject", role)
        return made

    names = {
        "bucket": outputs["ArtifactsBucketName"],
        "table": outputs["MonitoringTableName"],
        "labels": outputs["LabelsTableName"],
    }
    parser = argparse.ArgumentParser()
    add_retrain_arguments(parser)
    cutoff = (end + timedelta(days=40)).isoformat()
    args = parser.parse_args(
        ["--out", str(out / "retrain"), "--cutoff", cutoff, "--ignore-trigger"]
    )
    status, report = run_retrain(args, client, names, {}, lambda _: None)
    assert (status, report["verdict"]) == (0, "insufficient_data"), report
    candidate = out / "candidate"
    shutil.copytree(ARTIFACTS, candidate)
    registry = Registry.of(client("s3"), client("dynamodb"), names["bucket"], names["table"])
    published = publish_candidate(registry, candidate, "promote", dry_run=False, now=end)
    assert published["published"] is True


def _labels_of(embedded: EmbeddedStack, deployed: Any) -> list[dict[str, Any]]:
    """Labels of some scored transactions (one replaced later), one never scored, one bad."""
    scanned = embedded.client("dynamodb").scan(
        TableName=deployed.output("PredictionsTableName"), Limit=6
    )["Items"]
    ids = [item["transaction_id"]["S"] for item in scanned]
    assert ids
    labelled = [
        {
            "transaction_id": t,
            "label": "fraud",
            "labelled_at": "2026-03-20T10:00:00+00:00",
            "source": "chargeback",
        }
        for t in ids
    ]
    return [
        *labelled,
        labelled[0]
        | {"label": "legit", "labelled_at": "2026-03-25T10:00:00+00:00", "source": "reversal"},
        labelled[0] | {"transaction_id": "never-scored"},
        {"transaction_id": ids[0], "label": "perhaps"},
    ]


@dataclass
class RecordedRun:
    policies: StackPolicies
    outputs: dict[str, str]
    calls: list[RecordedCall]
    roles: dict[str, str]  # function logical id -> role ARN
    drift_check: Any  # the drift check's response


@pytest.fixture(scope="module")
def recorded(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordedRun]:
    log = tmp_path_factory.mktemp("policies") / "functions.log"
    with (
        log.open("w", encoding="utf-8") as out,
        FUNCTION_OUTPUT.to(out),
        MotoServer() as server,
        EmbeddedStack(parameters=RUN_PARAMETERS, server=server) as embedded,
    ):
        deployed = embedded.deployed
        recorder = RequestRecorder(server.endpoint)
        for container in embedded.functions.values():
            with recorder.capturing(container.config.name, container.config.role):
                assert container.load() is None, log.read_text()
        traffic = simulated_traffic(TRANSACTIONS, "baseline", invalid_rate=0.05, seed=7)
        Producer(embedded.client("kinesis"), deployed.output("TransactionsStreamName")).send(
            traffic
        )
        emulator = embedded.emulator(idle_poll_s=0.05)
        emulator.start()
        try:
            assert emulator.wait_until_drained(120), emulator.crashed()
            labels = _labels_of(embedded, deployed)
            embedded.client("kinesis").put_records(
                StreamName=deployed.output("LabelsStreamName"),
                Records=[
                    {"Data": json.dumps(x).encode(), "PartitionKey": x["transaction_id"]}
                    for x in labels
                ],
            )
            assert emulator.wait_until_drained(120), emulator.crashed()
        finally:
            emulator.stop()
        window = traffic.checked_window()
        assert window is not None
        event = {"window": {"start": window[0].isoformat(), "end": window[1].isoformat()}}
        drift = embedded.function("DriftCheckFunction").invoke(event)
        assert drift.error is None, drift.error
        # the quality schedule's run: its report under reports/quality/ (nothing mature yet)
        quality = embedded.function("DriftCheckFunction").invoke({"check": "quality"})
        assert quality.error is None, quality.error
        # the retraining runner: the RetrainingRequested the drift check sent, as EventBridge
        # invokes RetrainStartFunction with it; then the build's command and its publication
        (delivery,) = _async_invocations(embedded)
        started = embedded.function("RetrainStartFunction").invoke(delivery["event"])
        assert started.error is None, started.error
        retrain_role = _role_arn(embedded, "RetrainProjectRole")
        _run_the_retraining_build(embedded, recorder, retrain_role, window[1], log.parent)
        account = next(iter(embedded.functions.values())).config.role.split(":")[4]
        physical = {
            r.logical_id: r.physical_id for r in deployed.resources.values() if r.physical_id
        }
        physical["EventBus"] = deployed.output(
            "EventBusName"
        )  # moto lists the bus without its name
        # a layer's Ref is its version ARN (moto gives none); no local request names it: the
        # build's GetLayerVersion happens only in CodeBuild
        physical["TrainingCodeLayer"] = (
            f"arn:aws:lambda:{deployed.region}:{account}:layer:{deployed.name}-retrain:1"
        )
        names = StackNames(
            stack_name=deployed.name,
            region=deployed.region,
            account=account,
            parameters=parameter_values(template, embedded.parameters),  # with the local defaults
            physical_ids=physical,
            types={logical_id: r["Type"] for logical_id, r in template["Resources"].items()},
            conditions=template.get("Conditions", {}),
        )
        yield RecordedRun(
            policies=StackPolicies(template, names),
            outputs=dict(deployed.outputs),
            calls=list(recorder.calls),
            roles={logical_id: c.config.role for logical_id, c in embedded.functions.items()}
            | {"RetrainProject": retrain_role},
            drift_check=drift.response,
        )


def requests_of(run: RecordedRun) -> list[Request]:
    return [request for call in run.calls for request in authorization_requests(call)]


@pytest.mark.slow
def test_the_policies_name_the_deployed_stacks_resources(recorded: RecordedRun) -> None:
    stack = recorded.policies

    assert stack.arn("EncryptionKey") == recorded.outputs["EncryptionKeyArn"]
    assert stack.arn("EventBus") == recorded.outputs["EventBusArn"]
    assert stack.arn("TransactionsStream") == recorded.outputs["TransactionsStreamArn"]
    assert stack.arn("FailureQueue") == recorded.outputs["FailureQueueArn"]
    assert {stack.role_arn(f) for f in FUNCTIONS} | {stack.role_arn("RetrainProject")} == set(
        recorded.roles.values()
    )


@pytest.mark.slow
def test_the_run_made_every_kind_of_request_the_functions_make(recorded: RecordedRun) -> None:
    made: dict[str, set[str]] = {}
    for request in requests_of(recorded):
        made.setdefault(request.principal, set()).add(request.action)

    for function, expected in EXPECTED_ACTIONS.items():
        assert expected <= made.get(recorded.roles[function], set()), function
    assert recorded.drift_check["retraining"] == "sent"  # RetrainingRequested went out
    assert recorded.drift_check["report_uri"].startswith("s3://")


@pytest.mark.slow
def test_every_request_the_functions_make_is_allowed(recorded: RecordedRun) -> None:
    # given
    requests = requests_of(recorded)

    # when
    refused = [
        f"{request}: {verdict.decision} ({verdict.because})"
        for request in requests
        if not (verdict := recorded.policies.evaluate(request)).allowed
    ]

    # then
    assert requests
    assert all(r.context.get("aws:SecureTransport") == "true" for r in requests)
    assert not refused, "\n".join(sorted(set(refused)))


@pytest.mark.slow
def test_the_kms_requests_behind_their_writes_are_allowed(recorded: RecordedRun) -> None:
    # given
    stack = recorded.policies
    kms = [implied for request in requests_of(recorded) for implied in stack.implied_kms(request)]

    # when
    refused = [
        f"{r}: {v.decision} ({v.because})" for r in kms if not (v := stack.evaluate(r)).allowed
    ]

    # then
    # the report and its picture, and the feature records preprocess forwards
    assert {r.origin.split(" ")[1] for r in kms} == {"s3.PutObject", "kinesis.PutRecords"}
    assert {r.resource for r in kms} == {stack.arn("EncryptionKey")}
    assert not refused, "\n".join(sorted(set(refused)))


@pytest.mark.slow
def test_the_report_upload_sends_no_encryption_headers(recorded: RecordedRun) -> None:
    # What the bucket policy now lets through, and what the old one refused.
    uploads = [c for c in recorded.calls if c.name == "s3.PutObject"]

    # the drift report and its picture, the feature log's objects, and the retraining build's
    # report and published candidate (its model, card, baseline and manifest)
    assert {c.params["Key"].rsplit(".", 1)[-1] for c in uploads} == {"json", "png", "gz", "onnx"}
    for call in uploads:
        assert not [h for h in call.headers if h.startswith("x-amz-server-side-encryption")]
        (request,) = authorization_requests(call)
        assert recorded.policies.evaluate(request).allowed


def test_recorded_calls_map_to_the_requests_iam_authorizes() -> None:
    # given
    # TransactWriteItems is authorized as its parts; Query on an index as the index.
    role = f"arn:aws:iam::{ACCOUNT}:role/r"
    call = RecordedCall(
        function="f",
        role=role,
        service="dynamodb",
        operation="TransactWriteItems",
        params={
            "TransactItems": [{"Put": {"TableName": "facts"}}, {"Update": {"TableName": "counts"}}]
        },
        headers={},
        url="https://dynamodb.us-east-1.amazonaws.com/",
        region=REGION,
        secure_transport=True,
    )
    put = RecordedCall(
        function="f",
        role=role,
        service="s3",
        operation="PutObject",
        params={"Bucket": "b", "Key": "reports/a.json"},
        headers={"x-amz-server-side-encryption": "AES256", "content-type": "application/json"},
        url="http://localhost/b/reports/a.json",
        region=REGION,
        secure_transport=False,
    )

    # when
    parts = authorization_requests(call)
    (upload,) = authorization_requests(put)

    # then
    assert [(r.action, r.resource) for r in parts] == [
        ("dynamodb:PutItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/facts"),
        ("dynamodb:UpdateItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/counts"),
    ]
    assert (upload.action, upload.resource) == ("s3:PutObject", "arn:aws:s3:::b/reports/a.json")
    assert upload.context[SSE] == "AES256"
    assert upload.context["aws:SecureTransport"] == "false"
