"""PreprocessFunction's handler against moto: every class of invalid record quarantined, with its reason.

The batch goes on around them; the stored item keeps the payload (truncated past 64 KiB)
and never the raw input values in its details.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from embedded.lambda_events import KinesisEntry
from support.aws_stack import LocalStack
from support.builders import (
    ARRIVAL,
    SHARD,
    entry,
    raw_entry,
    sequences,
    transaction,
)
from support.preprocess_handler import (
    QUARANTINE_TTL_DAYS,
    Invoker,
    assert_accounted,
    batch,
    features_table,
    quarantine,
    raw_amount,
    record_id,
    valid_transactions,
    with_changes,
    without_field,
)

# ----------------------------------------------------------------------------- invalid records


INVALID_CASES: list[tuple[str, KinesisEntry, str, str | None]] = [
    # (name, record, reason, field the details must name)
    (
        "bad base64",
        KinesisEntry("card_bad", data_b64="not base64!!", arrival=ARRIVAL),
        "invalid_base64",
        None,
    ),
    ("not utf-8", raw_entry(b'{"transaction_id": "\xff\xfe"}'), "not_utf8", None),
    ("not json", raw_entry(b"{transaction_id: t1}"), "invalid_json", None),
    ("truncated json", raw_entry(with_changes()[:40]), "invalid_json", None),
    ("json list", raw_entry(b"[1, 2, 3]"), "not_an_object", None),
    ("json number", raw_entry(b"42"), "not_an_object", None),
    ("json string", raw_entry(b'"a transaction"'), "not_an_object", None),
    ("json null", raw_entry(b"null"), "not_an_object", None),
    ("missing amount", raw_entry(without_field("amount")), "missing_field", "amount"),
    ("missing event_time", raw_entry(without_field("event_time")), "missing_field", "event_time"),
    (
        "malformed transaction_id",
        raw_entry(with_changes(transaction_id="has space")),
        "invalid_field",
        "transaction_id",
    ),
    ("malformed mcc", raw_entry(with_changes(mcc="54a1")), "invalid_field", "mcc"),
    ("unknown country", raw_entry(with_changes(country="QX")), "invalid_field", "country"),
    ("amount as string", raw_entry(with_changes(amount="12.50")), "invalid_field", "amount"),
    ("mcc as int", raw_entry(with_changes(mcc=5411)), "invalid_field", "mcc"),
    ("card_id as int", raw_entry(with_changes(card_id=4111)), "invalid_field", "card_id"),
    ("NaN amount", raw_entry(raw_amount("NaN")), "invalid_field", "amount"),
    ("Infinity amount", raw_entry(raw_amount("Infinity")), "invalid_field", "amount"),
    ("-Infinity amount", raw_entry(raw_amount("-Infinity")), "invalid_field", "amount"),
    ("amount overflowing to inf", raw_entry(raw_amount("1e400")), "invalid_field", "amount"),
    ("zero amount", raw_entry(with_changes(amount=0)), "invalid_field", "amount"),
    ("negative amount", raw_entry(with_changes(amount=-5.0)), "invalid_field", "amount"),
    (
        "amount over 1,000,000",
        raw_entry(with_changes(amount=1_000_000.01)),
        "invalid_field",
        "amount",
    ),
    ("unknown currency", raw_entry(with_changes(currency="QQQ")), "invalid_field", "currency"),
    ("lower-case currency", raw_entry(with_changes(currency="eur")), "invalid_field", "currency"),
    ("unknown channel", raw_entry(with_changes(channel="web")), "invalid_field", "channel"),
    (
        "bad timestamp",
        raw_entry(with_changes(event_time="yesterday at noon")),
        "invalid_field",
        "event_time",
    ),
    (
        "timestamp without offset",
        raw_entry(with_changes(event_time="2026-03-02T10:00:00")),
        "invalid_field",
        "event_time",
    ),
    ("oversized payload", raw_entry(with_changes(padding="p" * 17_000)), "oversized", None),
]


def _interleaved(
    stack: LocalStack,
) -> tuple[dict[str, Any], dict[str, tuple[str, str, str | None]]]:
    """A batch alternating valid records and every invalid case; expectations by sequence number."""
    entries: list[KinesisEntry] = []
    names: list[str | None] = []
    for index, (name, record, _, _) in enumerate(INVALID_CASES):
        entries += [entry(transaction(index, f"card_{index % 4}", minutes=index)), record]
        names += [None, name]
    entries.append(
        entry(transaction(999, "card_edge", amount=1_000_000))
    )  # the upper bound is valid
    names.append(None)
    event = batch(stack, entries)
    by_name = {name: (reason, field) for name, _, reason, field in INVALID_CASES}
    expected = {
        seq: (name, *by_name[name])
        for seq, name in zip(sequences(event), names, strict=True)
        if name is not None
    }
    return event, expected


def test_every_invalid_class_is_quarantined_with_its_reason_and_the_batch_goes_on(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given
    event, expected = _interleaved(local_stack)
    valid = valid_transactions(event)
    assert len(valid) == len(INVALID_CASES) + 1

    # when
    before = datetime.now(UTC)
    result = invoke(event)
    after = datetime.now(UTC)

    # then
    assert result == {"batchItemFailures": []}
    assert_accounted(local_stack, event, result, invoke.metrics)
    stored = quarantine(local_stack)
    assert set(stored) == {record_id(local_stack, s) for s in expected}
    raw_by_seq = {r["kinesis"]["sequenceNumber"]: r["kinesis"]["data"] for r in event["Records"]}
    for sequence, (name, reason, field) in expected.items():
        item = stored[record_id(local_stack, sequence)]
        assert item["reason"] == reason, name
        assert item["stage"] == "preprocess"
        assert item["sequence_number"] == sequence and item["shard_id"] == SHARD
        assert item["stream_name"] == local_stack.streams["TransactionsStream"]
        if field is not None:
            assert field in {d["field"] for d in item["details"]}, name
        raw = raw_by_seq[sequence]
        kept = base64.b64decode(item["payload_b64"])
        if reason == "invalid_base64":
            assert kept == raw.encode()
        else:
            assert kept == base64.b64decode(raw), name
        assert item["payload_bytes"] == len(kept) and item["payload_truncated"] is False
        assert item["arrived_at"] == datetime.fromtimestamp(ARRIVAL, UTC).isoformat(
            timespec="milliseconds"
        )
        ttl = QUARANTINE_TTL_DAYS * 86400
        assert int(before.timestamp()) + ttl <= item["expires_at"] <= int(after.timestamp()) + ttl
    # every valid record, interleaved with the bad ones, went through
    table = features_table(local_stack)
    assert set(table) == {t.transaction_id for _, t in valid}
    reasons = Counter(reason for _, reason, _ in expected.values())
    for reason, count in reasons.items():
        assert invoke.metrics[f"Quarantined_{reason}"] == count
    assert invoke.metrics["RecordsQuarantined"] == len(expected)


def test_quarantine_details_never_carry_the_raw_input_values(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given: field errors whose offending values are recognisable
    sentinels = {
        "transaction_id": "sentinel tx",
        "card_id": "4111 1111 1111 1111",
        "currency": "QQQ",
        "country": "QX",
        "mcc": "12ab",
        "channel": "sentinel-channel",
        "event_time": "sentinel-time",
    }
    entries = [raw_entry(with_changes(**{name: value})) for name, value in sentinels.items()]
    event = batch(local_stack, entries)

    # when
    invoke(event)

    # then
    stored = quarantine(local_stack)
    leaks = []
    for sequence, (name, value) in zip(sequences(event), sentinels.items(), strict=True):
        item = stored[record_id(local_stack, sequence)]
        assert name in {d["field"] for d in item["details"]}
        if value in json.dumps(item["details"]) or value in item["message"]:
            leaks.append(name)
    assert leaks == [], f"raw input values in the quarantine details of: {leaks}"


def test_a_huge_payload_is_kept_truncated_with_its_full_length(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given: 100 KiB of base64 data and 70,000 characters that are not base64
    huge = with_changes(padding="p" * 100_000)
    not_base64 = "!" * 70_000
    event = batch(
        local_stack,
        [raw_entry(huge), KinesisEntry("card_bad", data_b64=not_base64, arrival=ARRIVAL)],
    )

    # when
    result = invoke(event)

    # then
    assert result == {"batchItemFailures": []}
    first, second = (quarantine(local_stack)[record_id(local_stack, s)] for s in sequences(event))
    assert first["reason"] == "oversized"
    assert first["payload_bytes"] == len(huge) and first["payload_truncated"] is True
    assert base64.b64decode(first["payload_b64"]) == huge[: 64 * 1024]
    assert second["reason"] == "invalid_base64"
    assert second["payload_bytes"] == 70_000 and second["payload_truncated"] is True
    assert base64.b64decode(second["payload_b64"]) == b"!" * (64 * 1024)


def test_a_number_too_long_for_python_is_quarantined_not_raised(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given: JSON numbers past Python's 4,300-digit int conversion limit, under 16 KiB
    long_number = "7" * 5000
    event = batch(
        local_stack,
        [
            raw_entry(long_number.encode()),
            raw_entry(raw_amount(long_number)),
            entry(transaction(1, "card_1")),
        ],
    )

    # when
    result = invoke(event)

    # then
    assert result == {"batchItemFailures": []}
    reasons = [
        quarantine(local_stack)[record_id(local_stack, s)]["reason"] for s in sequences(event)[:2]
    ]
    assert reasons[0] in {"invalid_json", "not_an_object"}
    assert reasons[1] in {"invalid_json", "invalid_field"}
    assert "txn-00001" in features_table(local_stack)


def test_a_valid_tiny_amount_followed_by_a_large_one_does_not_block_the_shard(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given: amounts the contract accepts (finite, > 0, <= 1,000,000) on one card
    first = transaction(1, "card_tiny", minutes=0, amount=1e-310)
    second = transaction(2, "card_tiny", minutes=5, amount=1_000_000)
    event = batch(local_stack, [entry(first), entry(second)])

    # when
    result = invoke(event)

    # then: both processed (their features are finite and stored), nothing raised or failed
    assert result == {"batchItemFailures": []}
    table = features_table(local_stack)
    assert set(table) == {"txn-00001", "txn-00002"}
