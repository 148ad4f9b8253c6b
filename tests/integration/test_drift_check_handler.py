"""DriftCheckFunction against moto: the template's MonitoringTable, the artifacts bucket, the bus and
its RetrainingRequested rule delivering to RetrainingQueue (moto delivers rule targets to SQS)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from conftest import (
    REGION,
    CallCounter,
    FakeLambdaContext,
    LocalStack,
    emitted_metrics,
    plain_item,
)

from streamscore.drift_report import SCORE, DriftBaseline, load_baseline
from streamscore.errors import SystemicError
from streamscore.items import to_item_value
from streamscore.monitoring import batch_item_key, window_key
from streamscore.stores import DynamoRetrainingCooldown, DynamoWindowReader

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "models" / "artifacts"
EVENTS = ROOT / "events"
BUCKET = "streamscore-artifacts-local"
BUS = "streamscore-local"
# events/drift_check_scheduled.json fires at 12:00; the default window is the day before it.
SCHEDULED_AT = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_serializer = TypeSerializer()


@dataclass
class DriftStack:
    local: LocalStack
    s3: Any
    sqs: Any
    retraining_queue: str
    table: str

    def put(self, items: Sequence[dict[str, Any]]) -> None:
        for item in items:
            self.local.dynamodb.put_item(
                TableName=self.table,
                Item={k: _wire(v) for k, v in to_item_value(item).items()},
            )

    def retraining_messages(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(
            QueueUrl=self.retraining_queue, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    def object(self, uri: str) -> tuple[bytes, str]:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        response = self.s3.get_object(Bucket=bucket, Key=key)
        return response["Body"].read(), response["ContentType"]

    def monitoring(self, kind: str) -> list[dict[str, Any]]:
        return [i for i in self.local.scan("MonitoringTable") if i["sk"] == kind]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wire(value: Any) -> dict[str, Any]:
    return dict(_serializer.serialize(value))


@pytest.fixture
def drift_stack(local_stack: LocalStack) -> DriftStack:
    """The bucket, bus, rule and queue of the template next to its tables (inside the same mock)."""
    template = local_stack.template["Resources"]
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="RetrainingQueue")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = boto3.client("events", region_name=REGION)
    events.create_event_bus(Name=BUS)
    rule = template["RetrainingRequestedRule"]["Properties"]
    events.put_rule(
        Name="RetrainingRequested", EventBusName=BUS, EventPattern=json.dumps(rule["EventPattern"])
    )
    events.put_targets(
        Rule="RetrainingRequested",
        EventBusName=BUS,
        Targets=[{"Id": rule["Targets"][0]["Id"], "Arn": queue_arn}],
    )
    return DriftStack(local_stack, s3, sqs, queue, local_stack.tables["MonitoringTable"])


@pytest.fixture
def environment(drift_stack: DriftStack) -> dict[str, str]:
    return drift_stack.local.function_environment(
        "DriftCheckFunction",
        {"ARTIFACTS_BUCKET": BUCKET, "EVENT_BUS_NAME": BUS, "MODEL_DIR": str(ARTIFACTS)},
    )


@pytest.fixture
def handler(load_handler: Any, environment: dict[str, str]) -> ModuleType:
    module: ModuleType = load_handler("drift_check.app", environment)
    return module


@pytest.fixture(scope="module")
def baseline() -> DriftBaseline:
    return load_baseline(ARTIFACTS)


# ---------------------------------------------------------------- items as the pipeline writes them


def _spread(proportions: Sequence[float], n: int) -> list[int]:
    counts = [int(p * n) for p in proportions]
    counts[max(range(len(counts)), key=lambda i: proportions[i])] += n - sum(counts)
    return counts


def hist_items(
    baseline: DriftBaseline,
    batches: int,
    n: int,
    shifted: Mapping[str, list[int]] | None = None,
    version: str | None = None,
    end: datetime = SCHEDULED_AT,
) -> list[dict[str, Any]]:
    """`batches` HIST items of `n` rows each, spread over the day before `end`."""
    items = []
    for i in range(batches):
        recorded_at = end - timedelta(hours=23) + timedelta(hours=22 * i / max(1, batches - 1))
        histograms = {
            name: {
                "counts": (shifted or {}).get(name) or _spread(reference.proportions, n),
                "missing": 0,
                "out_of_range": 0,
            }
            for name, reference in baseline.variables.items()
        }
        items.append(
            batch_item_key("HIST", "features", "shardId-000000000000", f"{i:056d}")
            | {
                "window_key": window_key("HIST", recorded_at),
                "recorded_at": recorded_at.isoformat(timespec="milliseconds"),
                "stage": "score",
                "model_version": version or baseline.model_version,
                "records": n,
                "quarantined_by_reason": {},
                "n": n,
                "scored": n,
                "histograms": histograms,
            }
        )
    return items


def stats_items(batches: int, records: int, quarantined: int) -> list[dict[str, Any]]:
    items = []
    for i in range(batches):
        recorded_at = SCHEDULED_AT - timedelta(hours=20 - i)
        items.append(
            batch_item_key("STATS", "transactions", "shardId-000000000000", f"{i:056d}")
            | {
                "window_key": window_key("STATS", recorded_at),
                "recorded_at": recorded_at.isoformat(timespec="milliseconds"),
                "stage": "preprocess",
                "records": records,
                "quarantined": quarantined,
                "quarantined_by_reason": {"invalid_amount": quarantined} if quarantined else {},
            }
        )
    return items


def channel_shift(baseline: DriftBaseline, n: int) -> dict[str, list[int]]:
    """channel_ecom from ~28 % to 60 % of the rows, the score's mass moved up."""
    score = _spread(baseline.variables[SCORE].proportions, n)
    moved = score[1] // 2
    score[1] -= moved
    score[-1] += moved
    return {"channel_ecom": [n - int(0.6 * n), int(0.6 * n)], SCORE: score}


