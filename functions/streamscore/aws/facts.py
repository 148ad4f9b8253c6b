"""Facts and their counts on DynamoDB: each fact created in one transaction with the counts it adds.

TransactWriteItems takes up to 100 actions: a chunk is as many facts (Puts, each on
the writer's condition: by default that its fact does not exist; a label's, that the stored
label is the one it replaces) plus one Update per count item they add to (ADD of top-level
numbers; DynamoDB's ADD takes no nested paths; an Update whose numbers cancel out is left
out). A cancelled transaction reports a reason per action: a fact whose condition failed is
dropped from its chunk (reported as existing, and apart when the caller asks) and the rest
is written again at once; a conflict or throttling is retried with backoff; what still fails
comes back to the caller, who fails its records.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamscore.aws._batching import fan_out
from streamscore.aws.dynamodb import BatchTable, by_transaction_id, expires_at, serialize
from streamscore.aws.retry import Backoff, translate_error
from streamscore.core.errors import RetryableError
from streamscore.core.ids import TransactionId
from streamscore.core.monitoring import COUNT, CountKey, Counts, Fact, summed, window_key

MAX_TRANSACTION_ITEMS = 100
Condition = Callable[[Fact], tuple[str, dict[str, Any]]]  # a fact's Put condition and values


class DynamoFactWriter:
    """Creates facts in `table_name` (key `key_name`) with their counts in `counts_table`."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        key_name: str,
        counts_table: str,
        condition: Condition | None = None,
        backoff: Backoff | None = None,
        executor: Executor | None = None,
        lanes: int = 1,
    ):
        self.client = client
        self.table_name = table_name
        self.key_name = key_name
        self.counts_table = counts_table
        self.condition = condition or (lambda fact: (f"attribute_not_exists({key_name})", {}))
        self.backoff = backoff or Backoff()
        self.executor = executor
        self.lanes = lanes  # the mapping's ParallelizationFactor: batches of a shard at once
        self._random = random.Random()

    def create(
        self, facts: Sequence[Fact], counts_expire_at: int, found: set[str] | None = None
    ) -> tuple[set[str], set[str]]:
        """Keys of the facts that exist now (created or found), and keys whose write still failed.

        `found`, when given, also receives the keys whose condition failed: found, not created
        by this call (a caller whose condition is on a state it read re-reads those)."""
        lane = self._random.randrange(self.lanes) if self.lanes > 1 else 0
        chunks = _chunks(facts, lane)

        def write(chunk: Sequence[list[Fact]]) -> tuple[set[str], set[str], set[str]]:
            existing: set[str] = set()
            try:
                return (*self._write(chunk[0], counts_expire_at, existing), existing)
            except RetryableError:
                return set(), {f.key for f in chunk[0]}, existing

        done: set[str] = set()
        failed: set[str] = set()
        for part_done, part_failed, part_found in fan_out(
            write, [[c] for c in chunks], self.executor
        ):
            done |= part_done
            failed |= part_failed
            if found is not None:
                found |= part_found
        return done, failed

    def _write(
        self, chunk: list[Fact], expires_at: int, found: set[str]
    ) -> tuple[set[str], set[str]]:
        done: set[str] = set()
        pending = list(chunk)
        attempt = 0
        while pending:
            codes = self._transact(self._actions(pending, expires_at))
            if codes is None:  # committed
                return done | {f.key for f in pending}, set()
            existing = {
                f.key
                for f, code in zip(pending, codes, strict=False)
                if code == "ConditionalCheckFailed"
            }
            if existing:  # those were created before: the rest goes again at once
                done |= existing
                found |= existing
                pending = [f for f in pending if f.key not in existing]
                continue
            if "TransactionConflict" in codes and self.lanes > 1:
                _next_lane(pending, self.lanes)  # a concurrent batch of the shard: move over
            attempt += 1
            if attempt >= self.backoff.attempts:
                return done, {f.key for f in pending}
            self.backoff.pause(attempt)
        return done, set()

    def _transact(self, actions: list[dict[str, Any]]) -> list[str] | None:
        """None when the transaction committed, else its cancellation reason per action."""
        try:
            self.client.transact_write_items(TransactItems=actions)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise translate_error(error, self._what()) from error
            reasons = error.response.get("CancellationReasons")
            return [r.get("Code", "None") for r in reasons or []]
        except BotoCoreError as error:
            raise translate_error(error, self._what()) from error
        return None

    def _what(self) -> str:
        return f"DynamoDB TransactWriteItems on {self.table_name} and {self.counts_table}"

    def _actions(self, facts: list[Fact], expires_at: int) -> list[dict[str, Any]]:
        actions = []
        for one in facts:
            expression, values = self.condition(one)
            put: dict[str, Any] = {
                "TableName": self.table_name,
                "Item": serialize(one.item),
                "ConditionExpression": expression,
            }
            if values:
                put["ExpressionAttributeValues"] = serialize(values)
            actions.append({"Put": put})
        for key, counts in summed(facts).items():
            if counts.attributes():  # a label replaced by one counted alike adds nothing
                actions.append({"Update": self._count_update(key, counts, expires_at)})
        return actions

    def _count_update(self, key: CountKey, counts: Counts, expires_at: int) -> dict[str, Any]:
        adds = counts.attributes()
        names = {f"#a{i}": name for i, name in enumerate(adds)}
        values: dict[str, Any] = {f":a{i}": count for i, count in enumerate(adds.values())}
        values |= {
            ":kind": key.kind,
            ":version": key.model_version,
            ":hour": key.hour,
            ":shard": key.shard_id,
            ":wk": window_key(key.hour),
            ":at": f"{key.hour}:00:00.000+00:00",
            ":exp": expires_at,
        }
        paired = ""
        if key.paired_with:
            values[":paired"] = key.paired_with
            paired = ", paired_with = :paired"
        return {
            "TableName": self.counts_table,
            "Key": serialize({"pk": key.pk, "sk": COUNT}),
            "UpdateExpression": "ADD "
            + ", ".join(f"#a{i} :a{i}" for i in range(len(adds)))
            + " SET kind = :kind, model_version = :version, #hour = :hour, shard_id = :shard, "
            "window_key = :wk, recorded_at = :at, expires_at = :exp" + paired,
            "ExpressionAttributeNames": names | {"#hour": "hour"},
            "ExpressionAttributeValues": serialize(values),
        }


