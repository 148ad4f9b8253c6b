"""What template.yaml says: the names, keys, settings and least-privilege policies the handlers and docs rely on."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from embedded.buildspec import build_command, expand, project_variables, shell
from embedded.template import parameter_values, transform_template
from lifecycle.cli import parse_args
from support.template_checks import (
    ESM_SETTINGS,
    FUNCTION_ENV,
    GLOBAL_ENV,
    MAPPINGS,
    TABLE_KEYS,
    resources,
)

ROOT = Path(__file__).resolve().parents[3]

# ---------------------------------------------------------------- what the template says


def test_every_parameter_is_described(template: dict[str, Any]) -> None:
    undescribed = [
        name for name, spec in template["Parameters"].items() if not spec.get("Description")
    ]

    assert undescribed == []


def test_every_parameter_is_in_exactly_one_console_group(template: dict[str, Any]) -> None:
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [name for group in groups for name in group["Parameters"]]

    assert sorted(grouped) == sorted(template["Parameters"])


def test_functions_get_exactly_the_environment_their_settings_read(
    template: dict[str, Any],
) -> None:
    # given
    global_env = set(template["Globals"]["Function"]["Environment"]["Variables"])
    functions = resources(template, "AWS::Serverless::Function")

    # when
    env = {
        name: global_env | set(fn["Properties"]["Environment"]["Variables"])
        for name, fn in functions.items()
    }

    # then
    assert global_env == GLOBAL_ENV
    assert env == {name: GLOBAL_ENV | names for name, names in FUNCTION_ENV.items()}


def test_preprocess_never_gets_onnxruntime(template: dict[str, Any]) -> None:
    functions = resources(template, "AWS::Serverless::Function")

    assert "Layers" not in template["Globals"]["Function"]
    assert "Layers" not in functions["PreprocessFunction"]["Properties"]
    assert functions["ScoreFunction"]["Properties"]["Layers"] == [
        {"Ref": "OnnxRuntimeLayer"},
        {"Ref": "ModelLayer"},
    ]
    assert functions["DriftCheckFunction"]["Properties"]["Layers"] == [
        {"Ref": "ModelLayer"},
        {"Ref": "PlottingLayer"},
    ]


def iam_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, role in resources(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                # a statement under a condition: each branch that is one (not AWS::NoValue)
                branches = statement["Fn::If"][1:] if "Fn::If" in statement else [statement]
                for branch in branches:
                    if branch != {"Ref": "AWS::NoValue"}:
                        yield logical_id, branch


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_wildcard_actions_and_resource_star_only_for_xray(template: dict[str, Any]) -> None:
    offending = []
    for role, statement in iam_statements(template):
        actions = as_list(statement["Action"])
        if any(action == "*" or action.endswith(":*") for action in actions):
            offending.append((role, statement.get("Sid"), "wildcard action"))
        # X-Ray has no resource-level permissions for PutTraceSegments/PutTelemetryRecords.
        if "*" in as_list(statement["Resource"]) and not all(
            a.startswith("xray:") for a in actions
        ):
            offending.append((role, statement.get("Sid"), "Resource *"))

    assert offending == []


def test_functions_use_their_own_roles_not_sam_generated_ones(template: dict[str, Any]) -> None:
    # A SAM-generated role carries AWSLambdaBasicExecutionRole (logs on "*"); a SAM Kinesis
    # event adds AWSLambdaKinesisExecutionRole (Kinesis on "*").
    for name, function in resources(template, "AWS::Serverless::Function").items():
        properties = function["Properties"]
        assert properties["Role"] == {"Fn::GetAtt": [f"{name}Role", "Arn"]}
        assert "Policies" not in properties
        event_types = {event["Type"] for event in properties.get("Events", {}).values()}
        # schedules and bus rules add only the invoke permission, never a role's policy
        assert event_types <= {"Schedule", "EventBridgeRule"}, name


def test_each_function_logs_to_its_own_encrypted_log_group(template: dict[str, Any]) -> None:
    functions = resources(template, "AWS::Serverless::Function")
    log_groups = resources(template, "AWS::Logs::LogGroup")

    for name, function in functions.items():
        properties = function["Properties"]
        log_group_id = properties["LoggingConfig"]["LogGroup"]["Ref"]
        log_group = log_groups[log_group_id]["Properties"]
        kind = {
            "PreprocessFunction": "preprocess",
            "ScoreFunction": "score",
            "LabelsFunction": "labels",
            "FeatureLogFunction": "feature-log",
            "RetrainStartFunction": "retrain-start",
        }.get(name, "drift-check")
        assert log_group["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${AWS::StackName}-" + kind}
        assert log_group["KmsKeyId"] == {"Fn::GetAtt": ["EncryptionKey", "Arn"]}
        assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        log_statements = [
            s
            for role, s in iam_statements(template)
            if role == f"{name}Role" and s["Sid"] == "OwnLogGroup"
        ]
        assert [s["Resource"] for s in log_statements] == [{"Fn::GetAtt": [log_group_id, "Arn"]}]


def test_everything_at_rest_is_encrypted_with_the_stack_key(template: dict[str, Any]) -> None:
    key_arn = {"Fn::GetAtt": ["EncryptionKey", "Arn"]}
    key_ref = {"Ref": "EncryptionKey"}

    streams = resources(template, "AWS::Kinesis::Stream").values()
    tables = resources(template, "AWS::DynamoDB::Table").values()
    queues = resources(template, "AWS::SQS::Queue").values()
    (bucket,) = resources(template, "AWS::S3::Bucket").values()
    sse = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]

    assert len(streams) == 3 and len(tables) == 6 and len(queues) == 4
    assert all(s["Properties"]["StreamEncryption"]["KeyId"] == key_arn for s in streams)
    assert all(t["Properties"]["SSESpecification"]["KMSMasterKeyId"] == key_arn for t in tables)
    assert all(t["Properties"]["PointInTimeRecoverySpecification"] for t in tables)
    assert all(q["Properties"]["KmsMasterKeyId"] == key_ref for q in queues)
    assert sse["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == key_arn
    assert sse["BucketKeyEnabled"] is True
    assert template["Globals"]["Function"]["KmsKeyArn"] == key_arn


def test_tables_have_the_keys_and_ttl_the_handlers_use(template: dict[str, Any]) -> None:
    tables = resources(template, "AWS::DynamoDB::Table")
    keys = {
        name: [(k["AttributeName"], k["KeyType"]) for k in t["Properties"]["KeySchema"]]
        for name, t in tables.items()
    }
    (window_index,) = tables["MonitoringTable"]["Properties"]["GlobalSecondaryIndexes"]

    assert keys == TABLE_KEYS
    assert all(
        t["Properties"]["TimeToLiveSpecification"]
        == {"AttributeName": "expires_at", "Enabled": True}
        for t in tables.values()
    )
    assert window_index["IndexName"] == "WindowIndex"
    assert [(k["AttributeName"], k["KeyType"]) for k in window_index["KeySchema"]] == [
        ("window_key", "HASH"),
        ("recorded_at", "RANGE"),
    ]
    assert window_index["Projection"] == {"ProjectionType": "ALL"}


def test_event_source_mappings_take_every_setting_from_parameters(template: dict[str, Any]) -> None:
    mappings = resources(template, "AWS::Lambda::EventSourceMapping")

    assert set(mappings) == set(MAPPINGS) | {
        "LabelsEventSourceMapping",
        "FeatureLogEventSourceMapping",
    }
    for name, (prefix, stream, function) in MAPPINGS.items():
        properties = mappings[name]["Properties"]
        for setting in ESM_SETTINGS:
            assert properties[setting] == {"Ref": prefix + setting}, (name, setting)
            assert prefix + setting in template["Parameters"]
        assert properties["EventSourceArn"] == {
            "Fn::If": [
                "UseEnhancedFanOut",
                {"Ref": stream + "Consumer"},
                {"Fn::GetAtt": [stream, "Arn"]},
            ]
        }
        assert properties["FunctionName"] == {"Ref": function}
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert properties["DestinationConfig"] == {
            "OnFailure": {"Destination": {"Fn::GetAtt": ["FailureQueue", "Arn"]}}
        }


def test_enhanced_fan_out_gives_each_mapping_a_consumer_and_its_role_only_that_consumer(
    template: dict[str, Any],
) -> None:
    consumers = resources(template, "AWS::Kinesis::StreamConsumer")
    roles = {"TransactionsStream": "PreprocessFunctionRole", "FeaturesStream": "ScoreFunctionRole"}

    assert template["Parameters"]["ConsumerMode"]["AllowedValues"] == ["Polling", "EnhancedFanOut"]
    assert template["Parameters"]["ConsumerMode"]["Default"] == "Polling"
    assert template["Conditions"]["UseEnhancedFanOut"] == {
        "Fn::Equals": [{"Ref": "ConsumerMode"}, "EnhancedFanOut"]
    }
    assert set(consumers) == {stream + "Consumer" for stream in roles}
    for stream, role in roles.items():
        consumer = consumers[stream + "Consumer"]
        assert consumer["Condition"] == "UseEnhancedFanOut"
        assert consumer["Properties"]["StreamARN"] == {"Fn::GetAtt": [stream, "Arn"]}
        # the consumer's actions, on the consumer alone, only where the role reads that stream
        granted = [
            (owner, statement)
            for owner, statement in iam_statements(template)
            if "kinesis:SubscribeToShard" in as_list(statement["Action"])
            and statement["Resource"] == {"Ref": stream + "Consumer"}
        ]
        assert [owner for owner, _ in granted] == [role]
        assert sorted(as_list(granted[0][1]["Action"])) == [
            "kinesis:DescribeStreamConsumer",
            "kinesis:SubscribeToShard",
        ]
    for mode, created in (("Polling", set()), ("EnhancedFanOut", set(consumers))):
        translated = transform_template(template, {"ConsumerMode": mode})
        local = translated["Metadata"]["LocalStreamConsumers"]
        assert set(local) == created, mode
        # moto cannot create a consumer: the local stack reads the stream, the deploy registers
        assert not resources(translated, "AWS::Kinesis::StreamConsumer")
        text = json.dumps(translated["Resources"])
        assert all(f'{{"Ref": "{name}"}}' not in text for name in consumers), mode


def test_the_labels_mapping_reads_from_the_oldest_record_with_the_others_failure_handling(
    template: dict[str, Any],
) -> None:
    # labels are few and not urgent: only batch size and window are parameters; the rest is
    # fixed as the other mappings' defaults (a replay re-applies nothing: labels/batch.py)
    properties = resources(template, "AWS::Lambda::EventSourceMapping")["LabelsEventSourceMapping"][
        "Properties"
    ]
    defaults = {
        setting: template["Parameters"][f"Score{setting}"]["Default"]
        for setting in ESM_SETTINGS
        if setting not in ("BatchSize", "MaximumBatchingWindowInSeconds")
    }

    assert properties["EventSourceArn"] == {"Fn::GetAtt": ["LabelsStream", "Arn"]}
    assert properties["FunctionName"] == {"Ref": "LabelsFunction"}
    assert properties["BatchSize"] == {"Ref": "LabelsBatchSize"}
    assert properties["MaximumBatchingWindowInSeconds"] == {
        "Ref": "LabelsMaximumBatchingWindowInSeconds"
    }
    assert {s: str(properties[s]).lower() for s in defaults} == {
        s: str(v).lower() for s, v in defaults.items()
    }
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": ["FailureQueue", "Arn"]}}
    }


def test_the_feature_log_reads_first_writes_of_predictions_and_writes_only_its_prefix(
    template: dict[str, Any],
) -> None:
    properties = resources(template, "AWS::Lambda::EventSourceMapping")[
        "FeatureLogEventSourceMapping"
    ]["Properties"]
    table = resources(template, "AWS::DynamoDB::Table")["PredictionsTable"]["Properties"]
    role = resources(template, "AWS::IAM::Role")["FeatureLogFunctionRole"]["Properties"]
    statements = {s["Sid"]: s for s in role["Policies"][0]["PolicyDocument"]["Statement"]}

    assert table["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert properties["EventSourceArn"] == {"Fn::GetAtt": ["PredictionsTable", "StreamArn"]}
    assert properties["StartingPosition"] == "TRIM_HORIZON"
    assert properties["MaximumRecordAgeInSeconds"] == -1
    assert properties["BisectBatchOnFunctionError"] is True
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": ["FailureQueue", "Arn"]}}
    }
    (pattern,) = properties["FilterCriteria"]["Filters"]
    assert json.loads(pattern["Pattern"]) == {"eventName": ["INSERT"]}
    assert statements["ReadPredictionsStream"]["Resource"] == {
        "Fn::Sub": "${PredictionsTable.Arn}/stream/*"
    }
    assert statements["FeatureLogObjects"] == {
        "Sid": "FeatureLogObjects",
        "Effect": "Allow",
        "Action": "s3:PutObject",
        "Resource": {"Fn::Sub": "${ArtifactsBucket.Arn}/feature-log/*"},
    }


@pytest.mark.parametrize("value", ["", "0", "0.35", ".5", "1", "1.0"])
def test_thresholds_accept_empty_or_a_probability(template: dict[str, Any], value: str) -> None:
    values = parameter_values(template, {"ReviewThreshold": value, "DeclineThreshold": value})

    assert values["ReviewThreshold"] == values["DeclineThreshold"] == value


@pytest.mark.parametrize("value", ["1.5", "-0.1", "2", "abc", "0.5 ", "1.01"])
def test_thresholds_reject_anything_else(template: dict[str, Any], value: str) -> None:
    with pytest.raises(ValueError, match="ReviewThreshold"):
        parameter_values(template, {"ReviewThreshold": value})


@pytest.mark.parametrize("value", ["-1", "60", "99", "3600", "599999", "604799", "604800"])
def test_record_age_accepts_minus_one_or_60_to_604800(template: dict[str, Any], value: str) -> None:
    assert (
        parameter_values(template, {"ScoreMaximumRecordAgeInSeconds": value})[
            "ScoreMaximumRecordAgeInSeconds"
        ]
        == value
    )


@pytest.mark.parametrize("value", ["0", "59", "-2", "604801", "605000", "1000000", "60.5"])
def test_record_age_rejects_what_lambda_rejects(template: dict[str, Any], value: str) -> None:
    with pytest.raises(ValueError, match="ScoreMaximumRecordAgeInSeconds"):
        parameter_values(template, {"ScoreMaximumRecordAgeInSeconds": value})


def test_unknown_parameter_overrides_are_refused(template: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="PreprocesBatchSize"):
        parameter_values(template, {"PreprocesBatchSize": "10"})


def test_the_tracing_parameter_sets_each_functions_mode_and_the_tracer(
    template: dict[str, Any],
) -> None:
    # given: the template as SAM translates it
    translated = transform_template(template)
    functions = resources(translated, "AWS::Lambda::Function")
    conditions = translated["Conditions"]

    # then: Lambda's own tracing mode is the parameter (CloudFormation's TracingConfig Mode
    # takes Active or PassThrough), and the Tracer is off (it patches nothing) unless Active
    assert template["Parameters"]["Tracing"]["AllowedValues"] == ["Active", "PassThrough"]
    assert len(functions) == 6
    for function in functions.values():
        properties = function["Properties"]
        assert properties["TracingConfig"] == {"Mode": {"Ref": "Tracing"}}
        flag = properties["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"]
        condition, when_active, otherwise = flag["Fn::If"]
        assert conditions[condition] == {"Fn::Equals": [{"Ref": "Tracing"}, "Active"]}
        assert (when_active, otherwise) == ("false", "true")


def test_the_functions_only_read_the_model_registry_and_the_retraining_build_names_a_challenger(
    template: dict[str, Any],
) -> None:
    # given: every statement that names the registry's pointer table or its objects
    registry = [
        (role, statement)
        for role, statement in iam_statements(template)
        if statement.get("Sid") in ("ModelPointer", "ModelVersions")
    ]

    # then: the score function (the model it serves) and the drift check (each version's
    # baseline) read the pointer item (pk MODEL) and the versions' objects, nothing else of the
    # registry (the promotion check changes the pointer through the drift check's PutItem on
    # MonitoringTable); the retraining build also publishes a version and names it the
    # challenger, on the pointer item only
    assert sorted((role, s["Sid"]) for role, s in registry) == [
        ("DriftCheckFunctionRole", "ModelPointer"),
        ("DriftCheckFunctionRole", "ModelVersions"),
        ("RetrainProjectRole", "ModelPointer"),
        ("RetrainProjectRole", "ModelVersions"),
        ("ScoreFunctionRole", "ModelPointer"),
        ("ScoreFunctionRole", "ModelVersions"),
    ]
    for role, granted in registry:
        statement = granted
        if role == "RetrainProjectRole":
            writes = {"ModelPointer": "dynamodb:PutItem", "ModelVersions": "s3:PutObject"}
            assert writes[granted["Sid"]] in granted["Action"]
            assert len(granted["Action"]) == 2
            statement = granted | {"Action": granted["Action"][0]}
        if statement["Sid"] == "ModelPointer":
            assert statement["Action"] == "dynamodb:GetItem"
            assert statement["Condition"] == {
                "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["MODEL"]}
            }
        else:
            assert statement["Action"] == "s3:GetObject"
            assert statement["Resource"] == {"Fn::Sub": "${ArtifactsBucket.Arn}/models/*"}


def test_the_retraining_build_runs_a_command_the_cli_accepts_with_the_projects_variables(
    template: dict[str, Any],
) -> None:
    # given: the build's command, its variables as the project and the state machine set them
    command = build_command(template)
    variables = {v["Name"]: "1" for v in project_variables(template)}
    machine = json.loads((ROOT / "statemachine" / "retrain.asl.json").read_text())
    overrides = machine["States"]["Retrain"]["Parameters"]["EnvironmentVariablesOverride"]
    variables |= {v["Name"]: "2026-03-04T12:00:00Z" for v in overrides}
    used = set(re.findall(r"\$\{?([A-Z_]+)", command))

    # when: the shell expands it (bash, as the buildspec's env.shell says)
    assert shell(template) == "bash"
    expanded = expand(command, variables)

    # then: every variable it uses is set, and the CLI parses what it runs
    assert used <= set(variables), used - set(variables)
    args = parse_args(expanded)
    assert args.command == "retrain"
    assert args.trigger_time == "2026-03-04T12:00:00Z"
    assert args.pr_auc_margin == 1.0
