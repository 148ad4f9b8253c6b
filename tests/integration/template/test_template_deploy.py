"""template.yaml deploys into moto, and the definitions the other tests build their stacks from match it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from embedded.template import (
    LOCAL_CODE_BUCKET,
    LOCAL_CODE_KEY,
    stream_definitions,
    table_definitions,
    transform_template,
)
from support.template_checks import (
    ESM_SETTINGS,
    FUNCTION_ENV,
    GLOBAL_ENV,
    MAPPING_OVERRIDES,
    MAPPINGS,
    REGION,
    RETRAINING_TARGETS,
    TABLE_KEYS,
)

# ---------------------------------------------------------------- moto: the template's own stack


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def deploy(template: dict[str, Any], stack_name: str, overrides: dict[str, str]) -> dict[str, str]:
    s3 = boto3.client("s3", region_name=REGION)
    if LOCAL_CODE_BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=LOCAL_CODE_BUCKET)
        s3.put_object(Bucket=LOCAL_CODE_BUCKET, Key=LOCAL_CODE_KEY, Body=b"placeholder")
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(transform_template(template, overrides, region=REGION)),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in overrides.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}


@pytest.mark.slow
@pytest.mark.usefixtures("aws")
def test_stack_deploys_into_moto_with_every_resource(template: dict[str, Any]) -> None:
    # when
    outputs = deploy(template, "streamscore", MAPPING_OVERRIDES)

    # then: every output, tables with the template's keys, streams, queues, bus, rules
    assert set(outputs) == set(template["Outputs"])
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for logical_id, kwargs in table_definitions(template).items():
        table = dynamodb.describe_table(TableName=outputs[f"{logical_id}Name"])["Table"]
        assert table["KeySchema"] == kwargs["KeySchema"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    monitoring = dynamodb.describe_table(TableName=outputs["MonitoringTableName"])["Table"]
    assert [i["IndexName"] for i in monitoring["GlobalSecondaryIndexes"]] == ["WindowIndex"]

    kinesis = boto3.client("kinesis", region_name=REGION)
    for stream in ("TransactionsStream", "FeaturesStream"):
        summary = kinesis.describe_stream_summary(StreamName=outputs[f"{stream}Name"])
        assert summary["StreamDescriptionSummary"]["StreamARN"] == outputs[f"{stream}Arn"]

    sqs = boto3.client("sqs", region_name=REGION)
    for queue in ("FailureQueue", "RetrainingQueue", "AlertsQueue"):
        attributes = sqs.get_queue_attributes(
            QueueUrl=outputs[f"{queue}Url"], AttributeNames=["All"]
        )
        assert attributes["Attributes"]["QueueArn"] == outputs[f"{queue}Arn"]
        assert attributes["Attributes"]["MessageRetentionPeriod"] == "1209600"
        assert attributes["Attributes"]["KmsMasterKeyId"] in outputs["EncryptionKeyArn"]

    events = boto3.client("events", region_name=REGION)
    bus = outputs["EventBusName"]
    assert events.describe_event_bus(Name=bus)["Arn"] == outputs["EventBusArn"]
    rules: dict[str, list[dict[str, Any]]] = {}
    for rule in events.list_rules(EventBusName=bus)["Rules"]:
        rules.setdefault(json.loads(rule["EventPattern"])["detail-type"][0], []).append(rule)
    assert {d: [json.loads(r["EventPattern"]) for r in rs] for d, rs in rules.items()} == {
        "RetrainingRequested": [
            {"source": ["streamscore.monitoring"], "detail-type": ["RetrainingRequested"]}
        ]
        * 2,  # RetrainingQueue, and the retraining runner's start function
        "HighRiskTransaction": [
            {"source": ["streamscore.scoring"], "detail-type": ["HighRiskTransaction"]}
        ],
    }
    expected_targets = {
        "RetrainingRequested": {
            outputs["RetrainingQueueArn"],
            outputs["RetrainStartFunctionArn"],
        },
        "HighRiskTransaction": {outputs["AlertsQueueArn"]},
    }
    for detail_type, targets in expected_targets.items():
        found = set()
        for rule in rules[detail_type]:
            (target,) = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
            found.add(target["Arn"])
            dead_letter = target["DeadLetterConfig"]["Arn"]
            assert (
                dead_letter.rsplit(":", 1)[-1]
                == outputs["EventsDeadLetterQueueUrl"].rsplit("/")[-1]
            )
            # the alarm's dimension, as the template derives it from the ARN, names the rule
            assert rule["Arn"].split("/")[2] == rule["Name"]
        assert found == targets
    schedules: dict[str, list[dict[str, Any]]] = {}
    for rule in events.list_rules(EventBusName="default")["Rules"]:
        schedules.setdefault(rule["ScheduleExpression"], []).append(rule)
    # the drift check hourly; the quality and the promotion check daily
    assert {e: len(rs) for e, rs in schedules.items()} == {"rate(1 hour)": 1, "rate(1 day)": 2}
    inputs = []
    for schedule in (r for rs in schedules.values() for r in rs):
        (target,) = events.list_targets_by_rule(Rule=schedule["Name"])["Targets"]
        assert target["Arn"] == outputs["DriftCheckFunctionArn"]
        inputs.append(json.loads(target.get("Input", "{}")))
    assert sorted(i.get("check", "drift") for i in inputs) == ["drift", "promotion", "quality"]

    # the runner: moto keeps DefinitionSubstitutions unapplied (CloudFormation applies them),
    # so the definition still says which substitution names the project
    machine = boto3.client("stepfunctions", region_name=REGION).describe_state_machine(
        stateMachineArn=outputs["RetrainingRunnerStateMachineArn"]
    )
    definition = json.loads(machine["definition"])
    assert definition["States"]["Retrain"]["Parameters"]["ProjectName"] == "${RetrainProjectName}"
    runner = template["Resources"]["RetrainingRunnerStateMachine"]["Properties"]
    project = template["Resources"]["RetrainProject"]["Properties"]
    assert runner["DefinitionSubstitutions"]["RetrainProjectName"] == project["Name"]
    assert outputs["RetrainProjectName"] == "streamscore-retrain"

    logs = boto3.client("logs", region_name=REGION)
    log_groups = {g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]}
    assert log_groups == {
        f"/aws/lambda/streamscore-{kind}"
        for kind in ("preprocess", "score", "drift-check", "labels", "feature-log", "retrain-start")
    } | {"/aws/codebuild/streamscore-retrain"}


@pytest.mark.slow
@pytest.mark.usefixtures("aws")
def test_deployed_mappings_and_functions_carry_the_parameters(template: dict[str, Any]) -> None:
    outputs = deploy(template, "streamscore", MAPPING_OVERRIDES)
    lambda_ = boto3.client("lambda", region_name=REGION)

    for name, (prefix, stream, function) in MAPPINGS.items():
        mapping: dict[str, Any] = dict(lambda_.get_event_source_mapping(UUID=outputs[f"{name}Id"]))
        assert mapping["EventSourceArn"] == outputs[f"{stream}Arn"]
        assert mapping["FunctionArn"] == outputs[f"{function}Arn"]
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["DestinationConfig"] == {
            "OnFailure": {"Destination": outputs["FailureQueueArn"]}
        }
        for setting in ESM_SETTINGS:
            expected = MAPPING_OVERRIDES[prefix + setting]
            assert str(mapping[setting]).lower() == expected.lower(), (name, setting)

    for function, names in FUNCTION_ENV.items():
        configuration = lambda_.get_function_configuration(FunctionName=outputs[f"{function}Name"])
        env = configuration["Environment"]["Variables"]
        assert set(env) == GLOBAL_ENV | names
    score_env = lambda_.get_function_configuration(FunctionName=outputs["ScoreFunctionName"])[
        "Environment"
    ]["Variables"]
    assert score_env["PREDICTIONS_TABLE"] == outputs["PredictionsTableName"]
    assert score_env["EVENT_BUS_NAME"] == outputs["EventBusName"]
    assert score_env["MODEL_DIR"] == "/opt/model"


@pytest.mark.slow
@pytest.mark.usefixtures("aws")
def test_retraining_pipelines_exist_only_when_their_arns_are_given(
    template: dict[str, Any],
) -> None:
    # when
    deploy(template, "without", {})
    deploy(template, "with", RETRAINING_TARGETS)

    # then
    events = boto3.client("events", region_name=REGION)
    cloudformation = boto3.client("cloudformation", region_name=REGION)

    def targets(bus: str) -> dict[str, dict[str, Any]]:
        return {
            target["Id"]: dict(target)
            for rule in events.list_rules(EventBusName=bus)["Rules"]
            for target in events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)[
                "Targets"
            ]
        }

    def logical_ids(stack: str) -> set[str]:
        summaries = cloudformation.list_stack_resources(StackName=stack)["StackResourceSummaries"]
        return {r["LogicalResourceId"] for r in summaries}

    # the in-stack runner's rule (SAM names its target) is there in both
    runner_target = "RetrainStartFunctionRetrainingRequestedLambdaTarget"
    assert set(targets("without")) == {"RetrainingQueue", "AlertsQueue", runner_target}
    with_targets = targets("with")
    assert set(with_targets) == {
        runner_target,
        "RetrainingQueue",
        "RetrainingStateMachine",
        "RetrainingPipeline",
        "AlertsQueue",
    }
    assert (
        with_targets["RetrainingStateMachine"]["Arn"]
        == RETRAINING_TARGETS["RetrainingStateMachineArn"]
    )
    assert (
        with_targets["RetrainingPipeline"]["Arn"]
        == RETRAINING_TARGETS["RetrainingSageMakerPipelineArn"]
    )
    roles = {"RetrainingStateMachineTargetRole", "RetrainingPipelineTargetRole"}
    assert roles <= logical_ids("with")
    assert not roles & logical_ids("without")


# ---------------------------------------------------------------- definitions for other tests


@pytest.mark.usefixtures("aws")
def test_table_definitions_create_the_stack_tables(template: dict[str, Any]) -> None:
    dynamodb = boto3.client("dynamodb", region_name=REGION)

    for logical_id, kwargs in table_definitions(template).items():
        dynamodb.create_table(TableName=logical_id, **kwargs)

    described = {
        name: dynamodb.describe_table(TableName=name)["Table"]
        for name in dynamodb.list_tables()["TableNames"]
    }
    keys = {
        name: [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]]
        for name, table in described.items()
    }
    assert keys == TABLE_KEYS
    (index,) = described["MonitoringTable"]["GlobalSecondaryIndexes"]
    assert (index["IndexName"], [k["AttributeName"] for k in index["KeySchema"]]) == (
        "WindowIndex",
        ["window_key", "recorded_at"],
    )


@pytest.mark.usefixtures("aws")
def test_stream_definitions_follow_the_stream_mode(template: dict[str, Any]) -> None:
    # given
    kinesis = boto3.client("kinesis", region_name=REGION)

    # when
    on_demand = stream_definitions(template)
    provisioned = stream_definitions(template, {"StreamMode": "PROVISIONED", "ShardCount": "3"})
    for logical_id, kwargs in provisioned.items():
        kinesis.create_stream(StreamName=logical_id, **kwargs)

    # then
    assert on_demand == {
        "TransactionsStream": {"StreamModeDetails": {"StreamMode": "ON_DEMAND"}},
        "FeaturesStream": {"StreamModeDetails": {"StreamMode": "ON_DEMAND"}},
        "LabelsStream": {"StreamModeDetails": {"StreamMode": "ON_DEMAND"}},
    }
    for logical_id in provisioned:
        shards = kinesis.list_shards(StreamName=logical_id)["Shards"]
        assert len(shards) == 3
