"""Keys of MonitoringTable items: one item per source batch, found per hour through WindowIndex.

A batch item is keyed by its kind, stream, shard and first sequence number, so a
replay overwrites it even in a later hour; the hour is only in `window_key`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def batch_item_key(
    kind: str, stream_name: str, shard_id: str, first_sequence_number: str
) -> dict[str, str]:
    return {"pk": f"{kind}#{stream_name}#{shard_id}#{first_sequence_number}", "sk": kind}


def window_key(kind: str, moment: datetime) -> str:
    """The WindowIndex partition of `moment`: one per kind and UTC hour."""
    return f"{kind}#{moment.astimezone(UTC).strftime('%Y-%m-%dT%H')}"
