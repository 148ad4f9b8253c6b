"""KPL aggregated records through the real handlers on moto: each user record processed once.

One Kinesis record holds several user records (streamscore.core.aggregation). Preprocess applies,
quarantines and forwards each on its own, under its own record id (`…#sequence#index`); a
failure fails the whole Kinesis record, Lambda redelivers it whole, and the ledger and the
conditional prediction writes absorb the user records already done. The events are built by
the project's own writer (embedded.aggregation), checked against the reference
implementation in tests/unit/core/test_aggregation.py.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from embedded.aggregation import aggregated_entry, corrupt_digest
from embedded.lambda_events import KinesisEntry, kinesis_event
from streamscore.core.aggregation import UserRecord, deaggregate, is_aggregated
from streamscore.core.errors import InvalidRecordError
from streamscore.core.monitoring import PREDICTIONS, QUARANTINE, Counts
from streamscore.preprocess.contracts import Transaction
from streamscore.preprocess.features import replay_features
from support.aws_stack import REGION, LocalStack, hash_keys
from support.builders import failures, from_sequence, sequences
from support.flaky import FlakyDynamoDB, FlakyKinesis
from support.handler_output import emitted_metrics
from support.lambda_runtime import FakeLambdaContext
from support.wiring import Wired, wire

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
MODEL_DIR = ROOT / "models" / "artifacts"
SHARD = "shardId-000000000000"
T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=timezone(timedelta(hours=1)))
ARRIVAL = 1_772_442_000.25
INJECTED = {"ErrorCode": "InternalFailure", "ErrorMessage": "injected"}


# ----------------------------------------------------------------------------- records


def transaction(index: int, card: str, **overrides: Any) -> dict[str, Any]:
    return {
        "transaction_id": f"agg-{index:04d}",
        "card_id": card,
        "merchant_id": f"m_{index % 5}",
        "amount": 12.5 + index * 31 % 300,
        "currency": "EUR",
        "country": "DE",
        "mcc": "5411",
        "channel": ("pos", "ecom")[index % 2],
        "event_time": (T0 + timedelta(minutes=index)).isoformat(timespec="seconds"),
    } | overrides


def user(txn: Mapping[str, Any]) -> UserRecord:
    return UserRecord(str(txn["card_id"]), json.dumps(txn).encode())


def plain(txn: Mapping[str, Any]) -> KinesisEntry:
    return KinesisEntry(str(txn["card_id"]), json.dumps(txn).encode(), arrival=ARRIVAL)


def aggregate(*txns: Mapping[str, Any] | UserRecord) -> KinesisEntry:
    users = [t if isinstance(t, UserRecord) else user(t) for t in txns]
    return aggregated_entry(users, ARRIVAL)


def transactions_event(stack: LocalStack, *entries: KinesisEntry) -> dict[str, Any]:
    return kinesis_event(entries, stack.streams["TransactionsStream"], SHARD)


def record_id(stack: LocalStack, sequence: str, index: int | None = None) -> str:
    base = f"{stack.streams['TransactionsStream']}#{SHARD}#{sequence}"
    return base if index is None else f"{base}#{index}"


# ----------------------------------------------------------------------------- handlers


@pytest.fixture
def handlers(
    load_handler: Any, local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Wired]:
    """The preprocess and score handlers, each with the environment template.yaml gives it."""
    bus = "streamscore-EventBus-local"
    boto3.client("events", region_name=REGION).create_event_bus(Name=bus)
    environments = {
        "preprocess": local_stack.function_environment("PreprocessFunction"),
        "score": local_stack.function_environment(
            "ScoreFunction", {"EVENT_BUS_NAME": bus, "MODEL_DIR": str(MODEL_DIR)}
        ),
    }
    return {
        stage: wire(load_handler(f"streamscore.handlers.{stage}", environment), environment)
        for stage, environment in environments.items()
    }


def invoke(app: Wired, event: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = app.lambda_handler(dict(event), FakeLambdaContext())
    return result


def score_features_stream(stack: LocalStack, score: ModuleType) -> dict[str, Any]:
    """Deliver everything on FeaturesStream to the score function, at its own positions."""
    entries = [
        KinesisEntry(r.partition_key, r.data, sequence_number=r.sequence_number, arrival=ARRIVAL)
        for r in stack.read_stream("FeaturesStream")
    ]
    return invoke(score, kinesis_event(entries, stack.streams["FeaturesStream"], SHARD))


def forwarded(stack: LocalStack) -> dict[str, list[dict[str, Any]]]:
    by_txn: dict[str, list[dict[str, Any]]] = {}
    for record in stack.read_stream("FeaturesStream"):
        body = record.json()
        by_txn.setdefault(body["transaction_id"], []).append(body)
    return by_txn


def counted(stack: LocalStack, kind: str) -> Counts:
    total = Counts()
    for item in stack.scan("MonitoringTable"):
        if item["sk"] == "COUNT" and item["kind"] == kind:
            total.add(Counts.from_item(item))
    return total


def txn_counts(stack: LocalStack) -> dict[str, int]:
    return {c: s["txn_count"] for c, s in stack.items_by("EntityStateTable", "card_id").items()}


def expected_features(txns: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """The training path's features (in-memory state, event order): what must be stored."""
    parsed = [Transaction.model_validate_json(json.dumps(t)) for t in txns]
    return {t.transaction_id: f for t, f in zip(parsed, replay_features(parsed), strict=True)}


