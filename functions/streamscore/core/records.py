"""Kinesis records as Lambda delivers them, decoded once, plus the quarantine item for a bad one.

A KPL aggregated record (streamscore.core.aggregation) becomes one StreamRecord per user record:
each keeps the Kinesis record's sequence number and adds its sub-sequence number (its index
in the aggregate), so its `record_id` is its own and the same on every retry and replay.
Failures are reported per Kinesis record (its sequence number is all Lambda knows): when one
user record fails, Lambda redelivers the whole aggregate, and the ledger (preprocess) and the
conditional prediction writes (score) absorb the user records already done.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from streamscore.core.aggregation import deaggregate, is_aggregated, may_be_aggregated
from streamscore.core.errors import InvalidRecordError
from streamscore.core.ids import RecordId, SequenceNumber
from streamscore.core.pan import MAX_PAN_BYTES, mask_bytes, mask_text
from streamscore.core.times import iso_time, utc_iso_ms

MAX_QUARANTINED_PAYLOAD_BYTES = 64 * 1024  # raw bytes kept per record; items stay far below 400 KB
CARD_NUMBER_IN_ID = "card_number_in_id"  # the contract's error type for an id that is a PAN


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One record of a Kinesis event: its position, its arrival and its data (base64 as received).

    A user record of an aggregate has its own partition key and data, and its index in the
    aggregate as `sub_sequence_number` (None for a plain record). An aggregate that cannot be
    read stays one record, with the reason in `problem`: decoding it raises that.
    """

    stream_name: str
    shard_id: str
    sequence_number: SequenceNumber
    partition_key: str
    data_b64: str
    arrived_at: float  # approximateArrivalTimestamp, epoch seconds
    sub_sequence_number: int | None = None
    problem: InvalidRecordError | None = field(default=None, compare=False, repr=False)

    @property
    def record_id(self) -> RecordId:
        """Stable identity of the record: the same on every retry and replay."""
        return record_id_of(
            self.stream_name, self.shard_id, self.sequence_number, self.sub_sequence_number
        )

    @property
    def position(self) -> int:
        """The Kinesis record's position in its shard (shared by the user records of an aggregate)."""
        return int(self.sequence_number)

    @property
    def order(self) -> tuple[int, int]:
        """Stream order of user records: position, then index in the aggregate."""
        return int(self.sequence_number), self.sub_sequence_number or 0


def record_id_of(
    stream_name: str, shard_id: str, sequence_number: str, sub_sequence_number: int | None = None
) -> RecordId:
    """`stream#shard#sequence` for a plain record, `stream#shard#sequence#sub` for a user record."""
    plain = f"{stream_name}#{shard_id}#{sequence_number}"
    return RecordId(plain if sub_sequence_number is None else f"{plain}#{sub_sequence_number}")


def parse_kinesis_event(event: Mapping[str, Any]) -> list[StreamRecord]:
    """The records of a Lambda Kinesis event, in delivery (sequence) order, aggregates opened."""
    records = []
    for raw in event.get("Records", []):
        kinesis = raw["kinesis"]
        arn = raw.get("eventSourceARN", "")
        record = StreamRecord(
            stream_name=arn.rsplit("/", 1)[-1] if "/" in arn else arn,
            shard_id=raw.get("eventID", "").split(":", 1)[0],
            sequence_number=kinesis["sequenceNumber"],
            partition_key=kinesis.get("partitionKey", ""),
            data_b64=kinesis.get("data", ""),
            arrived_at=float(kinesis.get("approximateArrivalTimestamp", 0.0)),
        )
        if may_be_aggregated(record.data_b64):
            records += user_records(record)
        else:
            records.append(record)
    return records


def user_records(record: StreamRecord) -> list[StreamRecord]:
    """The user records of an aggregated record; the record itself when it is plain.

    An aggregate that cannot be read (bad digest, malformed message) is kept whole, with
    the reason as its `problem`, so it is quarantined, never passed on or dropped.
    """
    try:
        data = base64.b64decode(record.data_b64, validate=True)
    except (binascii.Error, ValueError):
        return [record]  # not base64: decode_payload says so
    if not is_aggregated(data):
        return [record]
    try:
        users = deaggregate(data)
    except InvalidRecordError as error:
        return [
            StreamRecord(
                record.stream_name,
                record.shard_id,
                record.sequence_number,
                record.partition_key,
                record.data_b64,
                record.arrived_at,
                problem=error,
            )
        ]
    return [
        StreamRecord(
            record.stream_name,
            record.shard_id,
            record.sequence_number,
            user.partition_key,
            base64.b64encode(user.data).decode(),
            record.arrived_at,
            sub_sequence_number=index,
        )
        for index, user in enumerate(users)
    ]


