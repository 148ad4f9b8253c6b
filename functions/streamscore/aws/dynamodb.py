"""DynamoDB batch access: BatchGetItem (100 keys a call) and BatchWriteItem (25 items a call).

Items the service hands back unprocessed are retried with backoff and jitter;
what still fails is returned to the caller, who maps it to record failures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from streamscore.aws._batching import chunked, fan_out
from streamscore.aws.retry import Backoff, translate_error
from streamscore.core.ids import TransactionId
from streamscore.core.items import from_item_value, number_text, plain_number

MAX_GET_KEYS = 100
MAX_WRITE_ITEMS = 25
MAX_ITEM_BYTES = 400 * 1024

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

Item = dict[str, Any]
Key = tuple[Any, ...]


def serialize_value(value: Any) -> dict[str, Any]:  # noqa: PLR0911
    """One plain value in DynamoDB's wire format, in one pass.

    Floats become numbers as ``to_item_value`` would make them (core.items.number_text) and
    exact Decimals are written as they are, so the result is what boto3's TypeSerializer
    writes for ``to_item_value(value)`` (tests/unit/aws/test_item_serialization.py) without
    building the Decimals or walking the value twice: the two passes were 18 % of the
    preprocess handler's CPU at batch 500 (py-spy, GIL samples), and boto3's TypeSerializer
    alone ~12 us per feature record. Bytes and sets go to TypeSerializer.
    """
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is float:
        return {"N": number_text(value)}
    if kind is bool:
        return {"BOOL": value}
    if kind is int or kind is Decimal:
        return {"N": str(value)}
    if kind is dict:
        return {"M": {str(k): serialize_value(v) for k, v in value.items()}}
    if kind is list or kind is tuple:
        return {"L": [serialize_value(v) for v in value]}
    if value is None:
        return {"NULL": True}
    if isinstance(value, Mapping):
        return serialize_value(dict(value))
    return dict(_serializer.serialize(value))


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """A plain item (floats, ints, Decimals, str, ...) in DynamoDB's wire format; None attributes left out."""
    return {name: serialize_value(value) for name, value in item.items() if value is not None}


def deserialize_value(value: Mapping[str, Any]) -> Any:  # noqa: PLR0911
    """One wire-format value as plain Python in one pass: numbers as int when integral, else
    float (core.items.plain_number), as ``from_item_value`` of boto3's TypeDeserializer gives."""
    ((tag, inner),) = value.items()
    if tag == "S":
        return inner
    if tag == "N":
        return plain_number(inner)
    if tag == "M":
        return {k: deserialize_value(v) for k, v in inner.items()}
    if tag == "L":
        return [deserialize_value(v) for v in inner]
    if tag == "BOOL":
        return inner
    if tag == "NULL":
        return None
    return from_item_value(_deserializer.deserialize(cast(Any, value)))


def deserialize(item: Mapping[str, Any]) -> Item:
    """A wire-format item as plain Python (see deserialize_value)."""
    return {name: deserialize_value(value) for name, value in item.items()}


class BatchTable:
    """One table, read and written in batches; values are plain Python (floats and ints as numbers)."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        key_names: Sequence[str],
        backoff: Backoff | None = None,
        executor: Executor | None = None,
        consistent_read: bool = True,
    ):
        # Strongly consistent by default: the previous batch's state write must be seen,
        # or the replay guard would read stale state.
        self.consistent_read = consistent_read
        self.client = client
        self.table_name = table_name
        self.key_names = tuple(key_names)
        self.backoff = backoff or Backoff()
        self.executor = executor

    def key_of(self, item: Mapping[str, Any]) -> Key:
        return tuple(item[name] for name in self.key_names)

    def get_many(self, keys: Iterable[Mapping[str, Any]]) -> tuple[dict[Key, Item], list[Key]]:
        """Items found by key, and the keys still unprocessed after retries (absent items are simply missing)."""
        unique = list({self.key_of(k): k for k in keys}.values())
        found: dict[Key, Item] = {}
        failed: list[Key] = []
        for part_found, part_failed in fan_out(
            self._get_chunk, list(chunked(unique, MAX_GET_KEYS)), self.executor
        ):
            found |= part_found
            failed += part_failed
        return found, failed

    def _get_chunk(self, keys: Sequence[Mapping[str, Any]]) -> tuple[dict[Key, Item], list[Key]]:
        found: dict[Key, Item] = {}

        def send(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
            request = {self.table_name: {"Keys": pending, "ConsistentRead": self.consistent_read}}
            response = self._call("BatchGetItem", self.client.batch_get_item, RequestItems=request)
            for raw in response.get("Responses", {}).get(self.table_name, []):
                item = deserialize(raw)
                found[self.key_of(item)] = item
            unprocessed = (response.get("UnprocessedKeys") or {}).get(self.table_name, {})
            return list(unprocessed.get("Keys", []))

        first = [serialize({n: k[n] for n in self.key_names}) for k in keys]
        left = self.backoff.until_done(send, first)
        return found, [self.key_of(deserialize(k)) for k in left]

    def put_many(self, items: Iterable[Mapping[str, Any]]) -> list[Key]:
        """Write every item (the last one wins per key); the keys still unprocessed after retries."""
        unique = list({self.key_of(i): i for i in items}.values())
        failed: list[Key] = []
        for part in fan_out(self._put_chunk, list(chunked(unique, MAX_WRITE_ITEMS)), self.executor):
            failed += part
        return failed

    def _put_chunk(self, items: Sequence[Mapping[str, Any]]) -> list[Key]:
        def send(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
            response = self._call(
                "BatchWriteItem",
                self.client.batch_write_item,
                RequestItems={self.table_name: requests},
            )
            return list((response.get("UnprocessedItems") or {}).get(self.table_name, []))

        requests = [{"PutRequest": {"Item": serialize(i)}} for i in items]
        left = self.backoff.until_done(send, requests)
        return [self.key_of(deserialize(r["PutRequest"]["Item"])) for r in left]

    def _call(self, action: str, method: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return method(**kwargs)
        except (ClientError, BotoCoreError) as error:
            raise translate_error(error, f"DynamoDB {action} on {self.table_name}") from error


def by_transaction_id[K: str](
    table: BatchTable, transaction_ids: Sequence[K], key: Callable[[str], K]
) -> tuple[dict[K, Item], set[K]]:
    """Items of a table keyed by `transaction_id`, and the ids whose read still failed."""
    found, failed = table.get_many({"transaction_id": t} for t in transaction_ids)
    return {key(k[0]): item for k, item in found.items()}, {key(k[0]) for k in failed}


class TransactionItemReader:
    """A table keyed by `transaction_id`, read in batches (strongly consistent)."""

    def __init__(self, table: BatchTable):
        self.table = table

    def load(
        self, transaction_ids: Sequence[TransactionId]
    ) -> tuple[dict[TransactionId, Item], set[TransactionId]]:
        return by_transaction_id(self.table, transaction_ids, TransactionId)


def expires_at(now: datetime, ttl_days: int) -> int:
    """The TTL attribute of an item written at `now` to live `ttl_days` (epoch seconds)."""
    return int(now.timestamp()) + ttl_days * 86400
