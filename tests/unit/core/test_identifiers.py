"""Identifiers as payments carry them, and no card number in a quarantine item.

The Luhn check and the PAN finder (streamscore.core.pan) are tested on their own, and the
quarantine item's masking on any payload (truncated, not JSON, not UTF-8, not base64).
The handlers on moto (realistic ids scored, a card number in an id quarantined and found
nowhere) are in tests/integration/test_card_numbers_on_handlers.py.
"""

from __future__ import annotations

import base64
import json
import random
import re
from datetime import UTC, datetime

import hypothesis.strategies as st
import pytest
from hypothesis import given

from streamscore.core.errors import InvalidRecordError
from streamscore.core.pan import MAX_PAN_BYTES, contains_pan, luhn_valid, mask_bytes, mask_text
from streamscore.core.records import MAX_QUARANTINED_PAYLOAD_BYTES, StreamRecord, quarantine_item
from support.pans import TEST_PANS, digits_only, holds_any


def reference_luhn(number: str) -> bool:
    """The Luhn check as ISO/IEC 7812 states it: double every second digit from the right."""
    doubled = [int(d) * (2 if i % 2 else 1) for i, d in enumerate(reversed(number))]
    return sum(sum(int(c) for c in str(v)) for v in doubled) % 10 == 0


# ----------------------------------------------------------------------------- Luhn and PANs


def test_published_test_card_numbers_pass_luhn() -> None:
    for network, pan in TEST_PANS.items():
        assert luhn_valid(pan), network
        assert reference_luhn(pan), network


@given(st.text(alphabet="0123456789", min_size=12, max_size=18))
def test_exactly_one_check_digit_completes_any_number(prefix: str) -> None:
    completing = [d for d in "0123456789" if luhn_valid(prefix + d)]

    assert len(completing) == 1
    assert completing == [d for d in "0123456789" if reference_luhn(prefix + d)]


@given(st.sampled_from(sorted(TEST_PANS.values())), st.data())
def test_any_single_digit_changed_fails_luhn(pan: str, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(pan) - 1))
    other = data.draw(st.sampled_from([d for d in "0123456789" if d != pan[index]]))

    assert not luhn_valid(pan[:index] + other + pan[index + 1 :])


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111 - 1111 - 1111 - 1111",
        "4111\u00a01111\u00a01111\u00a01111",  # no-break spaces
        "4111\u20131111\u20131111\u20131111",  # en dashes
        "3782 822463 10005",  # Amex grouping
        "tok_4111111111111111",
        "card 4111 1111 1111 1111 exp 12/29",
        "4111 1111 1111 1111 123",  # with its CVV after
        "\uff14\uff11\uff11\uff11" + "\uff11" * 12,  # fullwidth digits
        "4222222222222",  # 13 digits
    ],
)
def test_card_numbers_as_people_type_them_are_found(text: str) -> None:
    assert contains_pan(text)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # Luhn-invalid
        "411111111111",  # 12 digits
        "41111111111111110000",  # 20 digits: a longer number, not a card
        "4111.1111.1111.1111",  # dots are not separators
        "4111 1111    1111 1111",  # four spaces: separate numbers
        "7-ELEVEN 4711",
        "2026-03-02T14:05:09+01:00",
        "card_000042",
    ],
)
def test_other_digits_are_not_card_numbers(text: str) -> None:
    assert not contains_pan(text)


def test_masking_hides_every_digit_and_keeps_everything_else() -> None:
    # given
    text = 'note: pay "4111 1111 1111 1111" by 2026-03-02, ref 12345'

    # when
    masked, count = mask_text(text)

    # then
    assert count == 1
    assert masked == 'note: pay "**** **** **** ****" by 2026-03-02, ref 12345'
    assert mask_text(masked) == (masked, 0)


def test_masking_bytes_keeps_length_and_bytes_that_are_not_utf8() -> None:
    # given
    data = (
        b"\xff\xfe junk " + "\uff14\uff11\uff11\uff11".encode() + "\uff11".encode() * 12 + b" \x80"
    )

    # when
    masked, count = mask_bytes(data)

    # then
    assert count == 1
    assert len(masked) == len(data)
    assert masked.startswith(b"\xff\xfe junk ") and masked.endswith(b" \x80")
    assert masked.count(b"*") == 16 * 3  # a fullwidth digit is three UTF-8 bytes


def test_a_card_number_in_utf16_text_is_masked() -> None:
    # given
    data = '{"pan": "5555 5555 5555 4444"}'.encode("utf-16-le")

    # when
    masked, count = mask_bytes(data)

    # then
    assert count == 1
    assert "5555" not in masked.decode("utf-16-le", "replace")
    assert "4444" not in masked.decode("utf-16-le", "replace")


# ----------------------------------------------------------------------------- quarantine items

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def record_of(data: bytes | None = None, text: str | None = None) -> StreamRecord:
    return StreamRecord(
        stream_name="streamscore-TransactionsStream-local",
        shard_id="shardId-000000000000",
        sequence_number="49650000000000000000000000000000000000000000000000000000",
        partition_key="card_bad",
        data_b64=text if text is not None else base64.b64encode(data or b"").decode(),
        arrived_at=1_772_442_000.25,
    )