# ----------------------------------------------------------------------------- tests


def test_an_aggregate_of_three_valid_transactions_is_scored_as_three(
    local_stack: LocalStack, handlers: dict[str, Wired], capsys: pytest.CaptureFixture[str]
) -> None:
    # given: one Kinesis record holding three transactions of two cards
    txns = [transaction(1, "card_a"), transaction(2, "card_b"), transaction(3, "card_a")]
    event = transactions_event(local_stack, aggregate(*txns))
    (sequence,) = sequences(event)

    # when
    capsys.readouterr()
    result = invoke(handlers["preprocess"], event)
    metrics = emitted_metrics(capsys.readouterr().out)

    # then: three transactions applied, stored and forwarded, nothing quarantined
    assert result == {"batchItemFailures": []}
    assert local_stack.scan("QuarantineTable") == []
    assert metrics["RecordsIn"] == 3 and metrics["TransactionsApplied"] == 3
    features = local_stack.items_by("FeaturesTable", "transaction_id")
    assert {k: v["features"] for k, v in features.items()} == expected_features(txns)
    assert txn_counts(local_stack) == {"card_a": 2, "card_b": 1}
    on_stream = forwarded(local_stack)
    assert [on_stream[t["transaction_id"]][0]["source_sub_sequence_number"] for t in txns] == [
        0,
        1,
        2,
    ]
    assert {b[0]["source_sequence_number"] for b in on_stream.values()} == {sequence}

    # when: the score function reads what preprocess forwarded
    scored = score_features_stream(local_stack, handlers["score"])

    # then: three predictions, counted once each
    assert scored == {"batchItemFailures": []}
    predictions = local_stack.items_by("PredictionsTable", "transaction_id")
    assert set(predictions) == {t["transaction_id"] for t in txns}
    assert counted(local_stack, PREDICTIONS).n == 3


def test_one_invalid_user_record_is_quarantined_alone_under_its_own_record_id(
    local_stack: LocalStack, handlers: dict[str, Wired]
) -> None:
    # given: the middle user record has a currency the contract rejects
    good = [transaction(1, "card_a"), transaction(3, "card_b")]
    bad = json.dumps(transaction(2, "card_bad", currency="QQQ")).encode()
    event = transactions_event(
        local_stack, aggregate(good[0], UserRecord("card_bad", bad), good[1])
    )
    (sequence,) = sequences(event)

    # when
    result = invoke(handlers["preprocess"], event)

    # then: only that user record is quarantined, keyed by its own record id
    assert result == {"batchItemFailures": []}
    quarantine = local_stack.items_by("QuarantineTable", "record_id")
    assert set(quarantine) == {record_id(local_stack, sequence, 1)}
    item = quarantine[record_id(local_stack, sequence, 1)]
    assert item["reason"] == "invalid_field" and item["stage"] == "preprocess"
    assert "currency" in {d["field"] for d in item["details"]}
    assert item["sequence_number"] == sequence
    assert base64.b64decode(item["payload_b64"]) == bad  # its own bytes, not the aggregate's
    assert item["payload_bytes"] == len(bad)
    assert set(local_stack.items_by("FeaturesTable", "transaction_id")) == {
        t["transaction_id"] for t in good
    }
    assert counted(local_stack, QUARANTINE).reasons == {"preprocess/invalid_field": 1}


