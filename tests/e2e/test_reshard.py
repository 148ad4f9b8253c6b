"""Resharding under the event-source emulator: a split and a merge of TransactionsStream mid-run.

moto 5.2.5 keeps routing PutRecords to a closed parent shard after SplitShard and MergeShards
(its hash-key lookup does not skip closed shards); the embedded run's moto server routes records
to the open shard whose hash-key range holds the key, as Kinesis does
(`embedded.moto_process._route_records_to_open_shards`). moto also re-puts a split parent's records into its children and copies a
merge's parents' records into the child: the functions absorb those repeats by transaction id.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from embedded.emulator import EventSourceEmulator
from embedded.producer import Producer, simulated_traffic
from embedded.replay import replay, replay_problems
from embedded.server import MotoServer
from embedded.stack import EmbeddedStack
from embedded.summary import scan

TRANSACTIONS = 200
DRAIN_SECONDS = 30.0
PARAMETERS = {
    "StreamMode": "PROVISIONED",
    "ShardCount": "1",
    "PreprocessBatchSize": "20",
    "PreprocessMaximumBatchingWindowInSeconds": "0",
    "PreprocessStartingPosition": "TRIM_HORIZON",
    "ScoreBatchSize": "20",
    "ScoreMaximumBatchingWindowInSeconds": "0",
    "ScoreStartingPosition": "TRIM_HORIZON",
}
Reshard = Callable[[object, str], None]


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


def _split(kinesis: object, stream: str) -> None:
    (shard,) = [s for s in _open_shards(kinesis, stream)]
    kinesis.split_shard(  # type: ignore[attr-defined]
        StreamName=stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=str(2**127)
    )


def _split_then_merge(kinesis: object, stream: str) -> None:
    _split(kinesis, stream)
    low, high = sorted(
        _open_shards(kinesis, stream), key=lambda s: int(s["HashKeyRange"]["StartingHashKey"])
    )
    kinesis.merge_shards(  # type: ignore[attr-defined]
        StreamName=stream, ShardToMerge=low["ShardId"], AdjacentShardToMerge=high["ShardId"]
    )


def _shards(kinesis: object, stream: str) -> list[dict[str, Any]]:
    return kinesis.list_shards(StreamName=stream)["Shards"]  # type: ignore[attr-defined, no-any-return]


def _closed(shard: dict[str, Any]) -> bool:
    return "EndingSequenceNumber" in shard["SequenceNumberRange"]


def _open_shards(kinesis: object, stream: str) -> list[dict[str, Any]]:
    return [s for s in _shards(kinesis, stream) if not _closed(s)]


@pytest.mark.slow
@pytest.mark.parametrize("reshard", [_split, _split_then_merge], ids=["split", "merge"])
def test_every_transaction_applies_once_in_order_across_a_reshard(
    moto_server: MotoServer, stack_name: str, reshard: Reshard
) -> None:
    # given: one shard, half the traffic delivered
    with EmbeddedStack(stack_name=stack_name, parameters=PARAMETERS, server=moto_server) as stack:
        outputs = stack.deployed.outputs
        stream = outputs["TransactionsStreamName"]
        kinesis = stack.client("kinesis")
        traffic = simulated_traffic(TRANSACTIONS, seed=5)
        producer = Producer(kinesis, stream)
        emulator: EventSourceEmulator = stack.emulator(idle_poll_s=0.05)
        emulator.start()
        try:
            result = producer.send(traffic, stop=len(traffic) // 2)
            assert emulator.wait_until_drained(DRAIN_SECONDS)

            # when: the shard is resharded, the rest is put, and everything drains
            reshard(kinesis, stream)
            producer.send(traffic, start=len(traffic) // 2, result=result)
            assert emulator.wait_until_drained(DRAIN_SECONDS)

            # then: the rest went to the open children; every shard was polled, the closed
            # ones to their end
            late = list(result.positions.values())[len(traffic) // 2 :]
            used = {shard for shard, _ in late}
            assert used == {s["ShardId"] for s in _open_shards(kinesis, stream)}
            assert len(used) == (2 if reshard is _split else 1)
            pollers = {p.shard_id: p for p in emulator.pollers if p.mapping.stream_name == stream}
            shards = _shards(kinesis, stream)
            assert set(pollers) == {s["ShardId"] for s in shards}
            assert all(pollers[s["ShardId"]].finished.is_set() for s in shards if _closed(s))
            dynamodb = stack.client("dynamodb")
            predictions = scan(dynamodb, outputs["PredictionsTableName"])
            ids = [p["transaction_id"] for p in predictions]
            assert len(ids) == len(set(ids))  # no duplicate prediction items
            assert set(ids) == set(traffic.labels)
            transactions = [json.loads(payload) for payload in traffic.payloads]
            per_card: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for txn in sorted(transactions, key=lambda t: datetime.fromisoformat(t["event_time"])):
                per_card[str(txn["card_id"])].append(txn)
            states = {
                s["card_id"]: int(s["txn_count"])
                for s in scan(dynamodb, outputs["EntityStateTableName"])
            }
            assert states == {
                card: len({t["transaction_id"] for t in txns}) for card, txns in per_card.items()
            }
            features = {
                f["transaction_id"]: f for f in scan(dynamodb, outputs["FeaturesTableName"])
            }
            for card, txns in per_card.items():
                versions = [int(features[str(t["transaction_id"])]["state_version"]) for t in txns]
                assert versions == list(range(1, len(txns) + 1)), card

            # and a replay of both streams (parents first again) changes nothing
            def drain() -> None:
                assert emulator.wait_until_drained(DRAIN_SECONDS)

            report = replay(stack.client, outputs, emulator, drain)
            assert replay_problems(report) == []
            replayed = report["mappings"][stream]["records_replayed"]
            assert replayed >= len(traffic)
        finally:
            emulator.stop()
