"""LabelsFunction's handler against moto with the sample event: labels, quality counts, replays.

The sample (events/labels.json) labels the score sample's transactions: chargebacks of the
frauds, one transaction reviewed legit, charged back, then reversed, a label of a transaction
never scored, and a record that is no label. Predictions for the scored ones are put first, as
ScoreFunction would have written them.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streamscore.aws.dynamodb import deserialize
from streamscore.core.monitoring import COUNT, NO_VERSION, QUALITY, Counts
from streamscore.core.quality import quality_bin
from streamscore.core.settings import load_settings
from streamscore.labels.settings import LabelSettings
from support.aws_stack import LocalStack
from support.builders import failures, from_sequence
from support.handler_output import emitted_metrics
from support.lambda_runtime import FakeLambdaContext
from support.wiring import Wired, moto_clients

ROOT = Path(__file__).resolve().parents[2]
EVENT = json.loads((ROOT / "events" / "labels.json").read_text())
SCORED_AT = "2026-03-07T10:00:00.000+00:00"


def labels_in(event: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for record in event["Records"]:
        doc = json.loads(base64.b64decode(record["kinesis"]["data"]))
        if doc.get("label") in ("fraud", "legit"):
            out.append(doc)
    return out


@pytest.fixture
def labels_app(load_handler: Any, local_stack: LocalStack) -> Wired:
    environment = local_stack.function_environment("LabelsFunction")
    module = load_handler("streamscore.handlers.labels", environment)
    return Wired(module, load_settings(LabelSettings, environment), moto_clients("dynamodb"))


@pytest.fixture
def predictions(local_stack: LocalStack) -> dict[str, dict[str, Any]]:
    """A prediction for every labelled transaction but the one never scored."""
    ids = sorted({x["transaction_id"] for x in labels_in(EVENT)} - {"never_scored_example"})
    stored = {}
    for n, txn in enumerate(ids):
        item = {
            "transaction_id": txn,
            "score": [0.002, 0.04, 0.3, 0.95][n % 4],
            "decision": ["approve", "review", "decline", "decline"][n % 4],
            "model_version": "cardfraud-test",
            "event_time": f"2026-03-0{1 + n % 5}T09:15:00+00:00",
            "scored_at": SCORED_AT,
            "features_record_id": f"x#{n}",
        }
        local_stack.dynamodb.put_item(
            TableName=local_stack.resource_name("PredictionsTable"),
            Item={k: _wire(v) for k, v in item.items()},
        )
        stored[txn] = item
    return stored


def _wire(value: Any) -> dict[str, Any]:
    return {"N": repr(value)} if isinstance(value, float) else {"S": value}


def scan(local_stack: LocalStack, logical_id: str) -> list[dict[str, Any]]:
    table = local_stack.resource_name(logical_id)
    items = local_stack.dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return [deserialize(item) for item in items]


def quality_counts(local_stack: LocalStack) -> dict[str, Counts]:
    """Quality counts per model version (hours, shards and slots summed)."""
    totals: dict[str, Counts] = {}
    for item in scan(local_stack, "MonitoringTable"):
        if item.get("sk") == COUNT and item.get("kind") == QUALITY:
            totals.setdefault(item["model_version"], Counts()).add(Counts.from_item(item))
    return totals


def expected_labels() -> dict[str, dict[str, Any]]:
    """Each transaction's label in force: its latest."""
    latest: dict[str, dict[str, Any]] = {}
    for x in labels_in(EVENT):
        kept = latest.get(x["transaction_id"])
        if kept is None or x["labelled_at"] > kept["labelled_at"]:
            latest[x["transaction_id"]] = x
    return latest


def test_the_sample_labels_its_transactions_and_counts_each_once(
    labels_app: Wired,
    local_stack: LocalStack,
    predictions: dict[str, dict[str, Any]],
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # when: the sample a record at a time (each label replacing the one before), then all of
    # it again in one batch, then its second half again
    for record in EVENT["Records"]:
        assert failures(labels_app.lambda_handler({"Records": [record]}, lambda_context)) == []
    metrics = emitted_metrics(capsys.readouterr().out)
    counts_once = quality_counts(local_stack)
    assert failures(labels_app.lambda_handler(EVENT, lambda_context)) == []
    half = EVENT["Records"][len(EVENT["Records"]) // 2]["kinesis"]["sequenceNumber"]
    assert failures(labels_app.lambda_handler(from_sequence(EVENT, half), lambda_context)) == []
    again = emitted_metrics(capsys.readouterr().out)
    assert again.get("LabelsWritten", 0) == 0 and again["LabelsUnchanged"] > 0

    # then: each transaction holds its latest label, joined to its prediction
    stored = {x["transaction_id"]: x for x in scan(local_stack, "LabelsTable")}
    latest = expected_labels()
    assert {t: x["label"] for t, x in stored.items()} == {t: x["label"] for t, x in latest.items()}
    for txn, item in stored.items():
        if txn == "never_scored_example":
            assert item["count_version"] == NO_VERSION and "score" not in item
        else:
            assert item["model_version"] == "cardfraud-test"
            assert item["score"] == predictions[txn]["score"]
    # the reversed one replaced what it was
    reversed_ = next(x for x in stored.values() if x["source"] == "reversal")
    assert reversed_["label"] == "legit" and reversed_["replaces"].endswith("#1#chargeback")

    # and the counts are the labels in force, once, whatever was delivered again
    want = Counter()
    for txn, x in latest.items():
        if txn == "never_scored_example":
            continue
        mark = "f" if x["label"] == "fraud" else "l"
        decision = predictions[txn]["decision"]
        want[f"{mark}d_{decision}"] += 1
        if decision != "decline":  # declines are not binned
            want[f"{mark}{decision[0]}{quality_bin(predictions[txn]['score'])}"] += 1
    counts = quality_counts(local_stack)
    assert counts == counts_once
    assert +counts["cardfraud-test"].quality == want
    assert counts["cardfraud-test"].n == len(latest) - 1
    assert counts[NO_VERSION].quality == Counter({"u_fraud": 1})

    # the record that is no label is quarantined with its reason
    (bad,) = scan(local_stack, "QuarantineTable")
    assert (bad["stage"], bad["reason"]) == ("labels", "invalid_field")
    assert metrics["RecordsQuarantined"] == 1 and metrics["LabelsReplaced"] == 2
    assert metrics["LabelsWritten"] == len(latest) + 2  # the reviewed one's three labels
