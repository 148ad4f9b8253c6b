"""AWS answered in memory at botocore's HTTP layer: every byte of our code and of botocore runs.

`FakeAWS.attach(client)` registers a `before-send` hook: botocore has validated, serialised and
signed the request, and parses the answer as if it came from the service, so only the network is
missing. DynamoDB items are kept per table (reads see earlier writes); TransactWriteItems
evaluates every action's condition first (bench/expressions.py) and, when one fails, cancels the
whole transaction with a TransactionCanceledException and one CancellationReason per action, as
DynamoDB does; otherwise it applies its Puts, Updates (SET, ADD, REMOVE) and Deletes together.
UpdateItem (the drift check's cooldown claim) is answered as done and not stored. Kinesis,
EventBridge and S3 answer success. The CPU spent answering is measured per thread and can be
taken out of a handler's CPU; with `latency` set, each call also waits its stated service latency
(a sleep: no CPU), and the time with at least one call in flight is recorded: the I/O on the
handler's path.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders

from bench.expressions import apply_update, condition_holds

JSON_HEADERS = {"Content-Type": "application/x-amz-json-1.0"}
DYNAMODB_ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"


class ServiceError(Exception):
    """An error answer: HTTP 400 with DynamoDB's JSON error body (`__type`, `message`, fields)."""

    def __init__(self, code: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.code = code
        self.fields = fields

    def body(self) -> bytes:
        return json.dumps(
            {"__type": DYNAMODB_ERROR_PREFIX + self.code, "message": str(self)} | self.fields
        ).encode()


def _headers(values: Mapping[str, str]) -> HTTPHeaders:
    headers = HTTPHeaders()
    for name, value in values.items():
        headers[name] = value
    return headers


class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


def _key_value(wire: Mapping[str, Any]) -> Any:
    return next(iter(wire.values()))


def union_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


class FakeAWS:
    """DynamoDB, Kinesis, EventBridge and S3 answering in memory; one instance per variant."""

    def __init__(
        self,
        table_keys: Mapping[str, Sequence[str]],
        latency_s: Mapping[str, float] | None = None,
        query_page_bytes: int = 1024 * 1024,
        latency_scale: float = 1.0,
    ) -> None:
        self.table_keys = {t: tuple(k) for t, k in table_keys.items()}
        self.items: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {
            t: {} for t in self.table_keys
        }
        self.latency_s = dict(latency_s or {})
        # Latencies are slept `latency_scale` times longer and in-flight time divided by it:
        # the CPU that staggers calls on a shared machine then hardly adds to the I/O time.
        self.latency_scale = latency_scale
        self.query_page_bytes = query_page_bytes
        self.calls: Counter[str] = Counter()
        self.answer_cpu_s = 0.0
        self.in_flight: list[tuple[float, float]] = []
        self.stream_records = 0
        self.objects: list[str] = []  # URLs of the objects put
        self.queried: Counter[str] = Counter()  # window keys the Query calls asked for
        self.cancelled = 0  # transactions cancelled (a condition failed)
        self._lock = threading.Lock()

    def attach(self, *clients: Any) -> FakeAWS:
        for client in clients:
            client.meta.events.register("before-send", self.respond)
        return self

    def reset(self, items: Mapping[str, Sequence[dict[str, Any]]]) -> None:
        """Empty every table, then hold `items` (wire format) per table name; counters stay."""
        with self._lock:
            self.items = {t: {} for t in self.table_keys}
            for table, rows in items.items():
                for item in rows:
                    self.put(table, item)
            self.stream_records = 0
            self.objects.clear()
            self.in_flight.clear()

    def io_seconds(self) -> float:
        """Time with at least one call in flight since the last reset, at unscaled latencies."""
        with self._lock:
            return union_seconds(self.in_flight) / self.latency_scale

    def reset_timing(self) -> None:
        with self._lock:
            self.in_flight.clear()

    # ------------------------------------------------------------------ dispatch

    def respond(self, request: Any, **_: Any) -> AWSResponse:
        sent = time.perf_counter()
        started = time.thread_time()
        target = request.headers.get("X-Amz-Target")
        status = 200
        if target is None:  # S3 (REST): the only one we fake is PutObject
            operation, answer, headers = "PutObject", b"", {"ETag": '"0"'}
            with self._lock:
                self.objects.append(request.url)
        else:
            operation = (target.decode() if isinstance(target, bytes) else target).split(".")[-1]
            body = json.loads(request.body or b"{}")
            headers = JSON_HEADERS
            try:
                with self._lock:
                    answer = json.dumps(getattr(self, operation)(body)).encode()
            except ServiceError as error:
                status, answer = 400, error.body()
        with self._lock:
            self.calls[operation] += 1
            self.answer_cpu_s += time.thread_time() - started
        wait = self.latency_s.get(operation, 0.0) * self.latency_scale
        if wait:
            # the nominal interval: waking up late for the GIL is CPU contention, counted as CPU
            with self._lock:
                self.in_flight.append((sent, sent + wait))
            time.sleep(wait)
        return AWSResponse(request.url, status, _headers(headers), _Body(answer))

    # ------------------------------------------------------------------ DynamoDB

    def _key(self, table: str, item: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(_key_value(item[k]) for k in self.table_keys[table])

    def put(self, table: str, item: dict[str, Any]) -> None:
        self.items[table][self._key(table, item)] = item

    def BatchGetItem(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        responses: dict[str, list[dict[str, Any]]] = {}
        for table, request in body["RequestItems"].items():
            stored = self.items[table]
            keys = (self._key(table, k) for k in request["Keys"])
            responses[table] = [stored[k] for k in keys if k in stored]
        return {"Responses": responses, "UnprocessedKeys": {}}

    def GetItem(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        table = body["TableName"]
        item = self.items[table].get(self._key(table, body["Key"]))
        return {"Item": item} if item is not None else {}

    def BatchWriteItem(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        for table, requests in body["RequestItems"].items():
            for request in requests:
                self.put(table, request["PutRequest"]["Item"])
        return {"UnprocessedItems": {}}

    def PutItem(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self.put(body["TableName"], body["Item"])
        return {}

    def UpdateItem(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {}

    def TransactWriteItems(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        """All or nothing: every condition is checked before anything is written."""
        staged: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = []
        reasons: list[dict[str, Any]] = []
        for action in body["TransactItems"]:
            ((kind, spec),) = action.items()
            table = spec["TableName"]
            key = self._key(table, spec["Item"] if kind == "Put" else spec["Key"])
            if any(t == table and k == key for _, t, k, _ in staged):
                raise ServiceError(
                    "ValidationException",
                    "Transaction request cannot include multiple operations on one item",
                )
            current = self.items[table].get(key)
            held = condition_holds(
                spec.get("ConditionExpression"),
                current,
                spec.get("ExpressionAttributeNames"),
                spec.get("ExpressionAttributeValues"),
            )
            if held:
                reasons.append({"Code": "None"})
            else:
                reason: dict[str, Any] = {
                    "Code": "ConditionalCheckFailed",
                    "Message": "The conditional request failed",
                }
                if spec.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    reason["Item"] = current
                reasons.append(reason)
            staged.append((kind, table, key, spec))
        if any(r["Code"] != "None" for r in reasons):
            self.cancelled += 1
            codes = ", ".join(r["Code"] for r in reasons)
            raise ServiceError(
                "TransactionCanceledException",
                f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
                CancellationReasons=reasons,
            )
        for kind, table, key, spec in staged:
            if kind == "Put":
                self.put(table, spec["Item"])
            elif kind == "Update":
                self.items[table][key] = apply_update(
                    self.items[table].get(key),
                    spec["Key"],
                    spec["UpdateExpression"],
                    spec.get("ExpressionAttributeNames"),
                    spec.get("ExpressionAttributeValues"),
                )
            elif kind == "Delete":
                self.items[table].pop(key, None)
        return {}

    def Query(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        """WindowIndex queries: items of one window_key with recorded_at in [start, end]."""
        values = body["ExpressionAttributeValues"]
        key, start, end = (_key_value(values[n]) for n in (":key", ":start", ":end"))
        self.queried[key] += 1
        matching = sorted(
            (
                item
                for item in self.items[body["TableName"]].values()
                if _key_value(item.get("window_key", {"S": ""})) == key
                and start <= _key_value(item.get("recorded_at", {"S": ""})) <= end
            ),
            key=lambda item: (_key_value(item["recorded_at"]), _key_value(item["pk"])),
        )
        offset = (
            int(_key_value(body["ExclusiveStartKey"]["offset"]))
            if "ExclusiveStartKey" in body
            else 0
        )
        page: list[dict[str, Any]] = []
        size = 0
        for item in matching[offset:]:
            size += len(json.dumps(item))
            page.append(item)
            if size >= self.query_page_bytes:
                break
        answer: dict[str, Any] = {"Items": page, "Count": len(page), "ScannedCount": len(page)}
        if offset + len(page) < len(matching):
            answer["LastEvaluatedKey"] = {"offset": {"N": str(offset + len(page))}}
        return answer

    # ------------------------------------------------------------------ Kinesis, EventBridge

    def PutRecords(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        records = []
        for _ in body["Records"]:
            self.stream_records += 1
            records.append(
                {
                    "SequenceNumber": str(10**55 + self.stream_records),
                    "ShardId": "shardId-000000000000",
                }
            )
        return {"FailedRecordCount": 0, "Records": records}

    def PutRecord(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self.stream_records += 1
        return {
            "SequenceNumber": str(10**55 + self.stream_records),
            "ShardId": "shardId-000000000000",
        }

    def PutEvents(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        entries = [{"EventId": f"e-{i}"} for i in range(len(body["Entries"]))]
        return {"FailedEntryCount": 0, "Entries": entries}