@pytest.mark.parametrize(
    ("reason", "payload"),
    [
        ("invalid_json", b"card=4111 1111 1111 1111; amount=12.50 (not JSON)"),
        ("not_utf8", b"\xff\xfe" + b"5555-5555-5555-4444"),
        ("not_an_object", b'["378282246310005", 12]'),
        ("invalid_field", json.dumps({"card_id": "6011111111111117", "pan": "4111111111111111"})),
        ("conflicting_duplicate", b'{"transaction_id": "t-1", "note": "4222222222222"}'),
    ],
)
def test_every_quarantine_reason_stores_the_payload_masked(
    reason: str, payload: bytes | str
) -> None:
    data = payload.encode() if isinstance(payload, str) else payload
    pans = [p for p in TEST_PANS.values() if p in digits_only(data.decode("utf-8", "replace"))]
    assert pans, "the payload should hold a test card number"

    item = quarantine_item(record_of(data), InvalidRecordError(reason, "bad"), "preprocess", NOW)

    assert not holds_any(item, pans)
    assert item["payload_masked"] is True
    assert item["payload_bytes"] == len(data)
    assert len(base64.b64decode(item["payload_b64"])) == len(data)


def test_a_record_that_is_not_base64_is_kept_masked() -> None:
    item = quarantine_item(
        record_of(text="not base64! card 4111 1111 1111 1111"),
        InvalidRecordError("invalid_base64", "record data is not base64"),
        "preprocess",
        NOW,
    )

    assert base64.b64decode(item["payload_b64"]) == b"not base64! card **** **** **** ****"
    assert item["payload_masked"] is True


@pytest.mark.parametrize("shift", [-30, -16, -8, -1, 0, 1])
def test_a_card_number_the_truncation_cuts_is_masked_whole(shift: int) -> None:
    # a PAN (as typed, 19 characters) starting `shift` bytes from the cut, one well inside,
    # and one past the cut
    pan = "4111 1111 1111 1111"
    head = b"x" * 100 + b"5555555555554444" + b"x" * 100
    start = MAX_QUARANTINED_PAYLOAD_BYTES + shift
    data = head + b"." * (start - len(head)) + pan.encode() + b"." * 5000 + b"378282246310005"

    item = quarantine_item(
        record_of(data), InvalidRecordError("oversized", "too big"), "preprocess", NOW
    )

    kept = base64.b64decode(item["payload_b64"])
    assert item["payload_truncated"] is True and item["payload_bytes"] == len(data)
    assert len(kept) == MAX_QUARANTINED_PAYLOAD_BYTES
    assert not re.search(rb"\d", kept), "a digit of a card number was kept"
    assert kept[100:116] == b"*" * 16
    assert item["payload_masked"] is True


def test_the_widest_card_number_the_cut_splits_is_masked_whole() -> None:
    # 19 four-byte digits (MATHEMATICAL BOLD DIGITs), each two apart by three ideographic
    # spaces: the most bytes a PAN can span; 12 digits before the cut, 7 after
    digits = "9" * 18 + next(d for d in "0123456789" if luhn_valid("9" * 18 + d))
    widest = ("\u3000" * 3).join(chr(0x1D7CE + int(d)) for d in digits)
    assert len(widest.encode()) == MAX_PAN_BYTES and contains_pan(widest)
    start = MAX_QUARANTINED_PAYLOAD_BYTES - 12 * (4 + 9)
    data = b"x" * start + widest.encode() + b"x" * 10

    item = quarantine_item(
        record_of(data), InvalidRecordError("oversized", "too big"), "preprocess", NOW
    )

    kept = base64.b64decode(item["payload_b64"]).decode("utf-8", "replace")
    assert not any(char.isdecimal() for char in kept)
    assert kept.count("****") == 12


def test_message_and_details_are_masked_too() -> None:
    # given
    error = InvalidRecordError(
        "unknown_feature_schema",
        "feature schema '4111111111111111' is not the model's 'v3'",
        [{"field": "feature_schema", "type": "x", "message": "got 4111-1111-1111-1111"}],
    )

    # when
    item = quarantine_item(record_of(b"{}"), error, "score", NOW)

    # then
    assert not holds_any(item, ["4111111111111111"])
    assert item["payload_masked"] is False  # the payload itself held none
    assert "'****************'" in item["message"]


def test_a_clean_payload_is_kept_byte_for_byte() -> None:
    # given
    data = json.dumps({"transaction_id": "t-1", "amount": 12.5, "merchant_id": "ACME #12"}).encode()

    # when
    item = quarantine_item(
        record_of(data), InvalidRecordError("missing_field", "x"), "preprocess", NOW
    )

    # then
    assert base64.b64decode(item["payload_b64"]) == data
    assert item["payload_masked"] is False


def test_about_one_random_16_digit_number_in_ten_looks_like_a_card() -> None:
    # the cost of the rule: about one 16-digit number in ten passes Luhn and is refused
    rng = random.Random(7)
    numbers = ["".join(rng.choice("0123456789") for _ in range(16)) for _ in range(20_000)]
    refused = sum(contains_pan(n) for n in numbers) / len(numbers)

    assert 0.09 < refused < 0.11
