"""Ports more than one function's domain writes through (the adapters are in stores.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class QuarantineStore(Protocol):
    def save(self, items: Sequence[dict[str, Any]]) -> set[str]:
        """record_ids whose write still failed after retries."""
        ...


class MonitoringStore(Protocol):
    def put(self, item: dict[str, Any]) -> None: ...
