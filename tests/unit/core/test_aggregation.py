"""KPL aggregated records: the reader, the writer, the reference implementation, the event parser."""

from __future__ import annotations

import base64
import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedded.aggregation import (
    MAX_RECORD_BYTES,
    corrupt_digest,
    encode_aggregate,
    encode_message,
    frame,
    pack,
)
from embedded.lambda_events import KinesisEntry, kinesis_event, sequence_number
from streamscore.core.aggregation import (
    INVALID_AGGREGATE,
    MAGIC,
    MAGIC_B64_PREFIX,
    UserRecord,
    deaggregate,
    is_aggregated,
    may_be_aggregated,
)
from streamscore.core.errors import InvalidRecordError
from streamscore.core.records import (
    batch_item_failures,
    decode_payload,
    lowest_failure,
    parse_kinesis_event,
)

STREAM = "streamscore-TransactionsStream-TEST"
SHARD = "shardId-000000000000"
USERS = [
    UserRecord("card_a", b'{"transaction_id": "t1"}'),
    UserRecord("card_b", b'{"transaction_id": "t2"}'),
    UserRecord("card_a", b'{"transaction_id": "t3"}'),
]


@pytest.fixture(scope="module")
def reference() -> Iterator[dict[str, ModuleType]]:
    """aws-kinesis-agg's aggregator, deaggregator and protobuf messages, sys.path put back after.

    Importing the reference puts its own folder first on sys.path (its generated protobuf
    module imports a sibling by a top-level name); the tests' path is restored.
    """
    saved = list(sys.path)
    try:
        modules = {
            name: importlib.import_module(f"aws_kinesis_agg.{name}")
            for name in ("deaggregator", "aggregator", "messages_pb2")
        }
    finally:
        sys.path[:] = saved
    yield modules


def event_of(*entries: KinesisEntry) -> dict[str, Any]:
    return kinesis_event(entries, STREAM, SHARD)


# ----------------------------------------------------------------------------- the format


def test_the_magic_prefix_in_base64_is_what_aggregates_start_with() -> None:
    assert bytes.fromhex("f3899ac2") == MAGIC
    for tail in (b"", b"\x00", b"\xff" * 40):
        assert base64.b64encode(MAGIC + tail).decode().startswith(MAGIC_B64_PREFIX)
    assert not may_be_aggregated(base64.b64encode(b'{"transaction_id": "t1"}').decode())


def test_an_aggregate_gives_back_its_user_records_in_order() -> None:
    data = encode_aggregate(USERS)

    assert is_aggregated(data)
    assert deaggregate(data) == USERS


def test_the_key_table_holds_each_partition_key_once() -> None:
    message = encode_message(USERS)

    assert message.count(b"card_a") == 1 and message.count(b"card_b") == 1


def test_explicit_hash_keys_tags_and_unknown_fields_are_read_or_skipped() -> None:
    users = [UserRecord("k1", b"one", "340282366920938463463374607431768211455"), *USERS]
    unknown = bytes([0x20, 0x07]) + bytes([0x2D, 1, 2, 3, 4])  # field 4 varint, field 5 fixed32
    message = encode_message(users, tags=[[("source", "pos"), ("empty", None)], [], [], []])

    assert deaggregate(frame(message + unknown)) == users


def test_a_proto3_writer_omitting_index_zero_and_empty_data_is_read() -> None:
    # proto3 leaves out fields at their default; the protobuf runtime reads them as 0 and b""
    message = bytes([0x0A, 1]) + b"k" + bytes([0x1A, 0]) + bytes([0x1A, 2, 0x1A, 0])

    assert deaggregate(frame(message)) == [UserRecord("k", b""), UserRecord("k", b"")]


def _varint_field(number: int, value: bytes) -> bytes:
    return bytes([number << 3]) + value


MALFORMED = [
    # (name, the message between the magic bytes and a correct digest)
    ("no user records", encode_message([])),
    ("only key tables", bytes([0x0A, 1]) + b"k"),
    ("partition key index outside the table", bytes([0x0A, 1]) + b"k" + bytes([0x1A, 2, 8, 1])),
    (
        "explicit hash key index outside the table",
        bytes([0x0A, 1]) + b"k" + bytes([0x1A, 4, 8, 0, 0x10, 0]),
    ),
    ("record runs past the end", bytes([0x0A, 1]) + b"k" + bytes([0x1A, 9, 8, 0])),
    ("data runs past the end of its record", bytes([0x0A, 1, 0x6B, 0x1A, 4, 8, 0, 0x1A, 5])),
    ("truncated varint", bytes([0x0A, 1, 0x6B, 0x1A, 2, 8, 0x80])),
    ("varint longer than 10 bytes", bytes([0x0A, 1, 0x6B, 0x1A, 12, 8, *[0xFF] * 10, 1])),
    ("key not UTF-8", bytes([0x0A, 2, 0xFF, 0xFE, 0x1A, 2, 8, 0])),
    ("key table entry as a varint", bytes([0x08, 1, 0x1A, 2, 8, 0])),
    ("data as a varint", bytes([0x0A, 1, 0x6B, 0x1A, 4, 8, 0, 0x18, 1])),
    ("a group", bytes([0x0A, 1, 0x6B, 0x1A, 2, 8, 0, 0x23, 0x24])),
    ("field number 0", bytes([0x02, 0])),
    ("random bytes", bytes(range(200, 256))),
]


