"""template.yaml: clean for cfn-lint, `sam validate --lint` and checkov, deployable into moto, and
holding what the handlers and docs/ARCHITECTURE.md rely on (names, keys, settings, least privilege)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from embedded.template import (
    LOCAL_CODE_BUCKET,
    LOCAL_CODE_KEY,
    load_template,
    parameter_values,
    stream_definitions,
    table_definitions,
    transform_template,
)
from streamscore.handlers.metrics import METRICS_BY_SERVICE

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
VENV_BIN = Path(sys.executable).parent
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
REGION = "us-east-1"

GLOBAL_ENV = {"POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}
FUNCTION_ENV = {
    "PreprocessFunction": {
        "POWERTOOLS_SERVICE_NAME",
        "ENTITY_STATE_TABLE",
        "FEATURES_TABLE",
        "QUARANTINE_TABLE",
        "MONITORING_TABLE",
        "FEATURES_STREAM_NAME",
        "FEATURES_TTL_DAYS",
        "STREAM_RETENTION_HOURS",
        "QUARANTINE_TTL_DAYS",
        "MONITORING_TTL_DAYS",
    },
    "ScoreFunction": {
        "POWERTOOLS_SERVICE_NAME",
        "PREDICTIONS_TABLE",
        "QUARANTINE_TABLE",
        "MONITORING_TABLE",
        "EVENT_BUS_NAME",
        "MODEL_DIR",
        "REVIEW_THRESHOLD",
        "DECLINE_THRESHOLD",
        "ALERT_ON_REVIEW",
        "PREDICTIONS_TTL_DAYS",
        "STREAM_RETENTION_HOURS",
        "QUARANTINE_TTL_DAYS",
        "MONITORING_TTL_DAYS",
    },
    "DriftCheckFunction": {
        "POWERTOOLS_SERVICE_NAME",
        "MONITORING_TABLE",
        "ARTIFACTS_BUCKET",
        "EVENT_BUS_NAME",
        "MODEL_DIR",
        "DRIFT_WINDOW_MINUTES",
        "PSI_WARN_THRESHOLD",
        "PSI_DRIFT_THRESHOLD",
        "JS_DRIFT_THRESHOLD",
        "MIN_SAMPLE_SIZE",
        "RETRAIN_COOLDOWN_HOURS",
        "MONITORING_TTL_DAYS",
    },
}
# The keys the handlers read and write by (docs/ARCHITECTURE.md, "Contracts", "Tables and keys").
TABLE_KEYS = {
    "EntityStateTable": [("card_id", "HASH")],
    "FeaturesTable": [("transaction_id", "HASH")],
    "PredictionsTable": [("transaction_id", "HASH")],
    "QuarantineTable": [("record_id", "HASH")],
    "MonitoringTable": [("pk", "HASH"), ("sk", "RANGE")],
}
ESM_SETTINGS = (
    "StartingPosition",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "ParallelizationFactor",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
)
MAPPINGS = {
    "PreprocessEventSourceMapping": ("Preprocess", "TransactionsStream", "PreprocessFunction"),
    "ScoreEventSourceMapping": ("Score", "FeaturesStream", "ScoreFunction"),
}
# Non-default settings, so the deployed mappings prove the parameters reach them.
MAPPING_OVERRIDES = {
    "PreprocessStartingPosition": "TRIM_HORIZON",
    "PreprocessBatchSize": "250",
    "PreprocessMaximumBatchingWindowInSeconds": "2",
    "PreprocessParallelizationFactor": "3",
    "PreprocessBisectBatchOnFunctionError": "false",
    "PreprocessMaximumRetryAttempts": "7",
    "PreprocessMaximumRecordAgeInSeconds": "600",
    "ScoreStartingPosition": "LATEST",
    "ScoreBatchSize": "100",
    "ScoreMaximumBatchingWindowInSeconds": "0",
    "ScoreParallelizationFactor": "2",
    "ScoreBisectBatchOnFunctionError": "true",
    "ScoreMaximumRetryAttempts": "-1",
    "ScoreMaximumRecordAgeInSeconds": "-1",
}


def rule_dimensions(rule: str) -> dict[str, Any]:
    """The FailedInvocations dimensions of a rule on the stack's bus (the name from the rule's ARN)."""
    return {
        "EventBusName": {"Fn::GetAtt": ["EventBus", "Name"]},
        "RuleName": {"Fn::Select": [2, {"Fn::Split": ["/", {"Fn::GetAtt": [rule, "Arn"]}]}]},
    }


RETRAINING_TARGETS = {
    "RetrainingStateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:retrain",
    "RetrainingSageMakerPipelineArn": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/retrain",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def offline_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=REGION,
        SAM_CLI_TELEMETRY="0",
        **extra,
    )
    return env


def run(command: list[str | Path], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# ---------------------------------------------------------------- the tools that gate a deploy


@pytest.mark.slow
def test_cfn_lint_reports_nothing() -> None:
    result = run([VENV_BIN / "cfn-lint", TEMPLATE_PATH], offline_env())

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.slow
def test_sam_validate_lint_passes_offline() -> None:
    result = run(
        [VENV_BIN / "sam", "validate", "--lint", "--region", REGION, "-t", TEMPLATE_PATH],
        offline_env(),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def declared_checkov_skips(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    skips = {}
    for logical_id, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            skips[(skip["id"], logical_id)] = skip.get("comment", "")
    return skips


def checkov(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            str(CHECKOV),
            "-f",
            str(path),
            "--framework",
            "cloudformation",
            "--skip-download",
            "-o",
            "json",
        ],
        cwd=ROOT,
        env=offline_env(BC_SKIP_MAPPING="TRUE", CKV_SKIP_PACKAGE_UPDATE_CHECK="TRUE"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def checkov_report(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=120)
    assert stdout.strip(), stderr
    report = json.loads(stdout)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 50  # it really scanned the stack
    return dict(report)


def failed_checks(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (c["check_id"], c["resource"].split(".")[-1])
        for c in report["results"].get("failed_checks", [])
    }


@pytest.mark.slow
def test_checkov_fails_no_check_and_every_skip_is_needed(
    template: dict[str, Any], tmp_path: Path
) -> None:
    if not CHECKOV.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHECKOV} is missing; `make test` creates it")
        pytest.skip("no .venv-checkov (run `make checkov-venv`)")
    # given: the template, and a copy without its skips
    unskipped = json.loads(json.dumps(template))
    for resource in unskipped["Resources"].values():
        resource.get("Metadata", {}).pop("checkov", None)
    unskipped_path = tmp_path / "template-without-skips.json"
    unskipped_path.write_text(json.dumps(unskipped))

    # when
    runs = checkov(TEMPLATE_PATH), checkov(unskipped_path)
    report, unskipped_report = (checkov_report(run) for run in runs)

    # then: nothing fails, and each skip hides a check that would fail without it
    failures = sorted(failed_checks(report))
    assert report["summary"]["failed"] == 0, f"checkov failed: {failures}"
    assert failed_checks(unskipped_report) == set(declared_checkov_skips(template))


def test_every_checkov_skip_gives_its_reason(template: dict[str, Any]) -> None:
    short = {
        key: reason for key, reason in declared_checkov_skips(template).items() if len(reason) < 40
    }

    assert short == {}


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
    global_env = set(template["Globals"]["Function"]["Environment"]["Variables"])
    functions = resources(template, "AWS::Serverless::Function")

    env = {
        name: global_env | set(fn["Properties"]["Environment"]["Variables"])
        for name, fn in functions.items()
    }

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
                yield logical_id, statement


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
        assert event_types <= {"Schedule"}, name


def test_each_function_logs_to_its_own_encrypted_log_group(template: dict[str, Any]) -> None:
    functions = resources(template, "AWS::Serverless::Function")
    log_groups = resources(template, "AWS::Logs::LogGroup")

    for name, function in functions.items():
        properties = function["Properties"]
        log_group_id = properties["LoggingConfig"]["LogGroup"]["Ref"]
        log_group = log_groups[log_group_id]["Properties"]
        kind = {"PreprocessFunction": "preprocess", "ScoreFunction": "score"}.get(
            name, "drift-check"
        )
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

    assert len(streams) == 2 and len(tables) == 5 and len(queues) == 4
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

    assert set(mappings) == set(MAPPINGS)
    for name, (prefix, stream, function) in MAPPINGS.items():
        properties = mappings[name]["Properties"]
        for setting in ESM_SETTINGS:
            assert properties[setting] == {"Ref": prefix + setting}, (name, setting)
            assert prefix + setting in template["Parameters"]
        assert properties["EventSourceArn"] == {"Fn::GetAtt": [stream, "Arn"]}
        assert properties["FunctionName"] == {"Ref": function}
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert properties["DestinationConfig"] == {
            "OnFailure": {"Destination": {"Fn::GetAtt": ["FailureQueue", "Arn"]}}
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


# ---------------------------------------------------------------- alarms and dashboard

NAMESPACE = "StreamScore"  # Globals: POWERTOOLS_METRICS_NAMESPACE
ALARM_TOPIC = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


def handler_metric_patterns(template: dict[str, Any]) -> dict[str, list[str]]:
    """Service name → the metric names its handler emits (a prefix as `Prefix_*`), from the metric enums."""
    patterns = {}
    for function in resources(template, "AWS::Serverless::Function").values():
        service = function["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        patterns[service] = [
            f"{name}*" if name.endswith("_") else str(name) for name in METRICS_BY_SERVICE[service]
        ]
    return patterns


def test_handlers_name_their_metrics_only_through_the_enums(template: dict[str, Any]) -> None:
    """A literal metric name in a handler would bypass the enum the alarms are checked against."""
    for function in resources(template, "AWS::Serverless::Function").values():
        module = function["Properties"]["Handler"].rsplit(".", 1)[0]
        source = (ROOT / "functions" / (module.replace(".", "/") + ".py")).read_text()
        calls = re.findall(r"(?:add_metric\(|single_metric\(\s*name=)\s*([^,\s]+)", source)
        assert calls, f"{module} emits no metric"
        literals = [c for c in calls if c.startswith(("'", '"', 'f"', "f'"))]
        assert not literals, f"{module} names metrics by literal: {literals}"


def alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric name, dimensions) of every metric an alarm reads."""
    properties = alarm["Properties"]
    if "MetricName" in properties:
        stats = [properties]
    else:
        stats = [m["MetricStat"]["Metric"] for m in properties["Metrics"] if "MetricStat" in m]
    return [
        (s["Namespace"], s["MetricName"], {d["Name"]: d["Value"] for d in s.get("Dimensions", [])})
        for s in stats
    ]


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's JSON with ${...} resolved: parameters to their defaults, the rest to names."""
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    parameters = parameter_values(template)
    resolved = re.sub(
        r"\$\{([^}]+)\}", lambda m: parameters.get(m.group(1), m.group(1).replace(".", "-")), body
    )
    return dict(json.loads(resolved))


