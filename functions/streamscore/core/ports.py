"""Ports more than one stage writes through (their adapters: streamscore.aws.monitoring_stores)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from streamscore.core.ids import RecordId


class QuarantineStore(Protocol):
    def save(self, items: Sequence[dict[str, Any]]) -> set[RecordId]:
        """Create the items not stored yet, each with its count; record_ids still not written."""
        ...


class MonitoringStore(Protocol):
    def put(self, item: dict[str, Any]) -> None:
        """Write one whole MonitoringTable item (a drift report's summary)."""
        ...
