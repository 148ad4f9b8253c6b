"""PreprocessFunction's handler against moto: the sample events, a card's order, replays of a batch.

Every test imports the handler module afresh with the environment template.yaml gives the
function, so its clients talk to the moto stack built from the template.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from embedded.template import parameter_values
from streamscore.core.monitoring import window_key
from support.aws_stack import LocalStack
from support.builders import (
    SHARD,
    entry,
    sequences,
    transaction,
)
from support.preprocess_handler import (
    EVENTS,
    Invoker,
    assert_accounted,
    batch,
    count_items,
    features_table,
    forwarded,
    mixed_batch,
    payload_of,
    quarantine,
    quarantine_counted,
    states,
    valid_transactions,
)

# ----------------------------------------------------------------------------- sample events


def test_sample_events_in_events_folder_are_preprocessed(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # the KPL aggregated sample is checked user record by user record in test_preprocess_aggregated.py
    samples = sorted(
        p for p in EVENTS.glob("preprocess_*.json") if p.name != "preprocess_aggregated.json"
    )
    assert samples, f"no preprocess_*.json sample event in {EVENTS}"

    for path in samples:
        # given
        event = json.loads(path.read_text())
        valid = valid_transactions(event)
        invalid = sorted(set(sequences(event)) - {s for s, _ in valid})
        assert valid and invalid, f"{path.name} should mix valid and invalid transactions"

        # when
        result = invoke(event)

        # then
        assert result == {"batchItemFailures": []}
        assert_accounted(local_stack, event, result, invoke.metrics)
        stream_name = event["Records"][0]["eventSourceARN"].rsplit("/", 1)[1]
        stored = quarantine(local_stack)
        for sequence in invalid:
            assert f"{stream_name}#{SHARD}#{sequence}" in stored
        table = features_table(local_stack)
        on_stream = forwarded(local_stack)
        for _, txn in valid:
            assert table[txn.transaction_id]["feature_schema"] == "card-v1"
            assert txn.transaction_id in on_stream
        # no raw card data in the logs: neither the card ids nor the PAN-like one of the bad record
        for record in event["Records"]:
            body = payload_of(record)
            try:
                card = json.loads(body).get("card_id")
            except (ValueError, AttributeError):
                continue
            if isinstance(card, str):
                assert card not in invoke.stdout


# ----------------------------------------------------------------------------- replays


def test_the_same_batch_delivered_twice_changes_nothing_but_the_stream(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given
    event = mixed_batch(local_stack)
    valid = valid_transactions(event)

    # when
    first = invoke(event)
    table_once, states_once, quarantine_once = (
        features_table(local_stack),
        states(local_stack),
        quarantine(local_stack),
    )
    second = invoke(event)

    # then
    assert first == second == {"batchItemFailures": []}
    assert invoke.metrics["RecordsReplayed"] == len(valid)
    assert features_table(local_stack) == table_once
    assert states(local_stack) == states_once
    per_card = Counter(t.card_id for _, t in valid)
    last_txn = {t.card_id: t.transaction_id for _, t in valid}
    for card, count in per_card.items():
        assert states_once[card]["txn_count"] == count
        assert table_once[last_txn[card]]["state_version"] == count
    assert set(quarantine(local_stack)) == set(quarantine_once)
    assert len(quarantine_once) == 3
    on_stream = forwarded(local_stack)
    assert set(on_stream) == {t.transaction_id for _, t in valid}
    for txn_id, copies in on_stream.items():
        assert len(copies) == 2
        assert copies[0] == copies[1], f"{txn_id} forwarded with different content on replay"
        assert copies[0]["features"] == table_once[txn_id]["features"]
    assert quarantine_counted(local_stack).n == 3  # counted once, though quarantined twice


def test_a_replay_finds_its_transactions_applied_even_without_their_feature_items(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given: a batch applied once, then its FeaturesTable items deleted (they outlive the
    # stream's retention, so only an operator can do this)
    event = mixed_batch(local_stack, n_cards=2, per_card=2)
    invoke(event)
    table_once = features_table(local_stack)
    for txn_id in table_once:
        local_stack.dynamodb.delete_item(
            TableName=local_stack.tables["FeaturesTable"], Key={"transaction_id": {"S": txn_id}}
        )
    states_once = states(local_stack)

    # when
    result = invoke(event)

    # then: the cards still hold them pending: nothing applied twice, nothing quarantined,
    # the same feature records stored and forwarded again
    assert result == {"batchItemFailures": []}
    assert invoke.metrics["RecordsReplayed"] == len(valid_transactions(event))
    assert states(local_stack) == states_once

    def without_expiry(table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {k: {n: v for n, v in i.items() if n != "expires_at"} for k, i in table.items()}

    assert without_expiry(features_table(local_stack)) == without_expiry(table_once)
    assert "replay_features_missing" not in {i["reason"] for i in quarantine(local_stack).values()}


def test_feature_items_outlive_the_streams_retention(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # a replayable record must find its ledger entry: FeaturesTable's TTL is at least the
    # stream's retention plus a day, whatever FeaturesTtlDays says
    event = mixed_batch(local_stack, n_cards=1, per_card=1)
    before = datetime.now(UTC).timestamp()
    invoke(event)

    (item,) = features_table(local_stack).values()
    retention_hours = int(parameter_values(local_stack.template)["StreamRetentionHours"])
    assert item["expires_at"] >= before + retention_hours * 3600 + 86400


# ----------------------------------------------------------------------------- order and stats


def test_one_card_many_times_in_a_batch_is_applied_in_sequence_order(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given: one busy card, 30 transactions a minute apart, interleaved with other cards
    entries = []
    for i in range(30):
        entries.append(entry(transaction(i, "card_busy", minutes=i)))
        entries.append(entry(transaction(100 + i, f"card_other_{i}", minutes=i)))
    event = batch(local_stack, entries)
    busy = [(s, t) for s, t in valid_transactions(event) if t.card_id == "card_busy"]

    # when
    result = invoke(event)

    # then
    assert result == {"batchItemFailures": []}
    state = states(local_stack)["card_busy"]
    assert state["txn_count"] == 30
    table = features_table(local_stack)
    versions = [table[t.transaction_id]["state_version"] for _, t in busy]
    assert versions == list(range(1, 31))
    counts = [table[t.transaction_id]["features"]["txn_count_1h"] for _, t in busy]
    assert counts[0] == 0.0
    assert all(b > a for a, b in itertools.pairwise(counts)), counts
    first_seen = [table[t.transaction_id]["features"]["is_first_seen"] for _, t in busy]
    assert first_seen == [1.0] + [0.0] * 29
    # on the stream, the card's records keep their order (one partition key, one shard)
    records = [
        r for r in local_stack.read_stream("FeaturesStream") if r.partition_key == "card_busy"
    ]
    assert [r.json()["transaction_id"] for r in records] == [t.transaction_id for _, t in busy]


def test_quarantined_records_are_counted_per_hour_and_reason_once(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    event = mixed_batch(local_stack)

    invoke(event)
    invoke(event)  # a replay: the quarantine items exist, nothing is counted again

    items = count_items(local_stack)
    counted = quarantine_counted(local_stack)
    assert counted.n == 3
    assert counted.reasons == {
        "preprocess/invalid_json": 1,
        "preprocess/invalid_field": 1,
        "preprocess/not_an_object": 1,
    }
    # found per hour through WindowIndex
    for item in items:
        page = local_stack.dynamodb.query(
            TableName=local_stack.tables["MonitoringTable"],
            IndexName="WindowIndex",
            KeyConditionExpression="window_key = :w",
            ExpressionAttributeValues={":w": {"S": window_key(item["hour"])}},
        )
        assert item["pk"] in {i["pk"]["S"] for i in page["Items"]}
