"""What the feature-log stage needs of the world."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streamscore.core.ids import TransactionId


class FeatureReader(Protocol):
    def load(
        self, transaction_ids: Sequence[TransactionId]
    ) -> tuple[dict[TransactionId, dict[str, Any]], set[TransactionId]]:
        """Feature records by transaction id, and the ids whose read failed (absent: missing)."""
        ...


class LogWriter(Protocol):
    def put(self, key: str, body: bytes) -> bool:
        """Write the object unless it exists: True written, False already there.

        Raises RetryableError when the write may succeed later."""
        ...


@dataclass(frozen=True)
class FeatureLogPorts:
    features: FeatureReader
    log: LogWriter
