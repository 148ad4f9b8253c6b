"""template.yaml's alarms and dashboard: on metrics the handlers emit, under the namespace they use."""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import numpy as np
import pytest

from embedded.template import (
    parameter_values,
)
from streamscore.handlers.metrics import METRICS_BY_SERVICE
from support.template_checks import (
    ROOT,
    resources,
    rule_dimensions,
)

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


def test_alarms_watch_every_mapping_function_queue_drift_quarantine_and_the_registry(
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
        ("Errors", {"FunctionName": {"Ref": "LabelsFunction"}}),
        ("Errors", {"FunctionName": {"Ref": "FeatureLogFunction"}}),
        ("IteratorAge", {"FunctionName": {"Ref": "FeatureLogFunction"}}),
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
        ("FailedInvocations", {"RuleName": {"Ref": "DriftCheckFunctionQualityCheckSchedule"}}),
        ("FailedInvocations", {"RuleName": {"Ref": "DriftCheckFunctionPromotionCheckSchedule"}}),
        ("FailedInvocations", rule_dimensions("RetrainStartFunctionRetrainingRequested")),
        ("Errors", {"FunctionName": {"Ref": "RetrainStartFunction"}}),
        ("ExecutionsFailed", {"StateMachineArn": {"Ref": "RetrainingRunnerStateMachine"}}),
        ("RecallAtDecline", {"service": "drift-check"}),
        ("EarlyRecallAtDecline", {"service": "drift-check"}),
        ("RecordsQuarantined", {"service": "preprocess"}),
        ("RecordsIn", {"service": "preprocess"}),
        ("ModelRefused", {"service": "score"}),
        ("ModelPointerUnreadable", {"service": "score"}),
        ("ShadowFailed", {"service": "score"}),
        ("Decision_decline", {"service": "score"}),
        ("ExpectedDeclines", {"service": "score"}),
        ("Decision_review", {"service": "score"}),
        ("ExpectedReviews", {"service": "score"}),
    ]
    assert watched == sorted((name, json.dumps(d, sort_keys=True)) for name, d in expected)
    registry = alarms["ModelRefusedAlarm"]["Properties"]
    (problems,) = [m for m in registry["Metrics"] if m.get("ReturnData")]
    assert problems["Expression"] == (
        "FILL(refused, 0) + FILL(unreadable, 0) + FILL(shadowfailed, 0)"
    )
    assert registry["Threshold"] == 1
    guard = {m["Id"]: m for m in alarms["DecisionRateAlarm"]["Properties"]["Metrics"]}
    assert guard["declineratio"]["Expression"] == (
        "IF(FILL(expecteddeclines, 0) >= 10, FILL(declines, 0) / FILL(expecteddeclines, 1), 1)"
    )
    offrates = guard["offrates"]["Expression"]["Fn::Sub"]
    assert offrates.count("${DecisionRateAlarmFactor}") == 4 and guard["offrates"]["ReturnData"]
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


def _evaluate(expression: str, values: dict[str, float]) -> float:
    """A CloudWatch metric math expression of IF, FILL, comparisons and arithmetic, on one
    data point (a missing metric is None), evaluated as CloudWatch describes these functions."""

    def fill(value: float | None, default: float) -> float:
        return default if value is None else value

    def if_(condition: Any, then: float, otherwise: float) -> float:
        return then if condition else otherwise

    with np.errstate(divide="ignore", invalid="ignore"):
        return float(
            eval(
                expression.replace("IF(", "if_(").replace("FILL(", "fill("),
                {"if_": if_, "fill": fill},
                {name: None if v is None else np.float64(v) for name, v in values.items()},
            )
        )


@pytest.mark.parametrize(
    ("declines", "expected_declines", "reviews", "expected_reviews", "fires"),
    [
        (50, 51.0, 30, 27.0, False),  # as the card expects
        (200, 51.0, 30, 27.0, True),  # four times the declines: a bad promotion
        (10, 51.0, 30, 27.0, True),  # a fifth of them: a model that stopped declining
        (None, 51.0, 30, 27.0, True),  # none at all (no Decision_decline data point)
        (50, 51.0, 120, 27.0, True),  # reviews off
        (9, 3.0, 0, 2.0, False),  # too few expected to judge
        (None, None, None, None, False),  # no traffic
    ],
)
def test_the_decision_rate_alarm_fires_when_the_champion_decides_off_its_card(
    template: dict[str, Any],
    declines: float | None,
    expected_declines: float | None,
    reviews: float | None,
    expected_reviews: float | None,
    fires: bool,
) -> None:
    alarm = template["Resources"]["DecisionRateAlarm"]["Properties"]
    queries = {m["Id"]: m for m in alarm["Metrics"]}
    factor = str(template["Parameters"]["DecisionRateAlarmFactor"]["Default"])
    values: dict[str, float | None] = {
        "declines": declines,
        "expecteddeclines": expected_declines,
        "reviews": reviews,
        "expectedreviews": expected_reviews,
    }
    for name in ("declineratio", "reviewratio"):
        values[name] = _evaluate(queries[name]["Expression"], values)
    expression = queries["offrates"]["Expression"]["Fn::Sub"]
    value = _evaluate(expression.replace("${DecisionRateAlarmFactor}", factor), values)

    assert (value >= alarm["Threshold"]) is fires