def dashboard_metrics(body: dict[str, Any]) -> list[list[Any]]:
    return [
        metric
        for widget in body["widgets"]
        for metric in widget["properties"].get("metrics", [])
        if isinstance(metric[0], str)
    ]


def test_alarms_watch_every_mapping_function_queue_drift_and_quarantine(
    template: dict[str, Any],
) -> None:
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    watched = sorted(
        (name, json.dumps(dimensions, sort_keys=True))
        for alarm in alarms.values()
        for _, name, dimensions in alarm_metrics(alarm)
    )
    function = {"FunctionName": {"Ref": "PreprocessFunction"}}

    expected = [
        ("DriftDetected", {"service": "drift-check"}),
        ("IteratorAge", function),
        ("IteratorAge", {"FunctionName": {"Ref": "ScoreFunction"}}),
        ("Errors", function),
        ("Errors", {"FunctionName": {"Ref": "ScoreFunction"}}),
        ("Errors", {"FunctionName": {"Ref": "DriftCheckFunction"}}),
        (
            "ApproximateNumberOfMessagesVisible",
            {"QueueName": {"Fn::GetAtt": ["FailureQueue", "QueueName"]}},
        ),
        (
            "ApproximateNumberOfMessagesVisible",
            {"QueueName": {"Fn::GetAtt": ["EventsDeadLetterQueue", "QueueName"]}},
        ),
        *(
            ("FailedInvocations", rule_dimensions(rule))
            for rule in resources(template, "AWS::Events::Rule")
        ),
        ("FailedInvocations", {"RuleName": {"Ref": "DriftCheckFunctionDriftCheckSchedule"}}),
        ("RecordsQuarantined", {"service": "preprocess"}),
        ("RecordsIn", {"service": "preprocess"}),
    ]
    assert watched == sorted((name, json.dumps(d, sort_keys=True)) for name, d in expected)
    quarantine = alarms["QuarantineRateAlarm"]["Properties"]
    (rate,) = [m for m in quarantine["Metrics"] if m.get("ReturnData")]
    assert rate["Expression"] == "IF(received > 0, quarantined / received, 0)"
    assert quarantine["Threshold"] == {"Ref": "QuarantineRateAlarmThreshold"}


