"""Kinesis PutRecords (500 records and 5 MiB a call) with failed entries retried."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamscore.aws.retry import Backoff, translate_error

MAX_RECORDS = 500
MAX_REQUEST_BYTES = 5 * 1024 * 1024


def _calls(entries: Sequence[tuple[str, bytes]]) -> list[list[int]]:
    """Entry indexes grouped into PutRecords calls within both limits."""
    calls: list[list[int]] = [[]]
    size = 0
    for index, (key, data) in enumerate(entries):
        entry_size = len(key.encode()) + len(data)
        if len(calls[-1]) == MAX_RECORDS or (calls[-1] and size + entry_size > MAX_REQUEST_BYTES):
            calls.append([])
            size = 0
        calls[-1].append(index)
        size += entry_size
    return [c for c in calls if c]


class StreamWriter:
    """Puts records on one stream; partition key first, data second."""

    def __init__(self, client: Any, stream_name: str, backoff: Backoff | None = None):
        self.client = client
        self.stream_name = stream_name
        self.backoff = backoff or Backoff()

    def put_records(self, entries: Sequence[tuple[str, bytes]]) -> list[int]:
        """Indexes of the entries that still failed after retries (empty when all landed)."""
        failed: list[int] = []
        for indexes in _calls(entries):
            failed += self._put_call(entries, indexes)
        return failed

    def _put_call(self, entries: Sequence[tuple[str, bytes]], indexes: list[int]) -> list[int]:
        def send(pending: list[int]) -> list[int]:
            records = [{"PartitionKey": entries[i][0], "Data": entries[i][1]} for i in pending]
            try:
                response = self.client.put_records(StreamName=self.stream_name, Records=records)
            except (ClientError, BotoCoreError) as error:
                raise translate_error(error, f"Kinesis PutRecords on {self.stream_name}") from error
            if not response.get("FailedRecordCount"):
                return []
            return [
                i for i, r in zip(pending, response["Records"], strict=True) if "ErrorCode" in r
            ]

        return self.backoff.until_done(send, indexes)
