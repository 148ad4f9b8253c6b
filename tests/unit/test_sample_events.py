"""events/ holds current, Lambda-shaped samples with at least one invalid record each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, KinesisStreamEvent
from pydantic import ValidationError

from embedded.sample_events import render, sample_events
from streamscore.core.aggregation import deaggregate, is_aggregated
from streamscore.core.errors import InvalidRecordError
from streamscore.labels.contract import Label
from streamscore.preprocess.contracts import Transaction

EVENTS = Path(__file__).resolve().parents[2] / "events"
KINESIS_SAMPLES = [
    "preprocess_transactions.json",
    "preprocess_aggregated.json",
    "score_features.json",
    "labels.json",
]


@pytest.fixture(scope="module")
def generated() -> dict[str, dict]:
    return sample_events()


def test_committed_events_are_what_the_generator_makes(generated: dict[str, dict]) -> None:
    committed = {p.name for p in EVENTS.glob("*.json")}

    assert committed == set(generated), "run `make events` and commit events/"
    for name, event in generated.items():
        assert (EVENTS / name).read_text() == render(event), f"{name} is stale: run `make events`"


@pytest.mark.parametrize("name", KINESIS_SAMPLES)
def test_kinesis_samples_have_lambdas_shape(name: str) -> None:
    event = KinesisStreamEvent(json.loads((EVENTS / name).read_text()))
    records = list(event.records)

    assert len(records) >= 5
    sequences = [int(r.kinesis.sequence_number) for r in records]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    for record in records:
        assert record.event_source == "aws:kinesis"
        assert record.event_name == "aws:kinesis:record"
        assert record.event_source_arn.startswith("arn:aws:kinesis:")
        assert len(record.kinesis.sequence_number) == 56
        assert record.event_id == f"shardId-000000000000:{record.kinesis.sequence_number}"
        assert record.kinesis.data_as_bytes()  # valid base64
        assert record.kinesis.approximate_arrival_timestamp > 1.7e9


def test_preprocess_sample_mixes_valid_and_invalid_transactions() -> None:
    event = KinesisStreamEvent(json.loads((EVENTS / "preprocess_transactions.json").read_text()))
    valid = invalid = 0
    for record in event.records:
        try:
            Transaction.model_validate_json(record.kinesis.data_as_bytes())
            valid += 1
        except ValidationError:
            invalid += 1

    assert valid >= 5
    assert invalid >= 1


def test_aggregated_sample_holds_kpl_aggregates_good_and_bad() -> None:
    event = KinesisStreamEvent(json.loads((EVENTS / "preprocess_aggregated.json").read_text()))
    plain = valid = invalid = bad_aggregates = 0
    for record in event.records:
        data = record.kinesis.data_as_bytes()
        if not is_aggregated(data):
            plain += 1
            continue
        try:
            users = deaggregate(data)
        except InvalidRecordError as error:
            assert error.reason == "invalid_aggregate"
            bad_aggregates += 1
            continue
        for user in users:
            try:
                Transaction.model_validate_json(user.data)
                valid += 1
            except ValidationError:
                invalid += 1

    assert plain >= 1 and bad_aggregates >= 1
    assert valid >= 5 and invalid >= 1


def test_score_sample_has_a_schema_the_model_does_not_know() -> None:
    event = KinesisStreamEvent(json.loads((EVENTS / "score_features.json").read_text()))
    schemas = [json.loads(r.kinesis.data_as_bytes())["feature_schema"] for r in event.records]

    assert schemas.count("card-v1") >= 5
    assert any(s != "card-v1" for s in schemas)


def test_labels_sample_has_valid_labels_a_reversal_and_a_record_that_is_no_label() -> None:
    event = KinesisStreamEvent(json.loads((EVENTS / "labels.json").read_text()))
    valid, invalid = [], 0
    for record in event.records:
        try:
            valid.append(Label.model_validate_json(record.kinesis.data_as_bytes()))
        except ValidationError:
            invalid += 1

    assert len(valid) >= 5 and invalid >= 1
    by_txn: dict[str, list[Label]] = {}
    for label in valid:
        by_txn.setdefault(label.transaction_id, []).append(label)
    reversed_ = [ls for ls in by_txn.values() if {"fraud", "legit"} <= {x.label for x in ls}]
    assert reversed_, "no transaction whose label changes"
    assert all(
        r.kinesis.partition_key == json.loads(r.kinesis.data_as_bytes())["transaction_id"]
        for r in event.records
    )


def test_scheduled_sample_is_an_eventbridge_scheduled_event() -> None:
    event = EventBridgeEvent(json.loads((EVENTS / "drift_check_scheduled.json").read_text()))

    assert event.detail_type == "Scheduled Event"
    assert event.source == "aws.events"
    assert event.resources[0].startswith("arn:aws:events:")
