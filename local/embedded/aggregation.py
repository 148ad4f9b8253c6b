"""Write KPL aggregated records: for test events, sample events and producers that aggregate.

The reader is `streamscore.core.aggregation` (its docstring has the format). `encode_aggregate`
writes one aggregated record; `pack` splits a sequence of user records into aggregates that
each fit one Kinesis record; `aggregated_entry` makes one KinesisEntry of a Lambda test event.

Like the KPL, an aggregate is put with the partition key of its first user record, so it
lands on that key's shard. Aggregate only user records that may share a shard in order:
the pipeline keeps per-card order only within a shard (put one card's records on one key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from embedded.lambda_events import KinesisEntry
from streamscore.core.aggregation import DIGEST_BYTES, MAGIC, UserRecord

MAX_RECORD_BYTES = 1024 * 1024  # Kinesis: data plus partition key of one record
Tag = tuple[str, str | None]


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("a varint here is unsigned")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _number(number: int, value: int) -> bytes:
    """A varint field (wire type 0)."""
    return _varint(number << 3) + _varint(value)


def encode_message(
    user_records: Sequence[UserRecord], tags: Sequence[Sequence[Tag]] | None = None
) -> bytes:
    """The AggregatedRecord protobuf message alone: key tables (each key once), then the records."""
    partition_keys: dict[str, int] = {}
    hash_keys: dict[str, int] = {}
    records = []
    for index, user in enumerate(user_records):
        body = _number(1, partition_keys.setdefault(user.partition_key, len(partition_keys)))
        if user.explicit_hash_key is not None:
            body += _number(2, hash_keys.setdefault(user.explicit_hash_key, len(hash_keys)))
        body += _field(3, user.data)
        for key, value in tags[index] if tags else ():
            tag = _field(1, key.encode()) + (
                _field(2, value.encode()) if value is not None else b""
            )
            body += _field(4, tag)
        records.append(_field(3, body))
    tables = [_field(1, k.encode()) for k in partition_keys] + [
        _field(2, k.encode()) for k in hash_keys
    ]
    return b"".join(tables + records)


def frame(message: bytes) -> bytes:
    """Magic bytes, the message, its MD5 digest: a whole aggregated record."""
    return MAGIC + message + hashlib.md5(message, usedforsecurity=False).digest()


def encode_aggregate(
    user_records: Sequence[UserRecord], tags: Sequence[Sequence[Tag]] | None = None
) -> bytes:
    """One aggregated record holding `user_records` (and each record's `tags`, if given)."""
    if not user_records:
        raise ValueError("an aggregate holds at least one user record")
    return frame(encode_message(user_records, tags))


def corrupt_digest(aggregate: bytes) -> bytes:
    """The same aggregate with one bit of its MD5 digest flipped."""
    return aggregate[:-1] + bytes([aggregate[-1] ^ 0x01])


@dataclass(frozen=True)
class Aggregate:
    """One Kinesis record to put: its partition key, its data and how many user records it holds."""

    partition_key: str
    data: bytes
    user_records: int


def pack(
    user_records: Sequence[UserRecord],
    max_bytes: int = MAX_RECORD_BYTES,
    max_user_records: int | None = None,
) -> list[Aggregate]:
    """`user_records` in order, in as few aggregates as fit `max_bytes` (data + partition key) each.

    A user record too big for an aggregate of its own raises ValueError.
    """
    packed: list[Aggregate] = []
    chunk: list[UserRecord] = []
    size = 0  # an upper bound of the message so far: each key counted as if new

    def close() -> None:
        if chunk:
            data = encode_aggregate(chunk)
            packed.append(Aggregate(chunk[0].partition_key, data, len(chunk)))

    overhead = len(MAGIC) + DIGEST_BYTES
    for user in user_records:
        cost = _record_bound(user)
        if cost + overhead + len(user.partition_key.encode()) > max_bytes:
            raise ValueError(f"a user record of {len(user.data)} bytes fits no aggregate")
        full = max_user_records is not None and len(chunk) >= max_user_records
        first_key = chunk[0].partition_key if chunk else user.partition_key
        if chunk and (full or size + cost + overhead + len(first_key.encode()) > max_bytes):
            close()
            chunk, size = [], 0
        chunk.append(user)
        size += cost
    close()
    return packed


def _record_bound(user: UserRecord) -> int:
    """At most what `user` adds to a message: its record and, if new, its keys' table entries."""
    keys = len(_field(1, user.partition_key.encode()))
    if user.explicit_hash_key is not None:
        keys += len(_field(2, user.explicit_hash_key.encode())) + 11
    record = _number(1, 2**32) + _field(3, user.data)  # a generous index
    return keys + len(_field(3, record))


def aggregated_entry(
    user_records: Sequence[UserRecord], arrival: float, sequence_number: str = ""
) -> KinesisEntry:
    """A KinesisEntry (for `kinesis_event`) holding one aggregate of `user_records`."""
    return KinesisEntry(
        user_records[0].partition_key,
        encode_aggregate(user_records),
        sequence_number=sequence_number,
        arrival=arrival,
    )
