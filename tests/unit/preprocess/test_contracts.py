"""The Transaction contract: what is accepted, and what is refused with which field error."""

from __future__ import annotations

import json
import sys
import unicodedata
from typing import Any

import pytest
from pydantic import ValidationError

from streamscore.preprocess.contracts import SPACE_SEPARATORS, Transaction

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


# ----------------------------------------------------------------------------- card and merchant ids


def field_errors(payload: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, error type, message) of every error, as the quarantine item keeps them."""
    with pytest.raises(ValidationError) as caught:
        Transaction.model_validate_json(json.dumps(payload))
    return [
        (".".join(str(p) for p in e["loc"]), e["type"], e["msg"])
        for e in caught.value.errors(include_input=False, include_url=False)
    ]


@pytest.mark.parametrize(
    "merchant_id",
    [
        "ACME #12",
        "MCD:1234",
        "Café Zürich",
        "7-ELEVEN 4711",
        "ファミリーマート\u3000渋谷店",
        "星巴克 (上海)",
        "🍕 Pizza Napoli 🇮🇹",  # a flag: two regional indicators
        "👩\u200d🍳 Chef's table",  # a ZWJ emoji sequence
        "\u0645\u06cc\u200c\u062e\u0627\u0646\u0647",  # Persian "tavern", with its zero-width non-joiner
        "O'Brien's Pub / Dublin 2",
        "x" * 128,
    ],
)
def test_merchant_ids_as_payments_carry_them_are_accepted(merchant_id: str) -> None:
    assert parse(VALID | {"merchant_id": merchant_id}).merchant_id == merchant_id


@pytest.mark.parametrize(
    "card_id", ["tok_Zürich-01", "カード 0002", "4111111111111112", "🙂" * 128]
)
def test_card_tokens_are_accepted_and_fit_every_key_they_become(card_id: str) -> None:
    txn = parse(VALID | {"card_id": card_id})

    assert txn.card_id == card_id
    # EntityStateTable's partition key: at most 2048 bytes; FeaturesStream's partition key:
    # at most 256 characters, whether counted in code points or UTF-16 code units
    assert len(txn.card_id.encode("utf-8")) <= 2048
    assert len(txn.card_id) <= 256
    assert len(txn.card_id.encode("utf-16-le")) // 2 <= 256


def test_padding_spaces_are_stripped_from_card_and_merchant_ids() -> None:
    txn = parse(VALID | {"card_id": " card_7 ", "merchant_id": "MID123\u3000\u00a0   "})

    assert (txn.card_id, txn.merchant_id) == ("card_7", "MID123")


@pytest.mark.parametrize("field", ["card_id", "merchant_id"])
@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        ("", "string_too_short"),
        ("   ", "string_too_short"),
        ("x" * 129, "string_too_long"),
        ("ACME\x00", "id_character"),  # Cc: NUL
        ("AC\tME", "id_character"),  # Cc: tab
        ("ACME\n#12", "id_character"),  # Cc: line feed
        ("ACME\x7f", "id_character"),  # Cc: DEL
        ("ACME\x85", "id_character"),  # Cc: C1 next line
        ("AC\u200bME", "id_character"),  # Cf: zero-width space
        ("\ufeffACME", "id_character"),  # Cf: byte-order mark
        ("ACME\u202e21#", "id_character"),  # Cf: right-to-left override
        ("ACME\U000e0041", "id_character"),  # Cf: tag character
        ("\u200dACME", "id_character"),  # a joiner with nothing to join
        ("ACME\ue000", "id_character"),  # Co: private use
        ("ACME\u0378", "id_character"),  # Cn: unassigned
        ("ACME\uffff", "id_character"),  # Cn: noncharacter
        ("ACME\u2028#12", "id_character"),  # Zl
        ("ACME\u2029#12", "id_character"),  # Zp
    ],
)
def test_ids_that_are_not_printable_text_are_refused(
    field: str, value: str, error_type: str
) -> None:
    assert [(f, t) for f, t, _ in field_errors(VALID | {field: value})] == [(field, error_type)]


def test_a_lone_surrogate_is_refused() -> None:
    # not UTF-8-encodable, so never storable: the JSON parser refuses "\ud800", and pydantic
    # refuses a Python str holding one before the id rule sees it
    with pytest.raises(ValidationError) as caught:
        Transaction.model_validate_json(json.dumps(VALID | {"merchant_id": "ACME\ud800"}))
    assert [e["type"] for e in caught.value.errors()] == ["json_invalid"]
    with pytest.raises(ValidationError) as caught:
        Transaction.model_validate(VALID | {"merchant_id": "ACME\ud800"})
    assert "merchant_id" in {str(e["loc"][0]) for e in caught.value.errors()}


def test_every_unicode_space_separator_is_padding() -> None:
    spaces = {chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Zs"}

    assert set(SPACE_SEPARATORS) == spaces


@pytest.mark.parametrize("field", ["transaction_id", "card_id", "merchant_id"])
@pytest.mark.parametrize(
    "value",
    ["4111111111111111", "4111-1111-1111-1111", "378282246310005", "tok_5555555555554444"],
)
def test_a_card_number_in_any_id_is_refused_without_its_value(field: str, value: str) -> None:
    errors = field_errors(VALID | {field: value})

    assert [(f, t) for f, t, _ in errors] == [(field, "card_number_in_id")]
    message = errors[0][2]
    assert value not in message and value[-4:] not in message


def test_luhn_invalid_16_digits_are_a_token() -> None:
    assert parse(VALID | {"card_id": "4111111111111112"}).card_id == "4111111111111112"
