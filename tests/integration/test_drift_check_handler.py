"""DriftCheckFunction against moto: the template's MonitoringTable, the artifacts bucket, the bus and
its RetrainingRequested rule delivering to RetrainingQueue (moto delivers rule targets to SQS)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ReadTimeoutError

from streamscore.aws.drift_stores import DynamoRetrainingCooldown, DynamoWindowReader
from streamscore.core.artifacts import SCORE
from streamscore.core.errors import RetryableError, SystemicError
from streamscore.core.items import to_item_value
from streamscore.core.monitoring import (
    NO_VERSION,
    PREDICTIONS,
    QUARANTINE,
    CountKey,
    Counts,
    window_key,
)
from streamscore.drift.baseline import DriftBaseline, load_baseline
from streamscore.drift.ports import TriggerClaim
from streamscore.drift.report import TRIGGER_EVENTS
from streamscore.drift.window import DriftWindow
from support.aws_stack import REGION, LocalStack, plain_item
from support.drift_check import quality_items
from support.handler_output import CallCounter, emitted_metrics
from support.lambda_runtime import FakeLambdaContext
from support.wiring import Wired, wire

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
def handler(load_handler: Any, environment: dict[str, str]) -> Wired:
    return wire(load_handler("streamscore.handlers.drift_check", environment), environment)


@pytest.fixture(scope="module")
def baseline() -> DriftBaseline:
    return load_baseline(ARTIFACTS)


# ---------------------------------------------------------------- items as the pipeline writes them


def _spread(proportions: Sequence[float], n: int) -> list[int]:
    counts = [int(p * n) for p in proportions]
    counts[max(range(len(counts)), key=lambda i: proportions[i])] += n - sum(counts)
    return counts


def _count_item(
    kind: str, version: str, moment: datetime, slot: int, counts: Counts
) -> dict[str, Any]:
    """A count item as DynamoFactWriter leaves it in MonitoringTable."""
    key = CountKey(
        kind, version, moment.astimezone(UTC).strftime("%Y-%m-%dT%H"), "shardId-000000000000", slot
    )
    return {
        "pk": key.pk,
        "sk": "COUNT",
        "kind": kind,
        "model_version": version,
        "hour": key.hour,
        "shard_id": key.shard_id,
        "window_key": window_key(key.hour),
        "recorded_at": f"{key.hour}:00:00.000+00:00",
    } | counts.attributes()


def hist_items(
    baseline: DriftBaseline,
    batches: int,
    n: int,
    shifted: Mapping[str, list[int]] | None = None,
    version: str | None = None,
    end: datetime = SCHEDULED_AT,
) -> list[dict[str, Any]]:
    """`batches` prediction count items of `n` predictions each, spread over the day before `end`."""
    names = [*baseline.features, SCORE]
    items = []
    for i in range(batches):
        # from the window's first hour to its last: the predictions span the whole day
        moment = end - timedelta(hours=24) + timedelta(hours=23 * i / max(1, batches - 1))
        counts = Counts(n=n, decisions=Counter({"approve": n}))
        for index, name in enumerate(names):
            spread = (shifted or {}).get(name) or _spread(baseline.variables[name].proportions, n)
            for b, count in enumerate(spread):
                counts.bins[index, b] += count
        items.append(_count_item(PREDICTIONS, version or baseline.model_version, moment, i, counts))
    return items


def stats_items(batches: int, quarantined: int) -> list[dict[str, Any]]:
    """`batches` quarantine count items of `quarantined` invalid amounts each."""
    return [
        _count_item(
            QUARANTINE,
            NO_VERSION,
            SCHEDULED_AT - timedelta(hours=20 - i),
            i,
            Counts(n=quarantined, reasons=Counter({"preprocess/invalid_amount": quarantined})),
        )
        for i in range(batches)
    ]


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
    handler: Wired,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a day of histograms like the baseline, and preprocess stats with 1 % quarantined
    drift_stack.put(hist_items(baseline, batches=6, n=200))
    drift_stack.put(stats_items(batches=4, quarantined=3))

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
    handler: Wired,
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

    # then: one trigger, delivered by the template's rule; the retry finds it sent, the other
    # window hits the cooldown
    assert [r["status"] for r in (first, retry, on_demand)] == ["drift"] * 3
    assert [r["retraining"] for r in (first, retry, on_demand)] == ["sent", "sent", "cooldown"]
    (message,) = drift_stack.retraining_messages()
    assert message["source"] == "streamscore.monitoring"
    assert message["detail-type"] == "RetrainingRequested"
    detail = message["detail"]
    assert detail["trigger_id"] == f"{baseline.model_version}/{first['report_id']}"
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
    assert cooldown["trigger_id"] == detail["trigger_id"]
    assert (cooldown["status"], cooldown["sent_triggers"]) == ("sent", [detail["trigger_id"]])
    reports = {r["report_id"]: r for r in drift_stack.monitoring("REPORT")}
    assert reports[first["report_id"]]["retraining"] == "sent"  # the retry overwrote it
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
    assert [r.__dict__["retraining"] for r in logged] == ["sent", "sent", "cooldown"]


def test_insufficient_data_triggers_nothing(
    drift_stack: DriftStack,
    baseline: DriftBaseline,
    handler: Wired,
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
    handler: Wired,
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
    older = report["other_versions"]["cardfraud-older"]
    assert (older["count_items"], older["n"], older["scored"]) == (4, 1200, 1200)
    # not in the registry: counted, not compared (a registry version gets its own verdict)
    assert older["baseline"] == "not found: counted, not compared" and "status" not in older


def test_window_reader_follows_every_page(drift_stack: DriftStack, baseline: DriftBaseline) -> None:
    # given
    drift_stack.put(hist_items(baseline, batches=7, n=10))
    reader = DynamoWindowReader(drift_stack.local.dynamodb, drift_stack.table, page_size=2)
    window = DriftWindow(SCHEDULED_AT - timedelta(days=1), SCHEDULED_AT)

    # when
    items = list(reader.read(window.count_keys(), *window.count_bounds))

    # then
    assert sorted(i["pk"] for i in items) == sorted(
        i["pk"] for i in hist_items(baseline, batches=7, n=10)
    )
    amount = Counts.from_item(items[0]).histogram(
        baseline.features.index("amount_log"), len(baseline.variables["amount_log"].proportions)
    )
    assert amount["counts"] == _spread(baseline.variables["amount_log"].proportions, 10)


def test_cooldown_claims_are_conditional_per_model_version(drift_stack: DriftStack) -> None:
    cooldown = DynamoRetrainingCooldown(drift_stack.local.dynamodb, drift_stack.table)
    now = SCHEDULED_AT
    lease = 1200

    def claim(version: str, trigger: str, at: datetime) -> TriggerClaim:
        return cooldown.claim(version, trigger, at, 24, lease)

    first = claim("m1", "a", now)
    assert (first.state, first.accepted) == ("ours", frozenset())
    assert claim("m1", "b", now + timedelta(minutes=1)).state == "in_flight"  # a's run is alive
    assert claim("m2", "c", now + timedelta(minutes=1)).state == "ours"  # another model version
    assert cooldown.record(first, frozenset({"DriftDetected"}), False, now)
    assert cooldown_item(drift_stack, "m1")["accepted"] == {"a#DriftDetected"}
    resumed = claim("m1", "a", now + timedelta(minutes=2))  # a retry
    assert (resumed.state, resumed.accepted) == ("ours", frozenset({"DriftDetected"}))
    assert cooldown.record(resumed, frozenset(TRIGGER_EVENTS), True, now + timedelta(minutes=3))
    held = cooldown_item(drift_stack, "m1")
    assert [claim("m1", "a", now + timedelta(hours=h)).state for h in (1, 30)] == ["sent"] * 2
    assert claim("m1", "b", now + timedelta(hours=24)).state == "cooldown"
    b = claim("m1", "b", now + timedelta(hours=24, minutes=4))
    assert b.state == "ours"
    assert not cooldown.record(first, frozenset(TRIGGER_EVENTS), True, now)  # not a's any more
    assert claim("m1", "c", now + timedelta(hours=24, minutes=10)).state == "in_flight"
    assert cooldown.record(b, frozenset({"RetrainingRequested"}), False, now)
    c = claim("m1", "c", now + timedelta(hours=24, minutes=25))  # b's run died: the lease is over
    assert (c.state, c.history) == ("ours", ("a",))
    assert cooldown.record(
        c, frozenset(TRIGGER_EVENTS), True, now + timedelta(hours=24, minutes=26)
    )
    later_b = claim("m1", "b", now + timedelta(hours=49))  # b again, after c's cooldown
    assert (later_b.state, later_b.accepted) == ("ours", frozenset({"RetrainingRequested"}))

    assert held["status"] == "sent"
    assert "accepted" not in held  # kept until the trigger completes
    assert held["triggered_at"] == "2026-03-04T12:03:00.000+00:00"
    assert held["triggered_epoch"] == (now + timedelta(minutes=3)).timestamp()
    assert held["sent_triggers"] == ["a"]
    assert cooldown_item(drift_stack, "m1")["trigger_id"] == "b"


def test_a_cooldown_item_of_the_claims_before_is_honoured(drift_stack: DriftStack) -> None:
    # given: items as the claim-and-release cooldown left them
    drift_stack.put(
        [
            {
                "pk": f"RETRAIN#{version}",
                "sk": "COOLDOWN",
                "model_version": version,
                "triggered_epoch": (SCHEDULED_AT - timedelta(hours=hours)).timestamp(),
                "triggered_at": (SCHEDULED_AT - timedelta(hours=hours)).isoformat(),
                "claim_id": "old@2026-03-03T00:00:00.000+00:00",
            }
            for version, hours in (("recent", 2), ("old", 30))
        ]
    )
    cooldown = DynamoRetrainingCooldown(drift_stack.local.dynamodb, drift_stack.table)

    assert cooldown.claim("recent", "x", SCHEDULED_AT, 24, 1200).state == "cooldown"
    assert cooldown.claim("old", "x", SCHEDULED_AT, 24, 1200).state == "ours"
    assert "claim_id" not in cooldown_item(drift_stack, "old")


def test_the_cooldown_remembers_its_latest_triggers_only(drift_stack: DriftStack) -> None:
    # given
    cooldown = DynamoRetrainingCooldown(drift_stack.local.dynamodb, drift_stack.table)
    keep = DynamoRetrainingCooldown.HISTORY

    # when
    for i in range(keep + 1):
        at = SCHEDULED_AT + timedelta(hours=i)
        claim = cooldown.claim("m", f"t{i}", at, 0, 1200)
        assert cooldown.record(claim, frozenset(TRIGGER_EVENTS), True, at)

    # then
    assert cooldown_item(drift_stack, "m")["sent_triggers"] == [f"t{i}" for i in range(1, keep + 1)]
    assert cooldown.claim("m", f"t{keep}", SCHEDULED_AT, 0, 1200).state == "sent"


def cooldown_item(drift_stack: DriftStack, version: str) -> dict[str, Any]:
    return plain_item(
        drift_stack.local.dynamodb.get_item(
            TableName=drift_stack.table,
            Key={"pk": {"S": f"RETRAIN#{version}"}, "sk": {"S": "COOLDOWN"}},
        )["Item"]
    )


# ---------------------------------------------------------------- the trigger, effectively once


class Crash(BaseException):
    """The run dies (a timeout, the sandbox killed): no handler of the run's code runs."""


