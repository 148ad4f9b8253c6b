"""Keys of MonitoringTable items: one item per source batch, found per hour through WindowIndex.

A batch item is keyed by its kind, stream, shard and first sequence number, so a
replay overwrites it even in a later hour; the hour is only in `window_key`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from streamscore.records import StreamRecord, lowest_failure, utc_iso_ms


def batch_item_key(
    kind: str, stream_name: str, shard_id: str, first_sequence_number: str
) -> dict[str, str]:
    return {"pk": f"{kind}#{stream_name}#{shard_id}#{first_sequence_number}", "sk": kind}


def window_key(kind: str, moment: datetime) -> str:
    """The WindowIndex partition of `moment`: one per kind and UTC hour."""
    return f"{kind}#{moment.astimezone(UTC).strftime('%Y-%m-%dT%H')}"


def settled(records: Sequence[StreamRecord], failed: set[str]) -> list[StreamRecord]:
    """The records of a batch that Kinesis will not deliver again.

    Kinesis resumes at the lowest failed sequence number, so a batch's item
    counts only the records below it; the retry's own item counts the rest.
    """
    resume_at = lowest_failure(records, failed)
    return [r for r in records if resume_at is None or r.position < resume_at]


def batch_item(
    kind: str, stage: str, counted: Sequence[StreamRecord], now: datetime, ttl_days: int
) -> dict[str, Any]:
    """The fields every per-batch item has, over the (non-empty) settled records it counts."""
    first, last = counted[0], counted[-1]
    return batch_item_key(kind, first.stream_name, first.shard_id, first.sequence_number) | {
        "window_key": window_key(kind, now),
        "recorded_at": utc_iso_ms(now),
        "stage": stage,
        "first_sequence_number": first.sequence_number,
        "last_sequence_number": last.sequence_number,
        "records": len(counted),
        "expires_at": int(now.timestamp()) + ttl_days * 86400,
    }
