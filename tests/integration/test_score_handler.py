"""ScoreFunction's handler against moto and the shipped model: predictions, alerts, histograms, retries.

Every test imports `score.app` afresh with the environment template.yaml gives the function
(MODEL_DIR pointing at models/artifacts), so its module-scope session and clients are built
against the moto stack.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import numpy as np
import onnxruntime as ort
import pytest
from botocore.exceptions import ClientError

from embedded.lambda_events import KinesisEntry, kinesis_event
from streamscore.core.errors import SystemicError
from streamscore.core.monitoring import PREDICTIONS, QUARANTINE, Counts
from streamscore.core.settings import load_settings
from streamscore.scoring.model import histogram
from streamscore.scoring.settings import ScoreSettings
from support.aws_stack import REGION, LocalStack
from support.builders import failures, from_sequence
from support.handler_output import CallCounter, emitted_metrics, log_lines
from support.lambda_runtime import FakeLambdaContext
from support.wiring import Wired, moto_clients

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
MODEL_DIR = ROOT / "models" / "artifacts"
SHARD = "shardId-000000000000"
ALERT_SOURCE = "streamscore.scoring"

Handler = Callable[..., ModuleType]


# ----------------------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def card() -> dict[str, Any]:
    return json.loads((MODEL_DIR / "model_card.json").read_text())


@pytest.fixture(scope="module")
def baseline() -> dict[str, Any]:
    return json.loads((MODEL_DIR / "baseline.json").read_text())


@pytest.fixture(scope="module")
def direct_scores(card: dict[str, Any]) -> Callable[[Sequence[Mapping[str, float]]], np.ndarray]:
    """The model run straight through onnxruntime: the reference the handler must match."""
    session = ort.InferenceSession(
        str(MODEL_DIR / "model.onnx"), providers=["CPUExecutionProvider"]
    )

    def run(features: Sequence[Mapping[str, float]]) -> np.ndarray:
        matrix = np.array([[f[n] for n in card["feature_names"]] for f in features], np.float32)
        (probabilities,) = session.run([card["output_name"]], {card["input_name"]: matrix})
        return np.asarray(probabilities)[:, card["positive_class_index"]].astype(np.float64)

    return run


# ----------------------------------------------------------------------------- the stack


@pytest.fixture
def bus(local_stack: LocalStack) -> dict[str, Any]:
    """The project's bus, with a rule that copies HighRiskTransaction events to a queue we can read."""
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    name = "streamscore-EventBus-local"
    events.create_event_bus(Name=name)
    queue_url = sqs.create_queue(QueueName="high-risk-local")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="high-risk",
        EventBusName=name,
        EventPattern=json.dumps({"source": [ALERT_SOURCE], "detail-type": ["HighRiskTransaction"]}),
    )
    events.put_targets(
        Rule="high-risk", EventBusName=name, Targets=[{"Id": "queue", "Arn": queue_arn}]
    )
    return {"name": name, "sqs": sqs, "queue_url": queue_url}


def received_alerts(bus: Mapping[str, Any]) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = []
    while True:
        messages = (
            bus["sqs"]
            .receive_message(QueueUrl=bus["queue_url"], MaxNumberOfMessages=10)
            .get("Messages", [])
        )
        if not messages:
            return alerts
        for message in messages:
            alerts.append(json.loads(message["Body"]))
            bus["sqs"].delete_message(
                QueueUrl=bus["queue_url"], ReceiptHandle=message["ReceiptHandle"]
            )


@pytest.fixture
def score_app(load_handler: Any, local_stack: LocalStack, bus: Mapping[str, Any]) -> Handler:
    """`score_app(**env)`: the score handler built on moto with the template's environment plus `env`."""

    def load(**overrides: str) -> Wired:
        environment = local_stack.function_environment(
            "ScoreFunction",
            {"EVENT_BUS_NAME": bus["name"], "MODEL_DIR": str(MODEL_DIR)} | overrides,
        )
        module = load_handler("streamscore.handlers.score", environment)
        return Wired(
            module, load_settings(ScoreSettings, environment), moto_clients("dynamodb", "events")
        )

    return load


# ----------------------------------------------------------------------------- batches


def sample_event() -> dict[str, Any]:
    return json.loads((EVENTS / "score_features.json").read_text())


def decode(record: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(record["kinesis"]["data"]))


def feature_records(n: int) -> list[dict[str, Any]]:
    """`n` feature records with the sample's (real) feature values, each its own transaction."""
    samples = [
        doc
        for doc in map(decode, sample_event()["Records"])
        if doc["transaction_id"].startswith("t")
    ]
    return [samples[i % len(samples)] | {"transaction_id": f"txn-{i:05d}"} for i in range(n)]


