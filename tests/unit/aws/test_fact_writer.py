"""DynamoFactWriter's count items under concurrency: lanes for a shard's concurrent batches."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from streamscore.aws.facts import DynamoFactWriter
from streamscore.core.monitoring import QUARANTINE, CountKey, Fact, quarantine_counts
from support.wiring import quiet_backoff

HOUR = "2026-03-05T12"
SOURCE = "transactions/shardId-000000000000"


class Transactions:
    """TransactWriteItems answered in memory: each call's count-item keys; the first
    `conflicts` calls cancelled as a concurrent transaction on the same item would be."""

    def __init__(self, conflicts: int = 0):
        self.conflicts = conflicts
        self.count_keys: list[list[str]] = []

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        keys = [a["Update"]["Key"]["pk"]["S"] for a in TransactItems if "Update" in a]
        self.count_keys.append(keys)
        if self.conflicts:
            self.conflicts -= 1
            reasons = [{"Code": "TransactionConflict"}] * len(TransactItems)
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": reasons,
                },
                "TransactWriteItems",
            )
        return {}


def facts(n: int = 3) -> list[Fact]:
    return [
        Fact(
            item={"record_id": f"r{i}"},
            key=f"r{i}",
            count_key=CountKey(QUARANTINE, "-", HOUR, SOURCE),
            counts=quarantine_counts("preprocess", "invalid_json"),
        )
        for i in range(n)
    ]


def writer(client: Transactions, lanes: int) -> DynamoFactWriter:
    return DynamoFactWriter(client, "q", "record_id", "m", backoff=quiet_backoff(), lanes=lanes)


def test_one_lane_keeps_the_count_item_of_shard_and_slot() -> None:
    client = Transactions(conflicts=1)

    done, failed = writer(client, lanes=1).create(facts(), 0)

    assert (len(done), failed) == (3, set())
    base = f"COUNT#QUAR#-#{HOUR}#{SOURCE}#0"
    assert client.count_keys == [[base], [base]]  # the retry after the conflict: same item


def test_concurrent_batches_of_a_shard_spread_over_its_lanes() -> None:
    client = Transactions()
    target = writer(client, lanes=4)

    for _ in range(200):
        target.create(facts(1), 0)

    lanes = {keys[0].rsplit("#", 1)[1] for keys in client.count_keys}
    assert lanes == {"0", "1.0", "2.0", "3.0"}  # lane 0 keeps the one-lane key


def test_a_conflict_moves_the_retry_to_the_next_lane() -> None:
    client = Transactions(conflicts=2)

    done, failed = writer(client, lanes=3).create(facts(), 0)

    assert (len(done), failed) == (3, set())
    slots = [keys[0].rsplit("#", 1)[1] for keys in client.count_keys]
    lane = [int(s.split(".")[0]) if "." in s else 0 for s in slots]
    assert lane[1] == (lane[0] + 1) % 3 and lane[2] == (lane[1] + 1) % 3
