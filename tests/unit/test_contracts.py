"""The Transaction contract: what is accepted, and what is refused with which field error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from streamscore.contracts import Transaction

VALID: dict[str, Any] = {
    "transaction_id": "txn_0001-a",
    "card_id": "card_000042",
    "merchant_id": "m_17",
    "amount": 42.5,
    "currency": "EUR",
    "country": "DE",
    "mcc": "5411",
    "channel": "pos",
    "event_time": "2026-03-02T14:05:09+01:00",
}


def parse(payload: dict[str, Any]) -> Transaction:
    return Transaction.model_validate_json(json.dumps(payload))


def error_locations(payload: dict[str, Any] | str) -> set[str]:
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    with pytest.raises(ValidationError) as caught:
        Transaction.model_validate_json(raw)
    return {".".join(str(p) for p in e["loc"]) for e in caught.value.errors()}


def test_valid_transaction_parses_with_offset_and_ignores_extra_fields() -> None:
    txn = parse(VALID | {"loyalty_tier": "gold"})

    assert txn.amount == 42.5
    assert txn.event_time.utcoffset() is not None
    assert txn.event_time.utcoffset().total_seconds() == 3600  # type: ignore[union-attr]
    assert not hasattr(txn, "loyalty_tier")


def test_integer_amount_is_accepted() -> None:
    assert parse(VALID | {"amount": 7}).amount == 7.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("transaction_id", ""),
        ("transaction_id", "x" * 65),
        ("transaction_id", "has space"),
        ("card_id", 12345),
        ("amount", 0),
        ("amount", -1.0),
        ("amount", 1_000_000.01),
        ("amount", "12.00"),
        ("amount", True),
        ("currency", "eur"),
        ("currency", "XXY"),
        ("country", "XX"),
        ("country", "de"),
        ("mcc", 5411),
        ("mcc", "541"),
        ("mcc", "54a1"),
        ("channel", "web"),
        ("event_time", "2026-03-02T14:05:09"),  # no offset
        ("event_time", "yesterday"),
        ("event_time", 1767225600),
    ],
)
def test_malformed_field_is_refused_and_named(field: str, value: Any) -> None:
    assert field in error_locations(VALID | {field: value})


@pytest.mark.parametrize("field", sorted(VALID))
def test_missing_field_is_refused_and_named(field: str) -> None:
    payload = {k: v for k, v in VALID.items() if k != field}
    assert field in error_locations(payload)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_amount_is_refused(literal: str) -> None:
    raw = json.dumps(VALID).replace('"amount": 42.5', f'"amount": {literal}')
    assert literal in raw
    assert "amount" in error_locations(raw)


def test_maximum_amount_is_accepted() -> None:
    assert parse(VALID | {"amount": 1_000_000}).amount == 1_000_000.0
