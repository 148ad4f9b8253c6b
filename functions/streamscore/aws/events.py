"""EventBridge PutEvents (10 entries a call) with failed entries retried."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamscore.aws._batching import chunked
from streamscore.aws.retry import Backoff, translate_error

MAX_ENTRIES = 10


class EventPublisher:
    """Puts events on one bus; each entry has Source, DetailType and Detail (a JSON string)."""

    def __init__(self, client: Any, bus_name: str, backoff: Backoff | None = None):
        self.client = client
        self.bus_name = bus_name
        self.backoff = backoff or Backoff()

    def put_events(self, entries: Sequence[Mapping[str, str]]) -> list[int]:
        """Indexes of the entries that still failed after retries."""
        failed: list[int] = []
        for start in range(0, len(entries), MAX_ENTRIES):
            failed += self._put_call(
                entries, list(range(start, min(start + MAX_ENTRIES, len(entries))))
            )
        return failed

    def _put_call(self, entries: Sequence[Mapping[str, str]], indexes: list[int]) -> list[int]:
        def send(pending: list[int]) -> list[int]:
            batch = [dict(entries[i]) | {"EventBusName": self.bus_name} for i in pending]
            try:
                response = self.client.put_events(Entries=batch)
            except (ClientError, BotoCoreError) as error:
                raise translate_error(error, f"EventBridge PutEvents on {self.bus_name}") from error
            if not response.get("FailedEntryCount"):
                return []
            return [
                i for i, r in zip(pending, response["Entries"], strict=True) if r.get("ErrorCode")
            ]

        return self.backoff.until_done(send, indexes)


__all__ = ["MAX_ENTRIES", "EventPublisher", "chunked"]
