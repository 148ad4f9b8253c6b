"""No card number stored or logged, and realistic ids scored: the preprocess and score handlers on moto.

The Luhn check, the PAN finder and the quarantine item's masking are tested on their own
in tests/unit/core/test_identifiers.py; here a card number in an id is quarantined and
appears nowhere in the stored item, the tables, the stream or the logs.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from types import ModuleType
from typing import Any

import boto3
import pytest

from embedded.lambda_events import KinesisEntry, kinesis_event
from support.aws_stack import MODEL_DIR, REGION
from support.lambda_runtime import FakeLambdaContext
from support.pans import REALISTIC_MERCHANTS, digits_only, holds_any, unseparated
from support.wiring import Wired, wire

SHARD = "shardId-000000000000"
CET = timezone(timedelta(hours=1))
T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=CET)


def transaction(index: int, card: str, merchant: str, **overrides: Any) -> dict[str, Any]:
    return {
        "transaction_id": f"id-{index:05d}",
        "card_id": card,
        "merchant_id": merchant,
        "amount": 12.5 + index,
        "currency": "EUR",
        "country": "DE",
        "mcc": "5812",
        "channel": "pos",
        "event_time": (T0 + timedelta(minutes=index)).isoformat(timespec="seconds"),
    } | overrides


def transactions_event(stack: Any, txns: list[dict[str, Any]]) -> dict[str, Any]:
    entries = [
        KinesisEntry(str(t["card_id"]), json.dumps(t, ensure_ascii=False).encode()) for t in txns
    ]
    return kinesis_event(entries, stack.streams["TransactionsStream"], SHARD)


def invoke(app: Wired, event: Mapping[str, Any], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the handler; what it printed (log lines and EMF metrics)."""
    capsys.readouterr()
    result = app.lambda_handler(dict(event), FakeLambdaContext())
    assert result == {"batchItemFailures": []}
    return capsys.readouterr().out


@pytest.fixture
def preprocess_app(load_handler: Any, local_stack: Any, capsys: pytest.CaptureFixture[str]) -> Any:
    # capsys before the import, so the handler's Logger writes where capsys reads
    def load(**overrides: str) -> Wired:
        environment = local_stack.function_environment("PreprocessFunction", overrides)
        return wire(load_handler("streamscore.handlers.preprocess", environment), environment)

    return load


@pytest.fixture
def score_app(
    load_handler: Any, local_stack: Any, capsys: pytest.CaptureFixture[str]
) -> ModuleType:
    bus = "streamscore-EventBus-local"
    boto3.client("events", region_name=REGION).create_event_bus(Name=bus)
    environment = local_stack.function_environment(
        "ScoreFunction", {"EVENT_BUS_NAME": bus, "MODEL_DIR": str(MODEL_DIR)}
    )
    return wire(load_handler("streamscore.handlers.score", environment), environment)


def test_realistic_ids_are_accepted_and_scored(
    local_stack: Any, preprocess_app: Any, score_app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: real-world merchant ids, Unicode card tokens (one of the most bytes allowed),
    # a Luhn-invalid 16-digit token, and padded ids
    cards = ["tok_Zürich_01", "カード-0002", "4111111111111112", "🙂" * 128, "  card_pad  "]
    txns = [
        transaction(i, cards[i % len(cards)], merchant)
        for i, merchant in enumerate([*REALISTIC_MERCHANTS, "  MID000123    "])
    ]
    preprocess = preprocess_app()

    # when
    invoke(preprocess, transactions_event(local_stack, txns), capsys)
    forwarded = local_stack.read_stream("FeaturesStream")
    score_event = kinesis_event(
        [KinesisEntry(r.partition_key, r.data) for r in forwarded],
        local_stack.streams["FeaturesStream"],
        SHARD,
    )
    invoke(score_app, score_event, capsys)

    # then: nothing quarantined, every transaction scored, state kept per (stripped) card
    assert local_stack.scan("QuarantineTable") == []
    assert {r.json()["transaction_id"] for r in forwarded} == {t["transaction_id"] for t in txns}
    assert {r.partition_key for r in forwarded} == {c.strip() for c in cards}
    predictions = local_stack.items_by("PredictionsTable", "transaction_id")
    assert set(predictions) == {t["transaction_id"] for t in txns}
    states = local_stack.items_by("EntityStateTable", "card_id")
    assert set(states) == {c.strip() for c in cards}
    last_merchants = {s["last_merchant_id"] for s in states.values()}
    assert last_merchants <= {*REALISTIC_MERCHANTS, "MID000123"}
    assert "MID000123" in last_merchants  # the padded merchant, stripped


@pytest.mark.parametrize("field", ["card_id", "merchant_id", "transaction_id"])
def test_a_card_number_in_an_id_is_quarantined_and_never_stored_or_logged(
    field: str,
    local_stack: Any,
    preprocess_app: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given: a record whose id is a card number (as typed), among good ones; the operator
    # has asked Powertools to log every event
    typed = {"card_id": "4111 1111 1111 1111", "merchant_id": "5555-5555-5555-4444"}
    pan = typed.get(field, "3782-822463-10005")
    bad = transaction(1, "card_good", "ACME #12", **{field: pan})
    txns = [transaction(0, "card_good", "ACME #12"), bad, transaction(2, "card_good", "MCD:1234")]
    event = transactions_event(local_stack, txns)
    app = preprocess_app(POWERTOOLS_LOGGER_LOG_EVENT="true", POWERTOOLS_LOG_LEVEL="DEBUG")

    # when
    printed = invoke(app, event, capsys)
    printed += caplog.text
    assert "batch preprocessed" in printed, "the handler's log lines were not captured"

    # then: quarantined with the rule named, not the value
    (item,) = local_stack.scan("QuarantineTable")
    assert item["reason"] == "card_number_in_id"
    assert [(d["field"], d["type"]) for d in item["details"]] == [(field, "card_number_in_id")]
    assert item["payload_masked"] is True
    assert json.loads(base64.b64decode(item["payload_b64"]))[field] == re.sub(r"\d", "*", pan)
    # nowhere in the item, the payload decoded included, nor in anything printed
    assert not holds_any(item, [digits_only(pan)])
    assert digits_only(pan) not in unseparated(printed)
    assert pan not in printed
    assert event["Records"][1]["kinesis"]["data"] not in printed
    # and nowhere in the tables and the stream the good records went to
    for logical_id in ("FeaturesTable", "EntityStateTable", "MonitoringTable"):
        stored = json.dumps(local_stack.scan(logical_id), ensure_ascii=False, default=str)
        assert digits_only(pan) not in unseparated(stored)
    assert len(local_stack.read_stream("FeaturesStream")) == 2