@pytest.mark.parametrize(("name", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_message_with_a_good_digest_is_an_invalid_aggregate(
    name: str, message: bytes
) -> None:
    with pytest.raises(InvalidRecordError) as raised:
        deaggregate(frame(message))

    assert raised.value.reason == INVALID_AGGREGATE, name
    assert raised.value.details[0]["type"] == "malformed"


def test_a_bad_digest_or_a_truncated_aggregate_is_an_invalid_aggregate() -> None:
    data = encode_aggregate(USERS)

    for damaged, cause in (
        (corrupt_digest(data), "bad_digest"),
        (MAGIC + b"\x00" * 3, "truncated"),
    ):
        with pytest.raises(InvalidRecordError) as raised:
            deaggregate(damaged)
        assert raised.value.reason == INVALID_AGGREGATE
        assert raised.value.details[0]["type"] == cause
    # a flipped byte of the message is caught by the digest as well
    flipped = bytearray(data)
    flipped[len(MAGIC) + 3] ^= 0x40
    with pytest.raises(InvalidRecordError, match="MD5"):
        deaggregate(bytes(flipped))


# ----------------------------------------------------------------------------- the reference


def test_what_the_reference_writes_is_read_and_what_we_write_the_reference_reads(
    reference: dict[str, ModuleType],
) -> None:
    # the reference aggregator (aws-kinesis-agg) packs user records; our reader opens them
    aggregator = reference["aggregator"].RecordAggregator()
    theirs = [UserRecord(f"card_{i % 3}", f'{{"n": {i}}}'.encode()) for i in range(40)]
    for user in theirs:
        assert aggregator.add_user_record(user.partition_key, user.data) is None  # not full
    _, _, data = aggregator.clear_and_get().get_contents()

    assert [(u.partition_key, u.data) for u in deaggregate(data)] == [
        (u.partition_key, u.data) for u in theirs
    ]

    # our writer packs user records; the reference deaggregator opens them from a Lambda event
    ours = [*USERS, UserRecord("card_c", b"", "12345")]
    event = event_of(KinesisEntry("card_a", encode_aggregate(ours)))
    opened = reference["deaggregator"].deaggregate_records(event["Records"])

    assert [
        (
            r["kinesis"]["partitionKey"],
            base64.b64decode(r["kinesis"]["data"]),
            r["kinesis"]["subSequenceNumber"],
        )
        for r in opened
    ] == [(u.partition_key, u.data, i) for i, u in enumerate(ours)]
    assert opened[-1]["kinesis"]["explicitHashKey"] == "12345"


def _protobuf_view(messages: ModuleType, message: bytes) -> list[tuple[str, bytes]] | None:
    """The user records as the protobuf runtime reads `message`, or None when it cannot."""
    parsed = messages.AggregatedRecord()
    try:
        parsed.ParseFromString(message)
        table = list(parsed.partition_key_table)
        return [(table[r.partition_key_index], r.data) for r in parsed.records]
    except Exception:  # any refusal of the runtime counts as "cannot"
        return None


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    users=st.lists(
        st.builds(
            UserRecord,
            st.sampled_from(["card_a", "card_b", "ç"]),
            st.binary(max_size=40),
        ),
        min_size=1,
        max_size=6,
    ),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=4
    ),
    cut=st.integers(min_value=0, max_value=400),
)
def test_any_damaged_message_is_read_as_protobuf_reads_it_or_refused(
    reference: dict[str, ModuleType],
    users: list[UserRecord],
    edits: list[tuple[int, int]],
    cut: int,
) -> None:
    # given: a valid message with some bytes overwritten and its end cut, digest recomputed
    message = bytearray(encode_message(users))
    for where, value in edits:
        message[where % len(message)] = value
    damaged = bytes(message[: len(message) - cut % (len(message) + 1)])

    # when
    try:
        ours = [(u.partition_key, u.data) for u in deaggregate(frame(damaged))]
    except InvalidRecordError as error:
        assert error.reason == INVALID_AGGREGATE
        return

    # then: whatever we accept, the protobuf runtime reads exactly the same way
    assert ours == _protobuf_view(reference["messages_pb2"], damaged)
    if not edits and not cut % (len(message) + 1):
        assert ours == [(u.partition_key, u.data) for u in users]


