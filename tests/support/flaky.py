"""Real (moto) boto3 clients wrapped to inject faults: unprocessed keys and items, refused records, errors.

A wrapper passes every other call through to the real client, so a handler rebuilt on it
(`Wired.use(dynamodb=..., kinesis=...)`) talks to the same stack.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

THROUGHPUT_EXCEEDED = {
    "ErrorCode": "ProvisionedThroughputExceededException",
    "ErrorMessage": "Rate exceeded",
}


class FlakyDynamoDB:
    """A DynamoDB client that hands chosen keys back unprocessed (a number of times, or always).

    `unprocessed_writes` / `unprocessed_reads`: key value -> times (None: every time), the
    key being each table's hash key (`key_names`: table name -> hash key), or for writes the
    attribute `write_key` when given (every item holding one of those values, in any table);
    `raise_on`: operation name -> (table name, ClientError) raised instead of calling.
    `get_requests` keeps every BatchGetItem's RequestItems.
    """

    def __init__(
        self,
        real: Any,
        key_names: Mapping[str, str],
        unprocessed_writes: Mapping[str, int | None] | None = None,
        unprocessed_reads: Mapping[str, int | None] | None = None,
        raise_on: Mapping[str, tuple[str, ClientError]] | None = None,
        write_key: str | None = None,
    ):
        self.real = real
        self.key_names = key_names  # table name -> hash key
        self.writes = dict(unprocessed_writes or {})
        self.reads = dict(unprocessed_reads or {})
        self.raise_on = dict(raise_on or {})  # operation -> (table name, error)
        self.write_key = write_key
        self.seen: Counter[tuple[str, str]] = Counter()
        self.get_requests: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def _hold(self, kind: str, rules: Mapping[str, int | None], key: str | None) -> bool:
        if key not in rules:
            return False
        self.seen[kind, key] += 1
        times = rules[key]
        return times is None or self.seen[kind, key] <= times

    def _maybe_raise(self, operation: str, tables: Any) -> None:
        if operation in self.raise_on and self.raise_on[operation][0] in tables:
            raise self.raise_on[operation][1]

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self._maybe_raise("BatchWriteItem", RequestItems)
        passed: dict[str, list[Any]] = {}
        held: dict[str, list[Any]] = {}
        for table, requests in RequestItems.items():
            key_name = self.write_key or self.key_names[table]
            for request in requests:
                key = request["PutRequest"]["Item"].get(key_name, {}).get("S")
                target = held if self._hold("write", self.writes, key) else passed
                target.setdefault(table, []).append(request)
        response = self.real.batch_write_item(RequestItems=passed) if passed else {}
        unprocessed = response.get("UnprocessedItems") or {}
        for table, requests in held.items():
            unprocessed.setdefault(table, []).extend(requests)
        return {"UnprocessedItems": unprocessed}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self._maybe_raise("BatchGetItem", RequestItems)
        self.get_requests.append(copy.deepcopy(RequestItems))
        passed: dict[str, Any] = {}
        held: dict[str, Any] = {}
        for table, request in RequestItems.items():
            key_name = self.key_names[table]
            for key in request["Keys"]:
                target = held if self._hold("read", self.reads, key[key_name]["S"]) else passed
                # like the service: unprocessed keys come back with the request's other settings
                target.setdefault(table, {**request, "Keys": []})["Keys"].append(key)
        response = self.real.batch_get_item(RequestItems=passed) if passed else {"Responses": {}}
        unprocessed = response.get("UnprocessedKeys") or {}
        for table, request in held.items():
            unprocessed.setdefault(table, {**request, "Keys": []})["Keys"].extend(request["Keys"])
        return {"Responses": response.get("Responses", {}), "UnprocessedKeys": unprocessed}


class FlakyKinesis:
    """A Kinesis client whose PutRecords fails chosen transactions' entries (a number of times, or always).

    `failing`: transaction id -> times (None: every time); a failed entry comes back with
    `error` (ErrorCode and ErrorMessage; throughput exceeded unless given).
    """

    def __init__(
        self,
        real: Any,
        failing: Mapping[str, int | None],
        error: Mapping[str, str] = THROUGHPUT_EXCEEDED,
    ):
        self.real = real
        self.failing = dict(failing)  # transaction id -> times (None: every time)
        self.error = dict(error)
        self.seen: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        fail = []
        for record in Records:
            txn_id = json.loads(record["Data"])["transaction_id"]
            self.seen[txn_id] += 1
            times = self.failing.get(txn_id, 0)
            fail.append(txn_id in self.failing and (times is None or self.seen[txn_id] <= times))
        sent = [r for r, f in zip(Records, fail, strict=True) if not f]
        landed = iter(
            self.real.put_records(StreamName=StreamName, Records=sent)["Records"] if sent else []
        )
        results = [dict(self.error) if f else next(landed) for f in fail]
        return {"FailedRecordCount": sum(fail), "Records": results}
