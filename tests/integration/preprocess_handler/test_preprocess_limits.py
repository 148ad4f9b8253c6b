"""PreprocessFunction's handler against moto: the batch APIs' limits, a card-testing burst, pending records.

Many distinct cards are read and written within the batch limits; a burst on one card is
applied in slices; a pending record is dropped only past the stream's horizon; and the
documented limit of an id reused on another card.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from support.aws_stack import LocalStack
from support.builders import (
    entry,
    failures,
    from_sequence,
    transaction,
)
from support.handler_output import CallCounter
from support.preprocess_handler import (
    Invoker,
    batch,
    features_table,
    quarantine,
    states,
)
from support.wiring import Wired

# ----------------------------------------------------------------------------- batch limits


@pytest.mark.parametrize("n_cards", [30, 130])
def test_many_distinct_cards_are_read_and_written_within_the_batch_limits(
    local_stack: LocalStack, app: Wired, invoke: Invoker, n_cards: int
) -> None:
    # given: n_cards cards, the first 20 of them twice
    entries = [entry(transaction(i, f"card_{i:04d}", minutes=i % 50)) for i in range(n_cards)]
    entries += [entry(transaction(1000 + i, f"card_{i:04d}", minutes=60 + i)) for i in range(20)]
    event = batch(local_stack, entries)
    counter = CallCounter().attach(app.dynamodb, app.kinesis)

    # when
    result = invoke(event)

    # then
    assert result == {"batchItemFailures": []}
    state_table = local_stack.tables["EntityStateTable"]
    gets = [
        r for r in counter.requests("dynamodb.BatchGetItem") if state_table in r["RequestItems"]
    ]
    assert all(len(r["RequestItems"][state_table]["Keys"]) <= 100 for r in gets)
    assert sum(len(r["RequestItems"][state_table]["Keys"]) for r in gets) == n_cards
    # the replay guard must see the previous batch's state write
    assert all(r["RequestItems"][state_table].get("ConsistentRead") is True for r in gets)
    assert len(gets) == -(-n_cards // 100)
    writes = counter.requests("dynamodb.BatchWriteItem")
    assert all(len(items) <= 25 for r in writes for items in r["RequestItems"].values())
    written: Counter[str] = Counter()
    for request in writes:
        for table, items in request["RequestItems"].items():
            written[table] += len(items)
            keys = [json.dumps(i["PutRequest"]["Item"], sort_keys=True, default=str) for i in items]
            assert len(set(keys)) == len(keys)
    assert written[state_table] == n_cards
    assert written[local_stack.tables["FeaturesTable"]] == len(entries)
    assert counter.calls["dynamodb.BatchWriteItem"] == -(-n_cards // 25) + -(-len(entries) // 25)
    assert counter.calls["kinesis.PutRecords"] == 1
    # nothing was quarantined: no transaction, and no per-batch item any more
    assert counter.calls["dynamodb.TransactWriteItems"] == counter.calls["dynamodb.PutItem"] == 0
    assert len(states(local_stack)) == n_cards
    assert sum(s["txn_count"] for s in states(local_stack).values()) == len(entries)


def test_a_card_testing_burst_in_one_batch_is_applied_in_slices_and_never_blocks_the_card(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given: 700 transactions on one card in one batch (a card-testing attack), with another
    # card's before and after. Carried whole in the card's state item (its pending feature
    # records), they would make an item far past DynamoDB's 400 KB limit: a write that can
    # never succeed, retried until the records are discarded.
    burst = [transaction(i, "card_burst", minutes=i / 60) for i in range(700)]
    other = [transaction(2000 + i, "card_calm", minutes=i) for i in range(4)]
    event = batch(local_stack, [entry(t) for t in [*other[:2], *burst, *other[2:]]])

    # when: delivered as Lambda does, from the lowest reported failure each time
    rounds, result = 0, invoke(event)
    while failures(result):
        rounds += 1
        assert rounds < 20, "the card makes no progress"
        result = invoke(from_sequence(event, min(failures(result), key=int)))

    # then: every transaction applied once, in order; the calm card never waited
    state = states(local_stack)
    assert state["card_burst"]["txn_count"] == 700
    assert state["card_calm"]["txn_count"] == 4
    table = features_table(local_stack)
    assert [table[t["transaction_id"]]["state_version"] for t in burst] == list(range(1, 701))
    assert 1 <= rounds <= 10


@pytest.mark.parametrize("days_old", [3, 0], ids=["past-the-horizon", "young"])
def test_a_pending_record_whose_feature_item_expired_is_dropped_past_the_horizon_only(
    local_stack: LocalStack, invoke: Invoker, days_old: int
) -> None:
    # given: card_x applied txn A, then FeaturesTable's copy of A is gone (TTL), and the
    # card's state still carries A as pending, ingested `days_old` days ago
    first = [transaction(1, "card_x")]
    assert failures(invoke(batch(local_stack, [entry(t) for t in first]))) == []
    dynamodb = local_stack.dynamodb
    dynamodb.delete_item(
        TableName=local_stack.tables["FeaturesTable"], Key={"transaction_id": {"S": "txn-00001"}}
    )
    state = states(local_stack)["card_x"]
    pending = dict(state["pending"])
    assert set(pending) == {"txn-00001"}, "A's pending record must still be there"
    old = datetime.now(UTC) - timedelta(days=days_old, minutes=1)
    dynamodb.update_item(
        TableName=local_stack.tables["EntityStateTable"],
        Key={"card_id": {"S": "card_x"}},
        UpdateExpression="SET pending.#t.ingested_at = :at",
        ExpressionAttributeNames={"#t": "txn-00001"},
        ExpressionAttributeValues={":at": {"S": old.isoformat(timespec="milliseconds")}},
    )

    # when: the card's next transaction, B
    second = [transaction(2, "card_x", minutes=5)]
    assert failures(invoke(batch(local_stack, [entry(t) for t in second], first_index=1))) == []

    # then: past the stream's retention and a day (24 h + 1 day here) A is dropped; a young
    # one is kept, since a retry may still need it
    pending_after = set(states(local_stack)["card_x"]["pending"])
    expected = {"txn-00002"} if days_old >= 3 else {"txn-00001", "txn-00002"}
    assert pending_after == expected
    assert states(local_stack)["card_x"]["txn_count"] == 2


def test_limit_an_id_reused_on_another_card_inside_the_failure_window_counts_on_both_cards(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # The documented limit (README, "Effectively once"), pinned so a change of it is seen.
    # given: card_a's X was committed to its state (pending) but FeaturesTable never got it
    # (a lost response, then its range discarded to FailureQueue)
    x_on_a = transaction(1, "card_a")
    assert failures(invoke(batch(local_stack, [entry(x_on_a)]))) == []
    local_stack.dynamodb.delete_item(
        TableName=local_stack.tables["FeaturesTable"], Key={"transaction_id": {"S": "txn-00001"}}
    )

    # when: the same id on card_b comes first to the ledger, then card_a's X is re-driven
    x_on_b = transaction(1, "card_b", amount=77.0)
    assert failures(invoke(batch(local_stack, [entry(x_on_b)], first_index=1))) == []
    assert failures(invoke(batch(local_stack, [entry(x_on_a)], first_index=2))) == []

    # then: card_b's version owns the ledger; card_a's record is quarantined as a conflicting
    # duplicate, and card_a's state still counts the X it committed before the failure
    assert features_table(local_stack)["txn-00001"]["card_id"] == "card_b"
    reasons = [q["reason"] for q in quarantine(local_stack).values()]
    assert reasons == ["conflicting_duplicate"]
    assert states(local_stack)["card_a"]["txn_count"] == 1
    assert states(local_stack)["card_b"]["txn_count"] == 1