def decode_payload(record: StreamRecord) -> bytes:
    """The record's raw bytes; InvalidRecordError when the data is not base64 or a bad aggregate."""
    if record.problem is not None:
        problem = record.problem
        raise InvalidRecordError(problem.reason, str(problem), problem.details)
    try:
        return base64.b64decode(record.data_b64, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidRecordError("invalid_base64", f"record data is not base64: {error}") from None


def decode_contract[T: BaseModel](record: StreamRecord, contract: type[T], max_bytes: int) -> T:
    """The record's payload as `contract` (a pydantic model of JSON); InvalidRecordError with
    the reason when it is not one (not base64, too large, not JSON, or fields that fail)."""
    payload = decode_payload(record)
    if len(payload) > max_bytes:
        raise InvalidRecordError(
            "oversized", f"payload is {len(payload)} bytes, more than {max_bytes}"
        )
    try:
        return contract.model_validate_json(payload)
    except ValidationError as error:
        raise diagnose_json(payload) or field_errors(error) from None


def diagnose_json(payload: bytes) -> InvalidRecordError | None:
    """Why `payload` is not a JSON object, or None when it is one."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        return InvalidRecordError("not_utf8", f"payload is not UTF-8 (byte {error.start})")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return InvalidRecordError(
            "invalid_json", f"payload is not JSON: {error.msg} at {error.pos}"
        )
    except (ValueError, RecursionError) as error:
        # e.g. an integer past Python's 4300-digit conversion limit, or nesting past the stack
        return InvalidRecordError(
            "invalid_json", f"payload is JSON this pipeline cannot read: {type(error).__name__}"
        )
    if not isinstance(value, dict):
        return InvalidRecordError(
            "not_an_object", f"payload is JSON {type(value).__name__}, not an object"
        )
    return None


def field_errors(error: ValidationError) -> InvalidRecordError:
    """A validation error as a quarantine reason; field errors keep location and message, never the input."""
    details = [
        {
            "field": ".".join(str(p) for p in e["loc"]) or "(record)",
            "type": e["type"],
            "message": e["msg"],
        }
        for e in error.errors(include_input=False, include_url=False)
    ]
    if any(d["type"] == CARD_NUMBER_IN_ID for d in details):
        reason = CARD_NUMBER_IN_ID  # its own reason: a producer sending card numbers as ids
    elif all(d["type"] == "missing" for d in details):
        reason = "missing_field"
    else:
        reason = "invalid_field"
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return InvalidRecordError(reason, summary, details)


def quarantine_item(
    record: StreamRecord,
    error: InvalidRecordError,
    stage: str,
    now: datetime,
) -> dict[str, Any]:
    """The QuarantineTable item for `record`: keyed by its position, so a replay writes the same key.

    Whatever the reason, every card-number-like digit run (13-19 digits, spaces and dashes
    allowed, Luhn-valid; see pan.py) in the payload, the message and the details is masked,
    every digit of it: PCI DSS lets at most the first six and last four digits show, but of
    a 13-digit PAN that leaves three hidden, one of them fixed by Luhn, and no digit helps to
    diagnose a bad record. `payload_masked` says the payload had one. Its expiry is the
    store's (streamscore.aws.monitoring_stores): every TTL is set on the adapter side.
    """
    try:
        payload = base64.b64decode(record.data_b64, validate=True)
    except (binascii.Error, ValueError):
        # not base64: keep the text as received, truncated alike
        payload = record.data_b64.encode("utf-8", "replace")
    size, truncated = len(payload), len(payload) > MAX_QUARANTINED_PAYLOAD_BYTES
    # masked before the cut, seeing past it, so a number the cut splits is masked whole
    # (masking keeps every byte offset)
    masked, masked_runs = mask_bytes(payload[: MAX_QUARANTINED_PAYLOAD_BYTES + MAX_PAN_BYTES + 4])
    kept_b64 = base64.b64encode(masked[:MAX_QUARANTINED_PAYLOAD_BYTES]).decode()
    details = [
        {name: mask_text(value)[0] for name, value in detail.items()}
        for detail in error.details[:50]
    ]
    return {
        "record_id": record.record_id,
        "stage": stage,
        "stream_name": record.stream_name,
        "shard_id": record.shard_id,
        "sequence_number": record.sequence_number,
        "reason": error.reason,
        "message": mask_text(str(error))[0][:1000],
        "details": details,
        "payload_b64": kept_b64,
        "payload_bytes": size,
        "payload_truncated": truncated,
        "payload_masked": masked_runs > 0,
        "arrived_at": iso_time(record.arrived_at),
        "quarantined_at": utc_iso_ms(now),
    }


def lowest_failure(records: Iterable[StreamRecord], failed: set[SequenceNumber]) -> int | None:
    """Position of the lowest failed record, where Kinesis will resume; None when none failed."""
    positions = [r.position for r in records if r.sequence_number in failed]
    return min(positions) if positions else None


def batch_item_failures(
    records: Iterable[StreamRecord], failed: set[SequenceNumber]
) -> dict[str, Any]:
    """The partial-batch response Lambda expects (ReportBatchItemFailures).

    One entry per failed Kinesis record, however many of its user records failed.
    """
    reported = dict.fromkeys(r.sequence_number for r in records if r.sequence_number in failed)
    return {"batchItemFailures": [{"itemIdentifier": s} for s in reported]}
