"""What only a real deploy would show: name lengths at the longest stack name, rule targets."""

from __future__ import annotations

import json
import re
from typing import Any

from support.template_checks import (
    resources,
)

# ---------------------------------------------------------------- what only a real deploy would show

# The longest names the services take, for each name property the template sets (CloudFormation
# User Guide, each resource's property; Lambda: "The length constraint applies only to the full
# ARN. If you specify only the function name, it is limited to 64 characters in length").
NAME_LIMITS = {
    ("AWS::Serverless::Function", "FunctionName"): 64,
    ("AWS::Logs::LogGroup", "LogGroupName"): 512,
    ("AWS::Events::EventBus", "Name"): 256,
    ("AWS::Events::Rule", "Name"): 64,
    ("AWS::KMS::Alias", "AliasName"): 256,
    ("AWS::CloudWatch::Alarm", "AlarmName"): 255,
    ("AWS::CloudWatch::Dashboard", "DashboardName"): 255,
    ("AWS::SQS::Queue", "QueueName"): 80,
    ("AWS::DynamoDB::Table", "TableName"): 255,
    ("AWS::Kinesis::Stream", "Name"): 128,
    ("AWS::IAM::Role", "RoleName"): 64,
    ("AWS::S3::Bucket", "BucketName"): 63,
    ("AWS::Serverless::LayerVersion", "LayerName"): 140,
    # CodeBuild API Reference, CreateProject: name "Length Constraints: Minimum length of 2.
    # Maximum length of 255."
    ("AWS::CodeBuild::Project", "Name"): 255,
}
LONGEST_STACK_NAME = "s" * 128  # CloudFormation: a stack name is up to 128 characters


def _substituted(value: Any) -> str | None:
    """A name property as deployed under the longest stack name (None when not a plain Fn::Sub)."""
    if isinstance(value, str):
        return value
    text = value.get("Fn::Sub") if isinstance(value, dict) else None
    if not isinstance(text, str):
        return None
    text = text.replace("${AWS::StackName}", LONGEST_STACK_NAME)
    return re.sub(r"\$\{[^}]+\}", "x" * 20, text)  # any other reference: 20 characters


def test_every_name_fits_its_service_under_the_longest_stack_name(template: dict[str, Any]) -> None:
    too_long, unknown = [], []
    for logical_id, resource in template["Resources"].items():
        for prop, value in resource.get("Properties", {}).items():
            if not prop.endswith("Name") or not isinstance(value, dict | str):
                continue
            if "${AWS::StackName}" not in json.dumps(value):
                continue
            limit = NAME_LIMITS.get((resource["Type"], prop))
            if limit is None:
                unknown.append(f"{logical_id}.{prop}")
                continue
            name = _substituted(value)
            if name is not None and len(name) > limit:
                too_long.append(f"{logical_id}.{prop}: {len(name)} > {limit}")

    assert unknown == [], "add the service's limit to NAME_LIMITS"
    assert too_long == []