def event_of(
    stack: LocalStack, docs: Sequence[Mapping[str, Any]], first_index: int = 0
) -> dict[str, Any]:
    entries = [KinesisEntry(d["card_id"], json.dumps(d).encode()) for d in docs]
    return kinesis_event(entries, stack.streams["FeaturesStream"], SHARD, first_index)


def count_items(stack: LocalStack, kind: str = PREDICTIONS) -> list[dict[str, Any]]:
    return [i for i in stack.scan("MonitoringTable") if i["sk"] == "COUNT" and i["kind"] == kind]


def counted(stack: LocalStack, kind: str = PREDICTIONS) -> Counts:
    total = Counts()
    for item in count_items(stack, kind):
        total.add(Counts.from_item(item))
    return total


# ----------------------------------------------------------------------------- tests


def test_the_sample_event_is_scored_and_its_stale_schema_quarantined(
    score_app: Handler,
    local_stack: LocalStack,
    card: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given
    app = score_app()
    event = sample_event()
    docs = [decode(r) for r in event["Records"]]
    valid = [d for d in docs if d["feature_schema"] == card["feature_schema"]]

    # when
    result = app.lambda_handler(event, FakeLambdaContext())

    # then
    assert result == {"batchItemFailures": []}
    predictions = local_stack.items_by("PredictionsTable", "transaction_id")
    assert set(predictions) == {d["transaction_id"] for d in valid}
    for doc in valid:
        item = predictions[doc["transaction_id"]]
        assert item["model_version"] == card["model_version"]
        assert item["event_time"] == doc["event_time"]
        assert 0.0 <= item["score"] <= 1.0 and item["latency_ms"] >= 0
        assert item["decision"] in {"approve", "review", "decline"}
    (quarantined,) = local_stack.scan("QuarantineTable")
    assert quarantined["reason"] == "unknown_feature_schema" and quarantined["stage"] == "score"
    assert "card-v0" in quarantined["message"]
    predicted, quarantined_counts = counted(local_stack), counted(local_stack, QUARANTINE)
    assert predicted.n == len(valid) and quarantined_counts.n == 1
    assert quarantined_counts.reasons == {"score/unknown_feature_schema": 1}
    assert sum(predicted.decisions.values()) == len(valid)
    out = capsys.readouterr().out
    metrics = emitted_metrics(out)
    assert metrics["RecordsScored"] == len(valid)
    assert metrics["RecordsQuarantined"] == 1 and metrics["Quarantined_unknown_feature_schema"] == 1
    assert sum(v for k, v in metrics.items() if k.startswith("Decision_")) == len(valid)
    assert "BatchInferenceMs" in metrics and "EndToEndLatencyMs" in metrics
    (line,) = [line for line in log_lines(out) if line["message"] == "batch scored"]
    assert line["model_version"] == card["model_version"]


def test_the_handlers_score_is_the_models_score(
    score_app: Handler, local_stack: LocalStack, direct_scores: Callable[..., np.ndarray]
) -> None:
    app = score_app()
    docs = feature_records(40)

    app.lambda_handler(event_of(local_stack, docs), FakeLambdaContext())

    predictions = local_stack.items_by("PredictionsTable", "transaction_id")
    stored = np.array([predictions[d["transaction_id"]]["score"] for d in docs])
    assert np.abs(stored - direct_scores([d["features"] for d in docs])).max() <= 1e-6


def test_decisions_take_the_thresholds_at_their_edges(
    score_app: Handler, local_stack: LocalStack, direct_scores: Callable[..., np.ndarray]
) -> None:
    docs = feature_records(12)
    scores = direct_scores([d["features"] for d in docs])
    distinct = np.unique(scores)
    assert distinct.size >= 3, "the sample needs three different scores"
    review, decline = distinct[-2], distinct[-1]  # exactly two records' own scores
    app = score_app(REVIEW_THRESHOLD=repr(float(review)), DECLINE_THRESHOLD=repr(float(decline)))

    app.lambda_handler(event_of(local_stack, docs), FakeLambdaContext())

    predictions = local_stack.items_by("PredictionsTable", "transaction_id")
    expected = np.where(
        scores >= decline, "decline", np.where(scores >= review, "review", "approve")
    )
    assert [predictions[d["transaction_id"]]["decision"] for d in docs] == expected.tolist()
    assert {"approve", "review", "decline"} <= set(expected.tolist())


def test_a_replay_leaves_identical_predictions_one_histogram_and_no_new_alerts(
    score_app: Handler, local_stack: LocalStack, bus: Mapping[str, Any]
) -> None:
    # given
    app = score_app(DECLINE_THRESHOLD="0.0", REVIEW_THRESHOLD="0.0")  # every record alerts
    event = event_of(local_stack, feature_records(15))
    app.lambda_handler(event, FakeLambdaContext())
    predictions = local_stack.items_by("PredictionsTable", "transaction_id")
    counts = count_items(local_stack)
    calls = CallCounter().attach(app.events, app.dynamodb)

    # when
    result = app.lambda_handler(event, FakeLambdaContext())

    # then
    assert result == {"batchItemFailures": []}
    assert local_stack.items_by("PredictionsTable", "transaction_id") == predictions
    assert count_items(local_stack) == counts
    assert {p["alert"] for p in predictions.values()} == {"sent"}
    assert calls.calls["events.PutEvents"] == 0
    assert calls.calls["dynamodb.BatchWriteItem"] == 0
    assert calls.calls["dynamodb.TransactWriteItems"] == 0
    assert len(received_alerts(bus)) == 15


def test_a_failure_in_the_middle_and_its_retry_count_every_record_once(
    score_app: Handler,
    local_stack: LocalStack,
    card: dict[str, Any],
    baseline: dict[str, Any],
    direct_scores: Callable[..., np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = score_app()
    docs = feature_records(40)
    event = event_of(local_stack, docs)
    victim = docs[17]["transaction_id"]
    real_transact = app.dynamodb.transact_write_items

    def throttled(**kwargs: Any) -> dict[str, Any]:
        """DynamoDB keeps cancelling the transaction that holds one prediction (a hot key)."""
        keys = [
            a["Put"]["Item"].get("transaction_id", {}).get("S")
            for a in kwargs["TransactItems"]
            if "Put" in a
        ]
        if victim not in keys:
            return real_transact(**kwargs)
        reasons = [{"Code": "TransactionConflict"}] * len(kwargs["TransactItems"])
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                "CancellationReasons": reasons,
            },
            "TransactWriteItems",
        )

    monkeypatch.setattr(app.dynamodb, "transact_write_items", throttled)
    monkeypatch.setattr(app.backoff, "sleep", lambda seconds: None)
    first = app.lambda_handler(event, FakeLambdaContext())

    # the victim's transaction held every record of its chunk: they all fail, nothing of
    # them is counted; Kinesis resumes at the lowest of them
    failed = failures(first)
    assert event["Records"][17]["kinesis"]["sequenceNumber"] in failed
    assert counted(local_stack).n == 40 - len(failed)
    monkeypatch.setattr(app.dynamodb, "transact_write_items", real_transact)
    retry = app.lambda_handler(from_sequence(event, min(failed, key=int)), FakeLambdaContext())

    assert failures(retry) == []
    total = counted(local_stack)
    assert total.n == 40
    # the hour's count items, found through WindowIndex, hold the histograms of the 40 once
    items = count_items(local_stack)
    found_by_hour = [
        local_stack.dynamodb.query(
            TableName=local_stack.tables["MonitoringTable"],
            IndexName="WindowIndex",
            KeyConditionExpression="window_key = :w",
            ExpressionAttributeValues={":w": {"S": key}},
        )["Count"]
        for key in {i["window_key"] for i in items}
    ]
    assert sum(found_by_hour) == len(items)
    matrix = np.array([[d["features"][n] for n in card["feature_names"]] for d in docs])
    for j, name in enumerate(card["feature_names"]):
        edges = np.array(baseline["features"][name]["edges"])
        expected = histogram(matrix[:, j], edges)
        found = total.histogram(j, len(edges) - 1)
        assert found["counts"] == expected["counts"], name
        assert found["out_of_range"] == expected["out_of_range"], name
    scores = direct_scores([d["features"] for d in docs])
    edges = np.array(baseline["score"]["edges"])
    found = total.histogram(len(card["feature_names"]), len(edges) - 1)
    assert found["counts"] == histogram(scores, edges)["counts"]
    assert len(local_stack.scan("PredictionsTable")) == 40


def test_more_than_ten_alerts_go_out_in_tens(
    score_app: Handler, local_stack: LocalStack, bus: Mapping[str, Any], card: dict[str, Any]
) -> None:
    # given
    app = score_app(DECLINE_THRESHOLD="0.0", REVIEW_THRESHOLD="0.0")
    calls = CallCounter().attach(app.events)
    docs = feature_records(25)

    # when
    result = app.lambda_handler(event_of(local_stack, docs), FakeLambdaContext())

    # then
    assert result == {"batchItemFailures": []}
    assert calls.calls["events.PutEvents"] == 3
    assert [len(p["Entries"]) for p in calls.requests("events.PutEvents")] == [10, 10, 5]
    alerts = received_alerts(bus)
    assert sorted(a["detail"]["transaction_id"] for a in alerts) == sorted(
        d["transaction_id"] for d in docs
    )
    for alert in alerts:
        assert alert["source"] == ALERT_SOURCE and alert["detail-type"] == "HighRiskTransaction"
        assert alert["detail"]["decision"] == "decline"
        assert alert["detail"]["model_version"] == card["model_version"]
        assert 0.0 <= alert["detail"]["score"] <= 1.0


def test_reviews_alert_only_when_asked(
    score_app: Handler, local_stack: LocalStack, bus: Mapping[str, Any]
) -> None:
    docs = feature_records(6)
    quiet = score_app(REVIEW_THRESHOLD="0.0", DECLINE_THRESHOLD="1.0")
    quiet.lambda_handler(event_of(local_stack, docs), FakeLambdaContext())
    assert received_alerts(bus) == []

    loud = score_app(REVIEW_THRESHOLD="0.0", DECLINE_THRESHOLD="1.0", ALERT_ON_REVIEW="true")
    more = [d | {"transaction_id": f"more-{i}"} for i, d in enumerate(docs)]
    loud.lambda_handler(event_of(local_stack, more, first_index=100), FakeLambdaContext())

    assert sorted(a["detail"]["decision"] for a in received_alerts(bus)) == ["review"] * 6


def test_a_transaction_forwarded_twice_is_not_scored_twice(
    score_app: Handler, local_stack: LocalStack, bus: Mapping[str, Any]
) -> None:
    # given
    app = score_app(DECLINE_THRESHOLD="0.0", REVIEW_THRESHOLD="0.0")
    docs = feature_records(5)
    app.lambda_handler(event_of(local_stack, docs), FakeLambdaContext())
    before = local_stack.items_by("PredictionsTable", "transaction_id")

    # when
    # preprocess crashed after its stream write: the same transactions arrive again, later
    app.lambda_handler(event_of(local_stack, docs[2:], first_index=50), FakeLambdaContext())

    # then
    assert local_stack.items_by("PredictionsTable", "transaction_id") == before
    assert len(received_alerts(bus)) == 5
    assert counted(local_stack).n == 5


def test_a_model_that_cannot_load_fails_the_init_naming_path_and_reason(
    score_app: Handler, tmp_path: Path
) -> None:
    # given
    for name in ("model_card.json", "baseline.json"):
        shutil.copy(MODEL_DIR / name, tmp_path / name)
    (tmp_path / "model.onnx").write_bytes(b"\x00 truncated")

    # when
    with pytest.raises(SystemicError) as error:
        score_app(MODEL_DIR=str(tmp_path))

    # then
    assert str(tmp_path) in str(error.value) and "model.onnx" in str(error.value)
    assert "protobuf" in str(error.value).lower()


def test_a_missing_model_dir_fails_the_init_naming_it(score_app: Handler, tmp_path: Path) -> None:
    with pytest.raises(SystemicError, match=re.escape(str(tmp_path / "absent"))):
        score_app(MODEL_DIR=str(tmp_path / "absent"))


def test_thresholds_out_of_order_fail_the_init(score_app: Handler) -> None:
    with pytest.raises(SystemicError, match="review <= decline"):
        score_app(REVIEW_THRESHOLD="0.9", DECLINE_THRESHOLD="0.5")


def test_case_2_a_replay_with_other_batch_boundaries_counts_nothing_twice(
    score_app: Handler, local_stack: LocalStack
) -> None:
    # given 120 feature records scored in batches of 10 (the issue: then replayed at 7 and at
    # 100, the per-batch histogram total went from 120 to 200)
    app = score_app()
    docs = feature_records(120)
    records = event_of(local_stack, docs)["Records"]
    for start in range(0, 120, 10):
        app.lambda_handler({"Records": records[start : start + 10]}, FakeLambdaContext())
    counts = count_items(local_stack)
    assert counted(local_stack).n == 120

    # when the stream is replayed with batches of 7, then of 100
    for size in (7, 100):
        for start in range(0, 120, size):
            result = app.lambda_handler(
                {"Records": records[start : start + size]}, FakeLambdaContext()
            )
            assert result == {"batchItemFailures": []}

    # then the count items are exactly as they were: 120 predictions, each once
    assert count_items(local_stack) == counts
    assert counted(local_stack).n == 120