def test_an_aggregate_with_a_corrupt_digest_is_quarantined_whole_with_the_reason(
    local_stack: LocalStack, handlers: dict[str, Wired]
) -> None:
    # given: plain records around an aggregate whose MD5 digest does not match
    inside = [transaction(i, f"card_{i}") for i in (2, 3, 4)]
    damaged = aggregate(*inside)
    damaged_data = corrupt_digest(damaged.data)
    around = [transaction(1, "card_x"), transaction(5, "card_y")]
    event = transactions_event(
        local_stack,
        plain(around[0]),
        KinesisEntry(damaged.partition_key, damaged_data, arrival=ARRIVAL),
        plain(around[1]),
    )
    sequence = sequences(event)[1]

    # when
    result = invoke(handlers["preprocess"], event)

    # then: one quarantine item for the Kinesis record, the batch goes on around it
    assert result == {"batchItemFailures": []}
    quarantine = local_stack.items_by("QuarantineTable", "record_id")
    assert set(quarantine) == {record_id(local_stack, sequence)}
    item = quarantine[record_id(local_stack, sequence)]
    assert item["reason"] == "invalid_aggregate"
    assert "MD5" in item["message"]
    assert item["payload_bytes"] == len(damaged_data)
    assert set(local_stack.items_by("FeaturesTable", "transaction_id")) == {
        t["transaction_id"] for t in around
    }
    assert counted(local_stack, QUARANTINE).reasons == {"preprocess/invalid_aggregate": 1}


def test_the_same_aggregate_delivered_twice_duplicates_nothing(
    local_stack: LocalStack, handlers: dict[str, Wired]
) -> None:
    # given: an aggregate with a bad user record, and a plain record after it
    txns = [transaction(1, "card_a"), transaction(2, "card_b"), transaction(3, "card_a")]
    event = transactions_event(
        local_stack,
        aggregate(txns[0], UserRecord("card_a", b"not json"), txns[1], txns[2]),
        plain(transaction(4, "card_b")),
    )
    txns.append(transaction(4, "card_b"))

    # when: Lambda delivers the batch twice
    first = invoke(handlers["preprocess"], event)
    once = {
        name: local_stack.scan(name)
        for name in ("FeaturesTable", "EntityStateTable", "QuarantineTable", "MonitoringTable")
    }
    second = invoke(handlers["preprocess"], event)

    # then: no table changed; the stream carries identical copies
    assert first == second == {"batchItemFailures": []}
    for name, items in once.items():
        assert local_stack.scan(name) == items, name
    assert txn_counts(local_stack) == {"card_a": 2, "card_b": 2}
    on_stream = forwarded(local_stack)
    assert set(on_stream) == {t["transaction_id"] for t in txns}
    assert all(len(c) == 2 and c[0] == c[1] for c in on_stream.values())
    assert counted(local_stack, QUARANTINE).n == 1

    # when: the score function reads both copies
    assert score_features_stream(local_stack, handlers["score"]) == {"batchItemFailures": []}

    # then: one prediction per transaction
    assert len(local_stack.scan("PredictionsTable")) == 4
    assert counted(local_stack, PREDICTIONS).n == 4