def test_the_key_lets_eventbridge_deliver_to_the_encrypted_queues_as_the_guides_say(
    template: dict[str, Any],
) -> None:
    statements = template["Resources"]["EncryptionKey"]["Properties"]["KeyPolicy"]["Statement"]
    (events,) = [s for s in statements if s["Principal"] == {"Service": "events.amazonaws.com"}]

    # the statement of the SQS and EventBridge guides: no condition that KMS may not be given
    assert sorted(events["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert "Condition" not in events
    assert events["Effect"] == "Allow"


def _rule_targets(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every EventBridge rule target: the template's rules' and the SAM schedule events'."""
    targets = {
        f"{rule}/{target['Id']}": target
        for rule, resource in resources(template, "AWS::Events::Rule").items()
        for target in resource["Properties"]["Targets"]
    }
    for name, function in resources(template, "AWS::Serverless::Function").items():
        for event_name, event in function["Properties"].get("Events", {}).items():
            if event["Type"] in ("Schedule", "EventBridgeRule"):
                targets[f"{name}{event_name}"] = event["Properties"]
    return targets


def test_every_rule_target_retries_then_keeps_what_failed_in_an_encrypted_queue(
    template: dict[str, Any],
) -> None:
    targets = _rule_targets(template)
    queues = resources(template, "AWS::SQS::Queue")
    (policy,) = [
        p["Properties"]
        for p in resources(template, "AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": "EventsDeadLetterQueue"}]
    ]
    (statement,) = policy["PolicyDocument"]["Statement"]
    allowed = json.dumps(statement["Condition"]["ArnEquals"]["aws:SourceArn"])

    # retraining queue, state machine, pipeline, the runner's start function; alerts queue,
    # topic; the three schedules
    assert len(targets) == 9
    for name, target in targets.items():
        assert target["DeadLetterConfig"] == {
            "Arn": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
        }
        assert target["RetryPolicy"] == {
            "MaximumRetryAttempts": 185,
            "MaximumEventAgeInSeconds": 86400,
        }, name
        rule = name.split("/")[0]
        assert json.dumps({"Fn::GetAtt": [rule, "Arn"]}) in allowed, name
    assert queues["EventsDeadLetterQueue"]["Properties"]["KmsMasterKeyId"] == {
        "Ref": "EncryptionKey"
    }
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"


def test_high_risk_transactions_reach_the_alerts_queue_and_the_optional_topic(
    template: dict[str, Any],
) -> None:
    rules = resources(template, "AWS::Events::Rule")
    alerting = {
        name: rule
        for name, rule in rules.items()
        if rule["Properties"]["EventPattern"]["detail-type"] == ["HighRiskTransaction"]
    }

    assert set(alerting) == {"HighRiskTransactionRule", "HighRiskTransactionTopicRule"}
    assert alerting["HighRiskTransactionRule"]["Properties"]["EventPattern"]["source"] == [
        "streamscore.scoring"
    ]
    assert "Condition" not in alerting["HighRiskTransactionRule"]
    assert alerting["HighRiskTransactionTopicRule"]["Condition"] == "HasAlertTopic"
    (queue_target,) = alerting["HighRiskTransactionRule"]["Properties"]["Targets"]
    (topic_target,) = alerting["HighRiskTransactionTopicRule"]["Properties"]["Targets"]
    assert queue_target["Arn"] == {"Fn::GetAtt": ["AlertsQueue", "Arn"]}
    assert topic_target["Arn"] == {"Ref": "AlertTopicArn"}
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"][0]
        for p in resources(template, "AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": "AlertsQueue"}]
    ]
    assert policy["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["HighRiskTransactionRule", "Arn"]}}
    }


def test_mappings_start_from_the_oldest_record_and_deliver_records_of_any_age(
    template: dict[str, Any],
) -> None:
    parameters = template["Parameters"]
    for stage in ("Preprocess", "Score"):
        assert parameters[f"{stage}StartingPosition"]["Default"] == "TRIM_HORIZON"
        assert parameters[f"{stage}MaximumRecordAgeInSeconds"]["Default"] == "-1"
    mappings = resources(template, "AWS::Lambda::EventSourceMapping")
    for fixed in ("LabelsEventSourceMapping", "FeatureLogEventSourceMapping"):
        properties = mappings.pop(fixed)["Properties"]
        assert (properties["StartingPosition"], properties["MaximumRecordAgeInSeconds"]) == (
            "TRIM_HORIZON",
            -1,
        )
        assert "StartingPositionTimestamp" not in properties
    for name, mapping in mappings.items():
        stage = name.removesuffix("EventSourceMapping")
        assert mapping["Properties"]["StartingPositionTimestamp"] == {
            "Fn::If": [
                f"{stage}StartsAtTimestamp",
                {"Ref": f"{stage}StartingPositionTimestamp"},
                {"Ref": "AWS::NoValue"},
            ]
        }


def test_deleting_the_stack_keeps_the_artifacts_bucket_and_its_key(
    template: dict[str, Any],
) -> None:
    for name in ("ArtifactsBucket", "EncryptionKey"):
        resource = template["Resources"][name]
        assert resource["DeletionPolicy"] == "Retain", name
        assert resource["UpdateReplacePolicy"] == "Retain", name