def test_every_alarm_notifies_the_optional_topic_and_ignores_missing_data(
    template: dict[str, Any],
) -> None:
    for name, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
        properties = alarm["Properties"]
        assert properties["AlarmActions"] == ALARM_TOPIC, name
        assert properties["OKActions"] == ALARM_TOPIC, name
        assert properties["TreatMissingData"] == "notBreaching", name
    assert template["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }


def test_alarms_and_dashboard_read_metrics_the_handlers_emit(template: dict[str, Any]) -> None:
    patterns = handler_metric_patterns(template)
    custom = [
        (name, dimensions["service"])
        for alarm in resources(template, "AWS::CloudWatch::Alarm").values()
        for namespace, name, dimensions in alarm_metrics(alarm)
        if namespace == NAMESPACE
    ]
    custom += [
        (metric[1], metric[3])
        for metric in dashboard_metrics(dashboard_body(template))
        if metric[0] == NAMESPACE
    ]

    assert (
        template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
        == NAMESPACE
    )
    assert len(custom) > 20
    unknown = [
        (name, service)
        for name, service in custom
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns[service])
    ]
    assert unknown == []


def test_dashboard_shows_throughput_latency_decisions_psi_and_iterator_age(
    template: dict[str, Any],
) -> None:
    body = dashboard_body(template)
    titles = [w["properties"]["title"] for w in body["widgets"]]
    searches = [
        m[0]["expression"]
        for w in body["widgets"]
        for m in w["properties"].get("metrics", [])
        if isinstance(m[0], dict)
    ]

    for topic in ("Throughput", "Latency", "Decisions", "PSI per feature", "Iterator age"):
        assert any(t.startswith(topic) for t in titles), topic
    assert searches == [
        'SEARCH(\'{StreamScore,feature,service} MetricName="PSI" service="drift-check"\', '
        "'Maximum', 3600)"
    ]
    iterator_ages = [m for m in dashboard_metrics(body) if m[1] == "IteratorAge"]
    assert [m[3] for m in iterator_ages] == ["PreprocessFunction", "ScoreFunction"]


