"""boto3 clients faked in memory, for the adapters under test: DynamoDB's batch API, Kinesis, EventBridge.

Each refuses what the service refuses (too many keys or entries, duplicate keys) and can be
told to hand chosen keys or entries back unprocessed on chosen calls, or to raise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from streamscore.aws.dynamodb import MAX_GET_KEYS, MAX_WRITE_ITEMS
from streamscore.aws.events import MAX_ENTRIES
from streamscore.aws.kinesis import MAX_RECORDS, MAX_REQUEST_BYTES


def client_error(code: str, status: int = 400, operation: str = "BatchWriteItem") -> ClientError:
    """The ClientError botocore raises for an error response of `code`."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


class MemoryDynamoDB:
    """DynamoDB's batch API in memory, refusing what the service refuses.

    `key_names`: table name -> its hash key (a table not named there uses `key_name`).
    `unprocessed(key, attempt)` decides whether an item or key is handed back unprocessed
    on the given call of its kind (1-based); `error` is raised instead of answering when set.
    `items` holds the wire items of every table by key; `get_calls` / `write_calls` the keys
    of each call, `get_requests` each BatchGetItem's RequestItems; `written` counts the
    items put (TransactWriteItems' Puts included).
    """

    def __init__(
        self,
        key_name: str = "card_id",
        unprocessed: Callable[[str, int], bool] | None = None,
        error: Exception | None = None,
        key_names: Mapping[str, str] | None = None,
    ):
        self.key_name = key_name
        self.key_names = dict(key_names or {})
        self.items: dict[str, dict[str, Any]] = {}
        self.unprocessed = unprocessed or (lambda key, attempt: False)
        self.error = error
        self.get_calls: list[list[str]] = []
        self.write_calls: list[list[str]] = []
        self.get_requests: list[dict[str, Any]] = []
        self.written = 0
        self.lock = threading.Lock()

    def _key_of(self, table: str) -> str:
        return self.key_names.get(table, self.key_name)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        if self.error:
            raise self.error
        self.get_requests.append(RequestItems)
        response: dict[str, Any] = {"Responses": {}}
        for table, request in RequestItems.items():
            key_name = self._key_of(table)
            keys = [k[key_name]["S"] for k in request["Keys"]]
            assert len(keys) <= MAX_GET_KEYS, "DynamoDB refuses more than 100 keys"
            assert len(set(keys)) == len(keys), "DynamoDB refuses duplicate keys"
            with self.lock:
                self.get_calls.append(keys)
                attempt = len(self.get_calls)
            left = [k for k in keys if self.unprocessed(k, attempt)]
            found = [self.items[k] for k in keys if k in self.items and k not in left]
            response["Responses"][table] = found
            if left:
                # the service hands back the request's other settings with the keys
                response.setdefault("UnprocessedKeys", {})[table] = request | {
                    "Keys": [{key_name: {"S": k}} for k in left]
                }
        return response

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        if self.error:
            raise self.error
        unprocessed: dict[str, list[Any]] = {}
        for table, requests in RequestItems.items():
            key_name = self._key_of(table)
            keys = [r["PutRequest"]["Item"][key_name]["S"] for r in requests]
            assert len(keys) <= MAX_WRITE_ITEMS, "DynamoDB refuses more than 25 items"
            if len(set(keys)) != len(keys):
                raise client_error("ValidationException")  # the service refuses duplicate keys
            with self.lock:
                self.write_calls.append(keys)
                self.written += len(requests)
                attempt = len(self.write_calls)
            left = [r for r, k in zip(requests, keys, strict=True) if self.unprocessed(k, attempt)]
            for request, key in zip(requests, keys, strict=True):
                if request not in left:
                    self.items[key] = request["PutRequest"]["Item"]
            if left:
                unprocessed[table] = left
        return {"UnprocessedItems": unprocessed}

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        with self.lock:
            self.written += sum(1 for action in TransactItems if "Put" in action)
        return {}


class MemoryKinesis:
    """Kinesis PutRecords in memory; `failing(partition_key, attempt)` makes an entry fail on that call."""

    def __init__(self, failing: Callable[[str, int], bool] | None = None):
        self.failing = failing or (lambda key, attempt: False)
        self.calls: list[list[dict[str, Any]]] = []
        self.stored: list[tuple[str, bytes]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        assert len(Records) <= MAX_RECORDS
        assert (
            sum(len(r["PartitionKey"].encode()) + len(r["Data"]) for r in Records)
            <= MAX_REQUEST_BYTES
        )
        self.calls.append(Records)
        attempt = len(self.calls)
        results: list[dict[str, Any]] = []
        for record in Records:
            if self.failing(record["PartitionKey"], attempt):
                results.append(
                    {
                        "ErrorCode": "ProvisionedThroughputExceededException",
                        "ErrorMessage": "slow down",
                    }
                )
            else:
                self.stored.append((record["PartitionKey"], record["Data"]))
                results.append({"SequenceNumber": str(len(self.stored)), "ShardId": "shardId-0"})
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


class MemoryEventBridge:
    """EventBridge PutEvents in memory; `failing(detail, attempt)` makes an entry fail on that call."""

    def __init__(self, failing: Callable[[str, int], bool] | None = None):
        self.failing = failing or (lambda detail, attempt: False)
        self.calls: list[list[dict[str, Any]]] = []
        self.delivered: list[str] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        assert len(Entries) <= MAX_ENTRIES
        self.calls.append(Entries)
        attempt = len(self.calls)
        results: list[dict[str, Any]] = []
        for entry in Entries:
            if self.failing(entry["Detail"], attempt):
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                self.delivered.append(entry["Detail"])
                results.append({"EventId": str(len(self.delivered))})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}
