"""Ports more than one function's domain writes through (the adapters are in stores.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class QuarantineStore(Protocol):
    def save(self, items: Sequence[dict[str, Any]]) -> set[str]:
        """Create the items not stored yet, each with its count; record_ids still not written."""
        ...


class MonitoringStore(Protocol):
    def put(self, item: dict[str, Any]) -> None:
        """Write one whole MonitoringTable item (a drift report's summary)."""
        ...