def scheduled_event() -> dict[str, Any]:
    return dict(json.loads((EVENTS / "drift_check_scheduled.json").read_text()))


# ---------------------------------------------------------------- the tests


def test_baseline_like_window_reports_ok_in_s3_and_table_and_asks_for_nothing(
    drift_stack: DriftStack,
    baseline: DriftBaseline,
    handler: ModuleType,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a day of histograms like the baseline, and preprocess stats with 1 % quarantined
    drift_stack.put(hist_items(baseline, batches=6, n=200))
    drift_stack.put(stats_items(batches=4, records=303, quarantined=3))

    # when
    result = handler.lambda_handler(scheduled_event(), lambda_context)

    # then
    assert result["status"] == "ok"
    assert result["retraining"] == "not_drift"
    assert result["report_id"] == "20260303T120000Z--20260304T120000Z"
    body, content_type = drift_stack.object(result["report_uri"])
    assert content_type == "application/json"
    assert result["report_uri"] == (
        f"s3://{BUCKET}/reports/2026/03/04/20260303T120000Z--20260304T120000Z.json"
    )
    report = json.loads(body)
    (item,) = drift_stack.monitoring("REPORT")
    assert item["pk"] == "REPORT#2026-03-03T12:00:00.000+00:00#2026-03-04T12:00:00.000+00:00"
    shared = (set(item) & set(report)) - {"features", "prediction"}
    assert {"status", "window", "sample", "max_psi", "drifted", "report_uri", "plot_uri"} <= shared
    assert {k: item[k] for k in shared} == {k: report[k] for k in shared}
    for name, stats in item["features"].items():
        assert stats == {k: report["features"][name][k] for k in stats}
    assert report["sample"]["n"] == 1200
    assert report["data_quality"]["preprocess"]["quarantine_rate"] == pytest.approx(
        0.0099, abs=1e-4
    )
    picture, picture_type = drift_stack.object(result["plot_uri"])
    assert picture_type == "image/png" and picture.startswith(PNG_SIGNATURE)
    assert drift_stack.retraining_messages() == []
    assert drift_stack.monitoring("COOLDOWN") == []
    out = capsys.readouterr().out
    metrics = emitted_metrics(out)
    assert metrics["DriftDetected"] == 0
    assert metrics["RetrainingRequested"] == 0
    assert metrics["WindowSamples"] == 1200
    assert metrics["MaxPSI"] < 0.01


def test_drift_requests_retraining_once_and_the_rule_delivers_it_to_the_queue(
    drift_stack: DriftStack,
    baseline: DriftBaseline,
    handler: ModuleType,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given: channel_ecom and the score shifted in every batch of the day
    drift_stack.put(hist_items(baseline, batches=5, n=300, shifted=channel_shift(baseline, 300)))

    # when: the scheduled run, its retry, and an on-demand run of another window
    first = handler.lambda_handler(scheduled_event(), lambda_context)
    retry = handler.lambda_handler(scheduled_event(), lambda_context)
    on_demand = handler.lambda_handler(
        {"window": {"start": "2026-03-03T18:00:00+00:00", "end": "2026-03-04T12:00:00+00:00"}},
        lambda_context,
    )

    # then: one trigger, delivered by the template's rule; the other runs hit the cooldown
    assert [r["status"] for r in (first, retry, on_demand)] == ["drift"] * 3
    assert [r["retraining"] for r in (first, retry, on_demand)] == ["sent", "cooldown", "cooldown"]
    (message,) = drift_stack.retraining_messages()
    assert message["source"] == "streamscore.monitoring"
    assert message["detail-type"] == "RetrainingRequested"
    detail = message["detail"]
    assert detail["report_uri"] == first["report_uri"]
    assert detail["plot_uri"] == first["plot_uri"]
    assert detail["model_version"] == baseline.model_version
    assert detail["window"]["start"] == "2026-03-03T12:00:00+00:00"
    assert {d["name"] for d in detail["drifted"]} == {"channel_ecom", SCORE}
    ecom = next(d for d in detail["drifted"] if d["name"] == "channel_ecom")
    assert ecom["psi"] > 0.25 and ecom["js_distance"] > 0.1
    assert detail["sample"]["n"] == 1500
    (cooldown,) = drift_stack.monitoring("COOLDOWN")
    assert cooldown["pk"] == f"RETRAIN#{baseline.model_version}"
    assert cooldown["claim_id"].startswith(first["report_id"] + "@")
    reports = {r["report_id"]: r for r in drift_stack.monitoring("REPORT")}
    assert reports[first["report_id"]]["retraining"] == "cooldown"  # the retry overwrote it
    assert reports[on_demand["report_id"]]["retraining"] == "cooldown"
    assert on_demand["report_id"] == "20260303T180000Z--20260304T120000Z"
    # metrics: PSI per feature with its dimension, drift detected on every run
    out = capsys.readouterr().out
    blobs = [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]
    psi_blobs = [b for b in blobs if "PSI" in b]
    assert {b["feature"] for b in psi_blobs} == set(baseline.features)
    assert all(
        b["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["feature", "service"]]
        and b["service"] == "drift-check"
        for b in psi_blobs
    )
    metrics = emitted_metrics(out)
    assert metrics["DriftDetected"] == 3
    assert metrics["RetrainingRequested"] == 1
    assert metrics["PredictionPSI"] > 0
    # the logger's stream is bound when its service's logger is first built: read the records
    logged = [r for r in caplog.records if r.getMessage() == "drift checked"]
    assert [r.__dict__["retraining"] for r in logged] == ["sent", "cooldown", "cooldown"]


def test_insufficient_data_triggers_nothing(
    drift_stack: DriftStack,
    baseline: DriftBaseline,
    handler: ModuleType,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a completely shifted window of only 2 x 100 rows (MinSampleSize is 500)
    drift_stack.put(hist_items(baseline, batches=2, n=100, shifted=channel_shift(baseline, 100)))

    result = handler.lambda_handler(scheduled_event(), lambda_context)

    assert result["status"] == "insufficient_data"
    assert result["retraining"] == "not_drift"
    assert drift_stack.retraining_messages() == []
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["DriftDetected"] == 0
    assert "MaxPSI" not in metrics and "PSI" not in metrics


def test_items_outside_the_window_and_of_other_versions_are_not_compared(
    drift_stack: DriftStack,
    baseline: DriftBaseline,
    handler: ModuleType,
    lambda_context: FakeLambdaContext,
) -> None:
    # given: shifted histograms of the day before the window, and of an older model inside it
    shifted = channel_shift(baseline, 300)
    drift_stack.put(hist_items(baseline, 4, 300, shifted, end=SCHEDULED_AT - timedelta(days=1)))
    drift_stack.put(hist_items(baseline, 4, 300, shifted, version="cardfraud-older"))
    drift_stack.put(
        [
            item | {"pk": item["pk"] + "-now"}
            for item in hist_items(baseline, 3, 300)  # like the baseline, in the window
        ]
    )

    result = handler.lambda_handler(scheduled_event(), lambda_context)

    report = json.loads(drift_stack.object(result["report_uri"])[0])
    assert result["status"] == "ok"
    assert report["sample"]["n"] == 900
    assert report["other_versions"] == {
        "cardfraud-older": {"batches": 4, "n": 1200, "scored": 1200, "records": 1200}
    }


def test_window_reader_follows_every_page(drift_stack: DriftStack, baseline: DriftBaseline) -> None:
    drift_stack.put(hist_items(baseline, batches=7, n=10))
    reader = DynamoWindowReader(drift_stack.local.dynamodb, drift_stack.table, page_size=2)
    hours = [SCHEDULED_AT - timedelta(hours=h) for h in range(24, 0, -1)]

    items = reader.read(
        [window_key("HIST", h) for h in hours],
        (SCHEDULED_AT - timedelta(days=1)).isoformat(timespec="milliseconds"),
        SCHEDULED_AT.isoformat(timespec="milliseconds"),
    )

    assert sorted(i["pk"] for i in items) == sorted(
        i["pk"] for i in hist_items(baseline, batches=7, n=10)
    )
    assert items[0]["histograms"]["amount_log"]["counts"] == _spread(
        baseline.variables["amount_log"].proportions, 10
    )


def test_cooldown_claim_is_conditional_per_model_version(drift_stack: DriftStack) -> None:
    cooldown = DynamoRetrainingCooldown(drift_stack.local.dynamodb, drift_stack.table)
    now = SCHEDULED_AT

    claims = [
        cooldown.claim("m1", "a", now, 24),
        cooldown.claim("m1", "b", now + timedelta(hours=1), 24),  # inside the cooldown
        cooldown.claim("m2", "c", now + timedelta(hours=1), 24),  # another model version
        cooldown.claim("m1", "d", now + timedelta(hours=24, seconds=1), 24),  # after it
    ]
    cooldown.release("m1", "a")  # not ours any more: a no-op
    held = plain_item(
        drift_stack.local.dynamodb.get_item(
            TableName=drift_stack.table, Key={"pk": {"S": "RETRAIN#m1"}, "sk": {"S": "COOLDOWN"}}
        )["Item"]
    )
    cooldown.release("m1", "d")
    reclaimed = cooldown.claim("m1", "e", now + timedelta(hours=25), 24)

    assert claims == [True, False, True, True]
    assert held["claim_id"] == "d"
    assert reclaimed is True


def test_invalid_settings_fail_the_cold_start(
    load_handler: Any, environment: dict[str, str]
) -> None:
    with pytest.raises(SystemicError, match=r"PSI_DRIFT_THRESHOLD: .*PSI_WARN_THRESHOLD"):
        load_handler("drift_check.app", environment | {"PSI_DRIFT_THRESHOLD": "0.05"})


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_malformed_window_fails_with_its_reason(
    handler: ModuleType, lambda_context: FakeLambdaContext
) -> None:
    with pytest.raises(ValueError, match="not after its start"):
        handler.lambda_handler(
            {"window": {"start": "2026-03-04T12:00:00Z", "end": "2026-03-04T11:00:00Z"}},
            lambda_context,
        )


def test_the_role_grants_exactly_the_calls_the_handler_makes(
    drift_stack: DriftStack,
    baseline: DriftBaseline,
    handler: ModuleType,
    lambda_context: FakeLambdaContext,
) -> None:
    # given: a drifted window, so every path runs (read, report, claim, events, cooldown)
    drift_stack.put(hist_items(baseline, batches=3, n=300, shifted=channel_shift(baseline, 300)))
    clients = (handler.dynamodb, handler.s3, handler.events)
    counter = CallCounter().attach(*clients)

    # when
    try:
        handler.lambda_handler(scheduled_event(), lambda_context)
        handler.lambda_handler(scheduled_event(), lambda_context)
    finally:
        counter.detach(*clients)

    # then: the calls, as IAM actions, are the role's AWS-service statements, resource by resource
    called = {name.replace(".", ":") for name in counter.calls}
    role = drift_stack.local.template["Resources"]["DriftCheckFunctionRole"]["Properties"]
    statements = {s["Sid"]: s for s in role["Policies"][0]["PolicyDocument"]["Statement"]}
    granted = {
        action
        for sid in ("MonitoringWindows", "ReportsAndCooldown", "ReportObjects", "MonitoringEvents")
        for action in _as_list(statements[sid]["Action"])
    }
    assert (
        called
        == granted
        == {
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "s3:PutObject",
            "events:PutEvents",
        }
    )
    assert statements["MonitoringWindows"]["Resource"] == {
        "Fn::Sub": "${MonitoringTable.Arn}/index/WindowIndex"
    }
    assert statements["ReportObjects"]["Resource"] == {
        "Fn::Sub": "${ArtifactsBucket.Arn}/reports/*"
    }
    assert all(
        params["IndexName"] == "WindowIndex" for params in counter.requests("dynamodb.Query")
    )
    assert all(params["Key"].startswith("reports/") for params in counter.requests("s3.PutObject"))