def _next_lane(facts: Sequence[Fact], lanes: int) -> None:
    for one in facts:
        one.rekeyed(lambda key: dataclasses.replace(key, lane=(key.lane + 1) % lanes))


def _placer(slot: int, lane: int) -> Callable[[CountKey], CountKey]:
    """A count key moved to `slot` and `lane`, each distinct key once (a chunk's facts share a
    few count items; dataclasses.replace per fact was 2% of the score handler's CPU)."""
    placed: dict[CountKey, CountKey] = {}

    def place(key: CountKey) -> CountKey:
        moved = placed.get(key)
        if moved is None:
            moved = placed[key] = dataclasses.replace(key, slot=slot, lane=lane)
        return moved

    return place


def _chunks(facts: Sequence[Fact], lane: int = 0) -> list[list[Fact]]:
    """Chunks of facts whose Puts and count Updates fit one transaction, each its own slot."""
    chunks: list[list[Fact]] = []
    current: list[Fact] = []
    items: set[tuple[str, str, str, str]] = set()  # the count items of the current chunk
    for one in facts:
        adds = {(k.kind, k.model_version, k.paired_with, k.hour) for k, _ in one.adds()}
        chunk_items = items | adds
        if current and len(current) + 1 + len(chunk_items) > MAX_TRANSACTION_ITEMS:
            chunks.append(current)
            current, chunk_items = [], adds
        current.append(one)
        items = chunk_items
    if current:
        chunks.append(current)
    # chunks are written side by side: each adds to count items of its own (its slot)
    for slot, chunk in enumerate(chunks):
        place = _placer(slot, lane)
        for one in chunk:
            one.rekeyed(place)
    return chunks


class TransactionFactStore:
    """A table of facts keyed by `transaction_id` (predictions, labels): read by id, each created
    through `facts` with its counts, the items expiring `ttl_days` and their count items
    `counts_ttl_days` after the write."""

    def __init__(
        self, table: BatchTable, facts: DynamoFactWriter, ttl_days: int, counts_ttl_days: int
    ):
        self.table = table
        self.facts = facts
        self.ttl_days = ttl_days
        self.counts_ttl_days = counts_ttl_days

    def load(
        self, transaction_ids: Sequence[TransactionId]
    ) -> tuple[dict[TransactionId, dict[str, Any]], set[TransactionId]]:
        return by_transaction_id(self.table, transaction_ids, TransactionId)

    def _create(
        self, facts: Sequence[Fact], now: datetime, found: set[str] | None = None
    ) -> tuple[set[str], set[str]]:
        expires = expires_at(now, self.ttl_days)
        for fact in facts:
            fact.item = fact.item | {"expires_at": expires}
        return self.facts.create(facts, expires_at(now, self.counts_ttl_days), found)