# ---------------------------------------------------------------- ModelLayer build


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    (models / "training").mkdir(parents=True)
    shutil.copy(ROOT / "models" / "Makefile", models / "Makefile")
    (models / "training" / "train.py").write_text("# training code, never shipped\n")
    return models


def build_model_layer(models: Path, artifacts_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "make",
            "-s",
            "-f",
            str(models / "Makefile"),
            "build-ModelLayer",
            f"ARTIFACTS_DIR={artifacts_dir}",
        ],
        cwd=models,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_model_layer_ships_only_the_three_artifacts(model_dir: Path, tmp_path: Path) -> None:
    # given
    artifacts = model_dir / "artifacts"
    artifacts.mkdir()
    for name in ("model.onnx", "model_card.json", "baseline.json", "training_data.parquet"):
        (artifacts / name).write_text(name)
    out = tmp_path / "layer"

    # when
    result = build_model_layer(model_dir, out)

    # then
    assert result.returncode == 0, result.stderr
    shipped = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert shipped == ["model/baseline.json", "model/model.onnx", "model/model_card.json"]


def test_model_layer_build_says_what_is_missing(model_dir: Path, tmp_path: Path) -> None:
    (model_dir / "artifacts").mkdir()
    (model_dir / "artifacts" / "model.onnx").write_text("onnx")

    result = build_model_layer(model_dir, tmp_path / "layer")

    assert result.returncode != 0
    assert "model_card.json baseline.json" in result.stderr
    assert "make model" in result.stderr


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
    rules = {
        json.loads(r["EventPattern"])["detail-type"][0]: r
        for r in events.list_rules(EventBusName=bus)["Rules"]
    }
    assert {d: json.loads(r["EventPattern"]) for d, r in rules.items()} == {
        "RetrainingRequested": {
            "source": ["streamscore.monitoring"],
            "detail-type": ["RetrainingRequested"],
        },
        "HighRiskTransaction": {
            "source": ["streamscore.scoring"],
            "detail-type": ["HighRiskTransaction"],
        },
    }
    for detail_type, queue in (
        ("RetrainingRequested", "RetrainingQueueArn"),
        ("HighRiskTransaction", "AlertsQueueArn"),
    ):
        rule = rules[detail_type]
        (target,) = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
        assert target["Arn"] == outputs[queue]
        dead_letter = target["DeadLetterConfig"]["Arn"]
        assert dead_letter.rsplit(":", 1)[-1] == outputs["EventsDeadLetterQueueUrl"].rsplit("/")[-1]
        # the alarm's dimension, as the template derives it from the ARN, names the rule
        assert rule["Arn"].split("/")[2] == rule["Name"]
    (schedule,) = events.list_rules(EventBusName="default")["Rules"]
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    schedule_targets = events.list_targets_by_rule(Rule=schedule["Name"])["Targets"]
    assert [t["Arn"] for t in schedule_targets] == [outputs["DriftCheckFunctionArn"]]

    logs = boto3.client("logs", region_name=REGION)
    log_groups = {g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]}
    assert log_groups == {
        f"/aws/lambda/streamscore-{kind}" for kind in ("preprocess", "score", "drift-check")
    }


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

    assert set(targets("without")) == {"RetrainingQueue", "AlertsQueue"}
    with_targets = targets("with")
    assert set(with_targets) == {
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
    kinesis = boto3.client("kinesis", region_name=REGION)

    on_demand = stream_definitions(template)
    provisioned = stream_definitions(template, {"StreamMode": "PROVISIONED", "ShardCount": "3"})
    for logical_id, kwargs in provisioned.items():
        kinesis.create_stream(StreamName=logical_id, **kwargs)

    assert on_demand == {
        "TransactionsStream": {"StreamModeDetails": {"StreamMode": "ON_DEMAND"}},
        "FeaturesStream": {"StreamModeDetails": {"StreamMode": "ON_DEMAND"}},
    }
    for logical_id in provisioned:
        shards = kinesis.list_shards(StreamName=logical_id)["Shards"]
        assert len(shards) == 3


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
            if event["Type"] == "Schedule":
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

    assert (
        len(targets) == 6
    )  # retraining queue, state machine, pipeline; alerts queue, topic; schedule
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