class FlakyEventBridge:
    """The handler's EventBridge client with a fault on PutEvents until `heal()`.

    crash: the run dies before the call. lost: the call takes effect, its response is lost
    (a read timeout). refuse: entries of these detail types come back with an ErrorCode.
    """

    def __init__(self, client: Any, fault: str, refuse: Sequence[str] = ()):
        self.client, self.fault, self.refuse = client, fault, set(refuse)

    def heal(self) -> None:
        self.fault = ""

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        if self.fault == "crash":
            raise Crash("the run died before PutEvents")
        if self.fault != "refuse":
            response: dict[str, Any] = self.client.put_events(Entries=Entries)
            if self.fault == "lost":
                raise ReadTimeoutError(endpoint_url="https://events.eu-west-1.amazonaws.com/")
            return response
        taken = [e for e in Entries if e["DetailType"] not in self.refuse]
        accepted = iter(self.client.put_events(Entries=taken)["Entries"] if taken else [])
        results = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "refused"}
            if e["DetailType"] in self.refuse
            else next(accepted)
            for e in Entries
        ]
        return {"FailedEntryCount": len(Entries) - len(taken), "Entries": results}


@pytest.fixture
def flaky_events(handler: Wired, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`flaky_events(fault, refuse=())` puts a FlakyEventBridge under the handler's EventPublisher."""

    def install(fault: str, refuse: Sequence[str] = ()) -> FlakyEventBridge:
        flaky = FlakyEventBridge(handler.events, fault, refuse)
        handler.use(events=flaky)
        return flaky

    return install


@pytest.fixture
def clock(handler: Wired) -> Any:
    """`clock(moment)`: the handler's clock reads `moment` from now on."""

    def set_to(moment: datetime) -> None:
        handler.rehandle(clock=lambda: moment.astimezone(UTC))

    return set_to


@pytest.fixture
def drift_events(drift_stack: DriftStack) -> Any:
    """`drift_events()`: every DriftDetected and RetrainingRequested put on the bus so far."""
    queue = drift_stack.sqs.create_queue(QueueName="AllDriftEvents")["QueueUrl"]
    arn = drift_stack.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(
        Name="AllDriftEvents",
        EventBusName=BUS,
        EventPattern=json.dumps({"source": ["streamscore.monitoring"]}),
    )
    events.put_targets(Rule="AllDriftEvents", EventBusName=BUS, Targets=[{"Id": "all", "Arn": arn}])
    seen: list[dict[str, Any]] = []

    def received() -> list[tuple[str, str | None]]:
        while messages := drift_stack.sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", []):
            seen.extend(json.loads(m["Body"]) for m in messages)
            for m in messages:
                drift_stack.sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        return sorted((e["detail-type"], e["detail"].get("trigger_id")) for e in seen)

    return received


def scheduled_at(moment: datetime) -> dict[str, Any]:
    return scheduled_event() | {"time": moment.isoformat()}


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_regression_a_a_death_between_claim_and_put_events_is_sent_by_the_next_run(
    drift_stack: DriftStack,
    baseline: DriftBaseline,
    handler: Wired,
    lambda_context: FakeLambdaContext,
    flaky_events: Any,
    clock: Any,
    drift_events: Any,
) -> None:
    drift_stack.put(hist_items(baseline, batches=5, n=300, shifted=channel_shift(baseline, 300)))
    trigger = f"{baseline.model_version}/20260303T120000Z--20260304T120000Z"
    clock(SCHEDULED_AT + timedelta(minutes=1))
    flaky = flaky_events("crash")

    with pytest.raises(Crash):
        handler.lambda_handler(scheduled_event(), lambda_context)
    flaky.heal()
    clock(SCHEDULED_AT + timedelta(hours=1))  # within the cooldown; the event's retry, late
    again = handler.lambda_handler(scheduled_event(), lambda_context)

    print("the run after the death:", again["retraining"], drift_events())
    assert again["retraining"] == "sent"
    assert drift_events() == [("DriftDetected", trigger), ("RetrainingRequested", trigger)]
    (message,) = drift_stack.retraining_messages()
    assert message["detail"]["trigger_id"] == trigger


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_dead_claim_is_taken_over_by_the_next_hourly_run(
    drift_stack: DriftStack,
    baseline: DriftBaseline,
    handler: Wired,
    lambda_context: FakeLambdaContext,
    flaky_events: Any,
    clock: Any,
    drift_events: Any,
) -> None:
    drift_stack.put(hist_items(baseline, batches=5, n=300, shifted=channel_shift(baseline, 300)))
    clock(SCHEDULED_AT + timedelta(minutes=1))
    flaky = flaky_events("crash")
    with pytest.raises(Crash):
        handler.lambda_handler(scheduled_event(), lambda_context)
    flaky.heal()

    next_hour = SCHEDULED_AT + timedelta(hours=1)
    clock(next_hour)
    result = handler.lambda_handler(scheduled_at(next_hour), lambda_context)

    trigger = f"{baseline.model_version}/20260303T130000Z--20260304T130000Z"
    assert result["retraining"] == "sent"
    assert drift_events() == [("DriftDetected", trigger), ("RetrainingRequested", trigger)]


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_regression_b_a_lost_put_events_response_is_re_sent_with_the_same_trigger_id(
    drift_stack: DriftStack,
    baseline: DriftBaseline,
    handler: Wired,
    lambda_context: FakeLambdaContext,
    flaky_events: Any,
    drift_events: Any,
) -> None:
    drift_stack.put(hist_items(baseline, batches=5, n=300, shifted=channel_shift(baseline, 300)))
    trigger = f"{baseline.model_version}/20260303T120000Z--20260304T120000Z"
    flaky = flaky_events("lost")

    with pytest.raises(RetryableError, match="ReadTimeoutError"):
        handler.lambda_handler(scheduled_event(), lambda_context)
    flaky.heal()
    retry = handler.lambda_handler(scheduled_event(), lambda_context)
    rerun = handler.lambda_handler(scheduled_event(), lambda_context)

    print("after the lost response, its retry and a re-run:", drift_events())
    assert [retry["retraining"], rerun["retraining"]] == ["sent", "sent"]
    assert (
        drift_events() == [("DriftDetected", trigger)] * 2 + [("RetrainingRequested", trigger)] * 2
    )


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_regression_b_a_death_after_the_trigger_committed_sends_nothing_again(
    drift_stack: DriftStack,
    baseline: DriftBaseline,
    handler: Wired,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    drift_events: Any,
) -> None:
    drift_stack.put(hist_items(baseline, batches=5, n=300, shifted=channel_shift(baseline, 300)))
    trigger = f"{baseline.model_version}/20260303T120000Z--20260304T120000Z"

    def die(item: dict[str, Any]) -> None:
        raise Crash("the run died before its report item")

    with monkeypatch.context() as patched:
        patched.setattr(handler.ports.monitoring, "put", die)
        with pytest.raises(Crash):
            handler.lambda_handler(scheduled_event(), lambda_context)
    retry = handler.lambda_handler(scheduled_event(), lambda_context)

    assert retry["retraining"] == "sent"
    assert drift_events() == [("DriftDetected", trigger), ("RetrainingRequested", trigger)]


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_regression_c_after_a_partial_failure_the_retry_sends_only_the_refused_entry(
    drift_stack: DriftStack,
    baseline: DriftBaseline,
    handler: Wired,
    lambda_context: FakeLambdaContext,
    flaky_events: Any,
    drift_events: Any,
) -> None:
    drift_stack.put(hist_items(baseline, batches=5, n=300, shifted=channel_shift(baseline, 300)))
    trigger = f"{baseline.model_version}/20260303T120000Z--20260304T120000Z"
    flaky = flaky_events("refuse", refuse=["RetrainingRequested"])

    with pytest.raises(RetryableError, match="1 of 2 drift events"):
        handler.lambda_handler(scheduled_event(), lambda_context)
    flaky.heal()
    retry = handler.lambda_handler(scheduled_event(), lambda_context)

    print("after the partial failure and its retry:", drift_events())
    assert retry["retraining"] == "sent"
    assert drift_events() == [("DriftDetected", trigger), ("RetrainingRequested", trigger)]


def test_regression_d_the_report_of_a_re_run_after_a_send_says_sent(
    drift_stack: DriftStack,
    baseline: DriftBaseline,
    handler: Wired,
    lambda_context: FakeLambdaContext,
) -> None:
    drift_stack.put(hist_items(baseline, batches=5, n=300, shifted=channel_shift(baseline, 300)))

    first = handler.lambda_handler(scheduled_event(), lambda_context)
    rerun = handler.lambda_handler(scheduled_event(), lambda_context)

    (item,) = drift_stack.monitoring("REPORT")
    print("the re-run says", rerun["retraining"], "and its report item", item["retraining"])
    assert [first["retraining"], rerun["retraining"], item["retraining"]] == ["sent"] * 3
    assert item["trigger_id"] == f"{baseline.model_version}/{first['report_id']}"
    assert len(drift_stack.retraining_messages()) == 1


def test_invalid_settings_fail_the_cold_start(
    load_handler: Any, environment: dict[str, str]
) -> None:
    with pytest.raises(SystemicError, match=r"PSI_DRIFT_THRESHOLD: .*PSI_WARN_THRESHOLD"):
        load_handler(
            "streamscore.handlers.drift_check", environment | {"PSI_DRIFT_THRESHOLD": "0.05"}
        )


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_malformed_window_fails_with_its_reason(
    handler: Wired, lambda_context: FakeLambdaContext
) -> None:
    with pytest.raises(ValueError, match="not after its start"):
        handler.lambda_handler(
            {"window": {"start": "2026-03-04T12:00:00Z", "end": "2026-03-04T11:00:00Z"}},
            lambda_context,
        )


def test_the_role_grants_exactly_the_calls_the_handler_makes(
    drift_stack: DriftStack,
    baseline: DriftBaseline,
    handler: Wired,
    lambda_context: FakeLambdaContext,
) -> None:
    # given: a drifted window, so every path runs (read, report, claim, events, cooldown), with
    # predictions of another version, whose baseline is looked up in the registry
    drift_stack.put(hist_items(baseline, batches=3, n=300, shifted=channel_shift(baseline, 300)))
    drift_stack.put(hist_items(baseline, 1, 50, version="cardfraud-older"))
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
        for sid in (
            "MonitoringWindows",
            "ReportsAndCooldown",
            "ReportObjects",
            "ModelPointer",
            "ModelVersions",
            "MonitoringEvents",
        )
        for action in _as_list(statements[sid]["Action"])
    }
    assert (
        called
        == granted
        == {
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:GetItem",
            "s3:PutObject",
            "s3:GetObject",
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


# ---------------------------------------------------------------- the quality check


def _matured_labels(
    drift_stack: DriftStack, handler: Wired, reviewed: int, charged_back: int
) -> str:
    """The shipped champion's count items of an hour 62 days before the handler's clock (past
    the template's 60 days to mature): frauds reviewed and charged back, 300 approvals
    unlabelled, none declined. Returns the champion."""
    now = datetime(2026, 6, 1, 8, 30, tzinfo=UTC)
    handler.rehandle(clock=lambda: now)
    champion = load_baseline(ARTIFACTS).model_version
    hour = now - timedelta(days=62)
    drift_stack.put(quality_items(champion, hour, reviewed, charged_back, unlabelled=300))
    return champion


def test_too_few_frauds_seen_emit_no_recall_at_decline_for_the_alarm_to_judge(
    drift_stack: DriftStack,
    handler: Wired,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: 62 days ago, 3 frauds seen (2 reviewed, 1 charged back), below QualityMinFrauds
    _matured_labels(drift_stack, handler, reviewed=2, charged_back=1)

    result = handler.lambda_handler({"check": "quality"}, lambda_context)

    # then: no verdict, and no RecallAtDecline for QualityAlarm to fire on
    assert result["status"] == "insufficient_labels"
    metrics = emitted_metrics(capsys.readouterr().out)
    assert "RecallAtDecline" not in metrics and metrics["FraudsSeen"] == 3


def test_the_quality_schedule_reports_the_matured_window_and_asks_for_retraining_on_low_recall(
    drift_stack: DriftStack,
    handler: Wired,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: 62 days ago, 12 of 40 frauds were reviewed, the rest charged back, none declined
    # (the champion is the shipped model; the template's defaults: 60 days to mature, a 7-day
    # window, recall at decline 0.8)
    champion = _matured_labels(drift_stack, handler, reviewed=12, charged_back=28)

    # when: the quality schedule fires (its event, as the template's QualityCheckSchedule sends it)
    result = handler.lambda_handler({"check": "quality"}, lambda_context)

    # then: a report in S3, its figures as metrics, and one RetrainingRequested of reason quality
    assert result["check"] == "quality" and result["status"] == "low_recall"
    assert result["retraining"] == "sent"
    body, content_type = drift_stack.object(result["report_uri"])
    assert content_type == "application/json" and "/reports/quality/" in result["report_uri"]
    report = json.loads(body)
    assert report["versions"][champion]["realized"]["recall_at_review"] == 0.3
    picture, kind = drift_stack.object(result["plot_uri"])  # drawn beside it
    assert kind == "image/png" and picture.startswith(b"\x89PNG") and report["plot_uri"]
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["RealizedRecallAtReview"] == 0.3 and metrics["FraudsSeen"] == 40
    assert metrics["RecallAtDecline"] == 0  # no declines: every fraud seen got through
    assert metrics["QualityRetrainingRequested"] == 1
    (message,) = drift_stack.retraining_messages()
    assert message["detail-type"] == "RetrainingRequested"
    assert message["detail"]["reason"] == "quality"