# ----------------------------------------------------------------------------- the writer


def test_pack_fills_aggregates_up_to_the_record_limit_in_order() -> None:
    # given
    users = [UserRecord(f"card_{i % 7}", bytes([i % 256]) * 3000) for i in range(800)]

    # when
    packed = pack(users)

    # then
    assert len(packed) > 1
    assert all(len(a.data) + len(a.partition_key.encode()) <= MAX_RECORD_BYTES for a in packed)
    opened = [u for a in packed for u in deaggregate(a.data)]
    assert opened == users
    assert [a.user_records for a in packed] == [len(deaggregate(a.data)) for a in packed]
    assert all(a.partition_key == deaggregate(a.data)[0].partition_key for a in packed)
    assert [a.user_records for a in pack(users[:10], max_user_records=4)] == [4, 4, 2]
    with pytest.raises(ValueError, match="fits no aggregate"):
        pack([UserRecord("k", b"x" * MAX_RECORD_BYTES)])


# ----------------------------------------------------------------------------- Lambda events


def test_plain_records_keep_their_record_ids() -> None:
    records = parse_kinesis_event(event_of(KinesisEntry("card_a", b'{"a": 1}')))

    (record,) = records
    assert record.sub_sequence_number is None
    assert record.record_id == f"{STREAM}#{SHARD}#{sequence_number(0)}"
    assert decode_payload(record) == b'{"a": 1}'


def test_data_that_only_looks_like_the_prefix_is_a_plain_record() -> None:
    almost = b"\xf3\x89\x9a\xc0 not an aggregate"
    (record,) = parse_kinesis_event(event_of(KinesisEntry("k", almost)))

    assert may_be_aggregated(record.data_b64)
    assert record.sub_sequence_number is None and record.problem is None
    assert decode_payload(record) == almost


def test_each_user_record_is_a_record_with_its_own_stable_id() -> None:
    # given
    event = event_of(
        KinesisEntry("card_z", b'{"plain": 0}'),
        KinesisEntry("card_a", encode_aggregate(USERS)),
        KinesisEntry("card_z", b'{"plain": 2}'),
    )

    # when
    records = parse_kinesis_event(event)
    again = parse_kinesis_event(event)

    # then
    assert [r.record_id for r in records] == [r.record_id for r in again]
    assert len({r.record_id for r in records}) == 5
    seq = sequence_number(1)
    aggregated = records[1:4]
    assert [r.sequence_number for r in aggregated] == [seq] * 3
    assert [r.sub_sequence_number for r in aggregated] == [0, 1, 2]
    assert [r.record_id for r in aggregated] == [f"{STREAM}#{SHARD}#{seq}#{i}" for i in range(3)]
    assert [r.partition_key for r in aggregated] == ["card_a", "card_b", "card_a"]
    assert [decode_payload(r) for r in aggregated] == [u.data for u in USERS]
    assert [r.order for r in records] == sorted(r.order for r in records)
    assert records[0].record_id == f"{STREAM}#{SHARD}#{sequence_number(0)}"


def test_a_damaged_aggregate_stays_one_record_that_decodes_to_its_reason() -> None:
    # given
    damaged = corrupt_digest(encode_aggregate(USERS))
    event = event_of(KinesisEntry("card_a", damaged), KinesisEntry("k", b'{"a": 1}'))

    # when
    first, second = parse_kinesis_event(event)

    # then
    assert first.sub_sequence_number is None
    assert first.record_id == f"{STREAM}#{SHARD}#{sequence_number(0)}"
    assert base64.b64decode(first.data_b64) == damaged  # kept whole for the quarantine item
    with pytest.raises(InvalidRecordError) as raised:
        decode_payload(first)
    assert raised.value.reason == INVALID_AGGREGATE
    assert decode_payload(second) == b'{"a": 1}'


def test_failures_are_reported_once_per_kinesis_record() -> None:
    event = event_of(
        KinesisEntry("k", b"{}"),
        KinesisEntry("card_a", encode_aggregate(USERS)),
        KinesisEntry("k", b"{}"),
    )
    records = parse_kinesis_event(event)
    failed = {sequence_number(1), sequence_number(2)}

    assert batch_item_failures(records, failed) == {
        "batchItemFailures": [
            {"itemIdentifier": sequence_number(1)},
            {"itemIdentifier": sequence_number(2)},
        ]
    }
    assert lowest_failure(records, failed) == int(sequence_number(1))
