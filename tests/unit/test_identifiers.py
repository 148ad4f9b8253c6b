"""Identifiers as payments carry them, and no card number stored or logged.

The Luhn check and the PAN finder (streamscore.core.pan) are tested on their own; the
quarantine item's masking on any payload (truncated, not JSON, not UTF-8, not base64);
and the preprocess and score handlers on moto, with the stack fixtures of the
integration tests (tests/integration/conftest.py): realistic ids are scored, a card
number in an id is quarantined and appears nowhere in the stored item or the logs.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import random
import re
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import hypothesis.strategies as st
import pytest
from hypothesis import given

from embedded.lambda_events import KinesisEntry, kinesis_event
from streamscore.core.errors import InvalidRecordError
from streamscore.core.pan import MAX_PAN_BYTES, contains_pan, luhn_valid, mask_bytes, mask_text
from streamscore.core.records import MAX_QUARANTINED_PAYLOAD_BYTES, StreamRecord, quarantine_item
from support.wiring import Wired, wire

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "models" / "artifacts"

# Test card numbers the card networks publish for test environments (never real accounts).
TEST_PANS = {
    "visa": "4111111111111111",
    "visa_13": "4222222222222",
    "mastercard": "5555555555554444",
    "mastercard_2_series": "2223003122003222",
    "amex_15": "378282246310005",
    "discover": "6011111111111117",
    "jcb": "3530111333300000",
    "diners_14": "30569309025904",
}
REALISTIC_MERCHANTS = [
    "ACME #12",
    "MCD:1234",
    "Café Zürich",
    "7-ELEVEN 4711",
    "ファミリーマート\u3000渋谷店",  # an ideographic space inside
    "星巴克 (上海)",
    "스타벅스 강남",
    "☕ Corner Coffee 🍩",
    "👩\u200d🍳 Chef's table",  # a ZWJ emoji sequence
    "Ölkännchen & Söhne GmbH",
    "مقهى القاهرة",
    "O'Brien's Pub / Dublin 2",
]


def digits_only(text: str) -> str:
    return re.sub(r"\D", "", text)


def unseparated(text: str) -> str:
    """`text` without the spaces and dashes people put inside card numbers."""
    return re.sub(r"[\s\-\u2010-\u2015]", "", text)


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
    text = 'note: pay "4111 1111 1111 1111" by 2026-03-02, ref 12345'

    masked, count = mask_text(text)

    assert count == 1
    assert masked == 'note: pay "**** **** **** ****" by 2026-03-02, ref 12345'
    assert mask_text(masked) == (masked, 0)


def test_masking_bytes_keeps_length_and_bytes_that_are_not_utf8() -> None:
    data = (
        b"\xff\xfe junk " + "\uff14\uff11\uff11\uff11".encode() + "\uff11".encode() * 12 + b" \x80"
    )

    masked, count = mask_bytes(data)

    assert count == 1
    assert len(masked) == len(data)
    assert masked.startswith(b"\xff\xfe junk ") and masked.endswith(b" \x80")
    assert masked.count(b"*") == 16 * 3  # a fullwidth digit is three UTF-8 bytes


def test_a_card_number_in_utf16_text_is_masked() -> None:
    data = '{"pan": "5555 5555 5555 4444"}'.encode("utf-16-le")

    masked, count = mask_bytes(data)

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


def item_texts(item: Any) -> Iterator[str]:
    """Every string a stored item holds, the base64 payload decoded (lossily) as well."""
    if isinstance(item, Mapping):
        for name, value in item.items():
            yield str(name)
            if name == "payload_b64":
                raw = base64.b64decode(value)
                yield raw.decode("utf-8", "replace")
                yield raw.decode("utf-16-le", "replace")
            yield from item_texts(value)
    elif isinstance(item, list):
        for value in item:
            yield from item_texts(value)
    else:
        yield str(item)


def holds_any(item: Mapping[str, Any], pans: list[str]) -> list[str]:
    """The PANs some string of `item` holds, separators or not."""
    return [
        pan for text in item_texts(item) for pan in pans if pan in unseparated(text) or pan in text
    ]


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
    error = InvalidRecordError(
        "unknown_feature_schema",
        "feature schema '4111111111111111' is not the model's 'v3'",
        [{"field": "feature_schema", "type": "x", "message": "got 4111-1111-1111-1111"}],
    )

    item = quarantine_item(record_of(b"{}"), error, "score", NOW)

    assert not holds_any(item, ["4111111111111111"])
    assert item["payload_masked"] is False  # the payload itself held none
    assert "'****************'" in item["message"]


def test_a_clean_payload_is_kept_byte_for_byte() -> None:
    data = json.dumps({"transaction_id": "t-1", "amount": 12.5, "merchant_id": "ACME #12"}).encode()

    item = quarantine_item(
        record_of(data), InvalidRecordError("missing_field", "x"), "preprocess", NOW
    )

    assert base64.b64decode(item["payload_b64"]) == data
    assert item["payload_masked"] is False


# ----------------------------------------------------------------------------- the handlers on moto


def _integration_fixtures() -> ModuleType:
    """tests/integration/conftest.py under its own name: the moto stack built from the template."""
    path = ROOT / "tests" / "integration" / "conftest.py"
    spec = importlib.util.spec_from_file_location("integration_stack_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_stack = _integration_fixtures()
template = _stack.template
aws_credentials = _stack.aws_credentials
local_stack = _stack.local_stack
load_handler = _stack.load_handler

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
    result = app.lambda_handler(dict(event), _stack.FakeLambdaContext())
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
    boto3.client("events", region_name=_stack.REGION).create_event_bus(Name=bus)
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


def test_about_one_random_16_digit_number_in_ten_looks_like_a_card() -> None:
    # the cost of the rule: about one 16-digit number in ten passes Luhn and is refused
    rng = random.Random(7)
    numbers = ["".join(rng.choice("0123456789") for _ in range(16)) for _ in range(20_000)]
    refused = sum(contains_pan(n) for n in numbers) / len(numbers)

    assert 0.09 < refused < 0.11
