"""The summary's accounting: each sent record counted once, however often it was delivered."""

from __future__ import annotations

import base64
import json

from embedded.producer import Traffic
from embedded.summary import FailedRecord, Observed, account

STREAM, FEATURES, SHARD = "TransactionsStream", "FeaturesStream", "shardId-000000000000"


def transaction(txn_id: str) -> bytes:
    return json.dumps({"transaction_id": txn_id, "card_id": "card_1"}).encode()


def feature_record(txn_id: str) -> bytes:
    return json.dumps({"transaction_id": txn_id, "features": {"amount_log": 1e400}}).encode()


def test_replayed_redriven_and_reforwarded_records_count_once() -> None:
    # given: seven records sent
    payloads = [
        transaction("t1"),
        transaction("t2"),  # given up once, scored by a replay since: its message is still queued
        transaction(
            "t3"
        ),  # its feature record quarantined by score, twice (a replay forwarded it again)
        transaction("t1"),  # a producer's repeat
        b"not json",  # quarantined by preprocess
        transaction("t4"),
        transaction("t5"),  # its feature record's batch given up, not re-driven yet
    ]
    traffic = Traffic(payloads=payloads, partition_keys=["card_1"] * len(payloads))
    record_ids = {i: f"{STREAM}#{SHARD}#{i}" for i in range(len(payloads))}
    score_quarantined = [
        {
            "stage": "score",
            "record_id": f"{FEATURES}#{SHARD}#{n}",
            "payload_b64": base64.b64encode(feature_record("t3")).decode(),
        }
        for n in (10, 20)
    ]
    observed = Observed(
        predictions={t: {"transaction_id": t} for t in ("t1", "t2", "t4")},
        prediction_items=3,
        quarantine=[{"stage": "preprocess", "record_id": record_ids[4]}, *score_quarantined],
        failed_records=[
            FailedRecord(STREAM, SHARD, "1", payloads[1]),
            FailedRecord(FEATURES, SHARD, "30", feature_record("t5")),
            FailedRecord(FEATURES, SHARD, "40", feature_record("t5")),  # forwarded again
        ],
    )

    # when
    outcomes = account(traffic, record_ids, observed)

    # then
    assert outcomes == {"scored": 3, "repeats": 1, "quarantined": 2, "failed": 1}