@pytest.mark.parametrize("fault", ["forward", "state"])
def test_a_failure_inside_an_aggregate_redelivers_it_whole_and_duplicates_nothing(
    local_stack: LocalStack,
    handlers: dict[str, Wired],
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    # given: the aggregate's second user record (card_b) cannot be finished: its feature
    # record cannot reach FeaturesStream, or its card's state cannot be written
    txns = [
        transaction(0, "card_a"),
        transaction(1, "card_a"),
        transaction(2, "card_b"),
        transaction(3, "card_c"),
        transaction(4, "card_c"),
    ]
    event = transactions_event(local_stack, plain(txns[0]), aggregate(*txns[1:4]), plain(txns[4]))
    aggregate_sequence = sequences(event)[1]
    app = handlers["preprocess"]
    if fault == "forward":
        failing = {"agg-0002": None}
        app.use(kinesis=FlakyKinesis(app.kinesis, failing, error=INJECTED))
    else:
        # every item of card_b (its state, its feature item) handed back unprocessed
        unprocessed = {"card_b": None}
        app.use(
            dynamodb=FlakyDynamoDB(
                app.dynamodb, hash_keys(local_stack), unprocessed, write_key="card_id"
            )
        )

    # when
    result = invoke(app, event)

    # then: the Kinesis record is reported once, whichever of its user records failed
    assert failures(result) == [aggregate_sequence]
    assert txn_counts(local_stack)["card_a"] == 2  # its sibling of card_a went through

    # when: Kinesis redelivers from the aggregate on, to a healthy function
    app.use()
    retry = from_sequence(event, aggregate_sequence)
    assert invoke(app, retry) == {"batchItemFailures": []}

    # then: every transaction applied exactly once, with the features of the training path
    assert txn_counts(local_stack) == {"card_a": 2, "card_b": 1, "card_c": 2}
    features = local_stack.items_by("FeaturesTable", "transaction_id")
    assert {k: v["features"] for k, v in features.items()} == expected_features(txns)
    on_stream = forwarded(local_stack)
    assert set(on_stream) == {t["transaction_id"] for t in txns}
    for copies in on_stream.values():
        assert all(c == copies[0] for c in copies)
    assert local_stack.scan("QuarantineTable") == []

    # when: the score function reads everything, copies included
    assert score_features_stream(local_stack, handlers["score"]) == {"batchItemFailures": []}

    # then
    assert len(local_stack.scan("PredictionsTable")) == len(txns)
    assert counted(local_stack, PREDICTIONS).n == len(txns)


def test_an_aggregated_features_record_is_scored_per_user_record_and_once(
    local_stack: LocalStack, handlers: dict[str, Wired]
) -> None:
    # given: feature records preprocess made, put on FeaturesStream as one aggregate
    txns = [transaction(i, f"card_{i % 2}") for i in range(3)]
    invoke(handlers["preprocess"], transactions_event(local_stack, *map(plain, txns)))
    docs = [r.data for r in local_stack.read_stream("FeaturesStream")]
    entry = aggregated_entry(
        [UserRecord(json.loads(d)["card_id"], d) for d in docs], ARRIVAL, "7" * 56
    )
    event = kinesis_event([entry], local_stack.streams["FeaturesStream"], SHARD)

    # when: delivered twice
    first, second = (invoke(handlers["score"], event) for _ in range(2))

    # then: one prediction per user record, each naming its own user record
    assert first == second == {"batchItemFailures": []}
    predictions = local_stack.items_by("PredictionsTable", "transaction_id")
    stream = local_stack.streams["FeaturesStream"]
    assert {p["features_record_id"] for p in predictions.values()} == {
        f"{stream}#{SHARD}#{'7' * 56}#{i}" for i in range(3)
    }
    assert counted(local_stack, PREDICTIONS).n == 3


def test_the_aggregated_sample_event_is_preprocessed_user_record_by_user_record(
    local_stack: LocalStack, handlers: dict[str, Wired], capsys: pytest.CaptureFixture[str]
) -> None:
    # given: events/preprocess_aggregated.json, judged here with the reader alone
    event = json.loads((EVENTS / "preprocess_aggregated.json").read_text())
    stream = event["Records"][0]["eventSourceARN"].rsplit("/", 1)[1]
    valid: list[Transaction] = []
    bad_ids: dict[str, str] = {}  # record id -> expected reason
    user_records = 0
    for raw in event["Records"]:
        sequence = raw["kinesis"]["sequenceNumber"]
        data = base64.b64decode(raw["kinesis"]["data"])
        if not is_aggregated(data):
            valid.append(Transaction.model_validate_json(data))
            user_records += 1
            continue
        try:
            users = deaggregate(data)
        except InvalidRecordError as error:
            bad_ids[f"{stream}#{SHARD}#{sequence}"] = error.reason
            user_records += 1
            continue
        for index, one in enumerate(users):
            user_records += 1
            try:
                valid.append(Transaction.model_validate_json(one.data))
            except ValueError:
                bad_ids[f"{stream}#{SHARD}#{sequence}#{index}"] = "invalid"
    assert len(valid) >= 5 and "invalid_aggregate" in bad_ids.values()

    # when
    capsys.readouterr()
    result = invoke(handlers["preprocess"], event)
    metrics = emitted_metrics(capsys.readouterr().out)

    # then: every user record is applied or quarantined under its own id, none failed
    assert result == {"batchItemFailures": []}
    quarantine = local_stack.items_by("QuarantineTable", "record_id")
    assert set(quarantine) == set(bad_ids)
    for key, reason in bad_ids.items():
        if reason == "invalid_aggregate":
            assert quarantine[key]["reason"] == reason
    assert set(local_stack.items_by("FeaturesTable", "transaction_id")) == {
        t.transaction_id for t in valid
    }
    assert metrics["RecordsIn"] == user_records
    assert metrics["RecordsForwarded"] + metrics["RecordsQuarantined"] == user_records
    assert Counter(t.card_id for t in valid) == Counter(txn_counts(local_stack))
