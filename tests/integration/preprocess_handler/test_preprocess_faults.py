"""PreprocessFunction's handler against moto: crashes, partial failures, throttling, denied and missing resources.

A crash after any write, then the same batch again, loses and doubles nothing; unprocessed
keys and items and failed records are retried; what outlasts the retries is reported, and
redelivery applies each record once.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError

from streamscore.core.errors import SystemicError
from support.aws_stack import LocalStack, hash_keys
from support.builders import (
    failures,
    from_sequence,
    sequences,
)
from support.flaky import FlakyDynamoDB, FlakyKinesis
from support.preprocess_handler import (
    Invoker,
    assert_accounted,
    drain,
    expected_features,
    features_table,
    forwarded,
    four_cards,
    mixed_batch,
    quarantine,
    quarantine_counted,
    record_id,
    seqs_of,
    states,
    use_clients,
    valid_transactions,
)
from support.wiring import Wired

# ----------------------------------------------------------------------------- crashes


class LambdaDied(Exception):  # noqa: N818 - it is not an error of the code under test
    """The function died mid-batch (timeout, out of memory): an exception nobody handles."""


class CrashAfter:
    """A port that does its write, then dies."""

    def __init__(self, port: Any, method: str):
        self._port = port
        self._method = method

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._port, name)
        if name != self._method:
            return attribute

        def write_then_die(*args: Any, **kwargs: Any) -> Any:
            attribute(*args, **kwargs)
            raise LambdaDied(f"died after {type(self._port).__name__}.{name}")

        return write_then_die


@pytest.mark.parametrize(
    ("port", "method"),
    [
        ("quarantine", "save"),
        ("features", "save"),
        ("forwarder", "forward"),
        ("states", "save"),
    ],
)
def test_a_crash_after_a_write_then_the_same_batch_again_loses_and_doubles_nothing(
    local_stack: LocalStack,
    app: Wired,
    invoke: Invoker,
    monkeypatch: pytest.MonkeyPatch,
    port: str,
    method: str,
) -> None:
    # given
    event = mixed_batch(local_stack)
    valid = valid_transactions(event)
    healthy = app.ports
    monkeypatch.setattr(
        app,
        "ports",
        dataclasses.replace(healthy, **{port: CrashAfter(getattr(healthy, port), method)}),
    )

    # when: the function dies, then Kinesis retries the same batch on a healthy function
    with pytest.raises(LambdaDied):
        invoke(event)
    drain(app)
    monkeypatch.setattr(app, "ports", healthy)
    result = invoke(event)

    # then
    assert result == {"batchItemFailures": []}
    assert_accounted(local_stack, event, result, invoke.metrics)
    expected = expected_features([t for _, t in valid])
    table = features_table(local_stack)
    assert {k: v["features"] for k, v in table.items()} == expected
    on_stream = forwarded(local_stack)
    assert set(on_stream) == set(expected)
    for txn_id, copies in on_stream.items():
        assert all(c["features"] == expected[txn_id] for c in copies)
    per_card = Counter(t.card_id for _, t in valid)
    assert {c: s["txn_count"] for c, s in states(local_stack).items()} == dict(per_card)
    bad = set(sequences(event)) - {s for s, _ in valid}
    assert set(quarantine(local_stack)) == {record_id(local_stack, s) for s in bad}
    assert quarantine_counted(local_stack).n == len(bad)


# ----------------------------------------------------------------------------- partial failures


def test_unprocessed_items_keys_and_failed_records_are_retried_until_everything_lands(
    local_stack: LocalStack, app: Wired, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: each kind of partial failure a few times, then success
    event = four_cards(local_stack)
    txn_of = {s: t.transaction_id for s, t in valid_transactions(event)}
    dynamodb = FlakyDynamoDB(
        app.dynamodb,
        hash_keys(local_stack),
        unprocessed_reads={"card_W": 2},
        unprocessed_writes={"card_X": 3, txn_of[seqs_of(event, "card_Y")[1]]: 1},
    )
    kinesis = FlakyKinesis(app.kinesis, {txn_of[seqs_of(event, "card_Z")[2]]: 2})
    use_clients(app, monkeypatch, dynamodb, kinesis)
    # when
    result = invoke(event)

    # then
    assert result == {"batchItemFailures": []}
    assert invoke.metrics["Retries"] == 2 + 3 + 1 + 2
    state_table = local_stack.tables["EntityStateTable"]
    reads = [r[state_table] for r in dynamodb.get_requests if state_table in r]
    assert [len(r["Keys"]) for r in reads] == [4, 1, 1]  # the batch's read, then card_W twice
    assert all(r["ConsistentRead"] is True for r in reads)
    assert set(features_table(local_stack)) == set(txn_of.values())
    assert set(forwarded(local_stack)) == set(txn_of.values())
    assert {c: s["txn_count"] for c, s in states(local_stack).items()} == {
        f"card_{c}": 4 for c in "WXYZ"
    }
    assert_accounted(local_stack, event, result, invoke.metrics)


def test_faults_that_outlast_the_retries_are_reported_then_redelivery_applies_each_once(
    local_stack: LocalStack, app: Wired, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: X's second feature item never lands, Y's features never reach the stream,
    # Z's state can never be read; W is healthy
    event = four_cards(local_stack)
    valid = valid_transactions(event)
    txn_of = {s: t.transaction_id for s, t in valid}
    x, y, z = (seqs_of(event, f"card_{c}") for c in "XYZ")
    dynamodb = FlakyDynamoDB(
        app.dynamodb,
        hash_keys(local_stack),
        unprocessed_reads={"card_Z": None},
        unprocessed_writes={txn_of[x[1]]: None},
    )
    kinesis = FlakyKinesis(app.kinesis, {txn_of[s]: None for s in y})
    use_clients(app, monkeypatch, dynamodb, kinesis)

    # when
    result = invoke(event)

    # then: exactly those records are reported, in sequence order
    failed = failures(result)
    assert failed == [s for s in sequences(event) if s in {x[1], *y, *z}]
    assert_accounted(local_stack, event, result, invoke.metrics)
    # the states commit first: X and Y are applied whole, X's second record waits in its
    # card's pending entries for its feature item, Y's are stored but not yet on the stream
    after_failure = states(local_stack)
    assert {c: s["txn_count"] for c, s in after_failure.items()} == {
        "card_W": 4,
        "card_X": 4,
        "card_Y": 4,
    }
    assert txn_of[x[1]] in after_failure["card_X"]["pending"]
    assert txn_of[x[1]] not in features_table(local_stack)
    assert not set(forwarded(local_stack)) & {txn_of[s] for s in y}

    # when: Kinesis delivers again from the lowest failed record, on a healthy function
    app.use()
    retry = from_sequence(event, min(failed, key=int))
    result = invoke(retry)

    # then: every record forwarded, every state applied exactly once per transaction
    assert result == {"batchItemFailures": []}
    assert_accounted(local_stack, retry, result, invoke.metrics)
    expected = expected_features([t for _, t in valid])
    assert {k: v["features"] for k, v in features_table(local_stack).items()} == expected
    on_stream = forwarded(local_stack)
    assert set(on_stream) == set(expected)
    for txn_id, copies in on_stream.items():
        assert all(c["features"] == expected[txn_id] for c in copies)
    final = states(local_stack)
    assert {c: s["txn_count"] for c, s in final.items()} == {f"card_{c}": 4 for c in "WXYZ"}
    assert quarantine_counted(local_stack).n == 1


def test_throttling_that_outlasts_the_retries_fails_records_not_the_invocation(
    local_stack: LocalStack, app: Wired, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: FeaturesTable throttles every write
    event = four_cards(local_stack)
    valid = valid_transactions(event)
    throttled = ClientError(
        {
            "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "BatchWriteItem",
    )
    dynamodb = FlakyDynamoDB(
        app.dynamodb,
        hash_keys(local_stack),
        raise_on={"BatchWriteItem": (local_stack.tables["FeaturesTable"], throttled)},
    )
    use_clients(app, monkeypatch, dynamodb)

    # when
    result = invoke(event)

    # then: every valid record is reported; the bad one is quarantined, not failed; the
    # states committed, each with its records pending until their feature items land
    assert failures(result) == [s for s, _ in valid]
    assert_accounted(local_stack, event, result, invoke.metrics)
    assert features_table(local_stack) == {}
    pending = {t for card in states(local_stack).values() for t in card["pending"]}
    assert pending == {t.transaction_id for _, t in valid}
    assert len(quarantine(local_stack)) == 1


@pytest.mark.parametrize("code", ["AccessDeniedException", "UnrecognizedClientException"])
def test_access_denied_fails_the_invocation_with_a_clear_message(
    local_stack: LocalStack,
    app: Wired,
    invoke: Invoker,
    monkeypatch: pytest.MonkeyPatch,
    code: str,
) -> None:
    # given
    denied = ClientError(
        {
            "Error": {"Code": code, "Message": "not authorized"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "BatchGetItem",
    )
    state_table = local_stack.tables["EntityStateTable"]
    dynamodb = FlakyDynamoDB(
        app.dynamodb, hash_keys(local_stack), raise_on={"BatchGetItem": (state_table, denied)}
    )
    use_clients(app, monkeypatch, dynamodb)

    # when
    with pytest.raises(SystemicError) as caught:
        invoke(four_cards(local_stack))

    # then
    assert code in str(caught.value)
    assert f"BatchGetItem on {state_table}" in str(caught.value)


@pytest.mark.parametrize(
    "resource",
    ["EntityStateTable", "FeaturesTable", "QuarantineTable", "MonitoringTable", "FeaturesStream"],
)
def test_a_missing_resource_fails_the_invocation_naming_it(
    local_stack: LocalStack, app: Wired, invoke: Invoker, resource: str
) -> None:
    # given
    name = local_stack.resource_name(resource)
    if resource in local_stack.tables:
        local_stack.dynamodb.delete_table(TableName=name)
    else:
        local_stack.kinesis.delete_stream(StreamName=name)

    # when / then
    with pytest.raises(SystemicError, match=r"ResourceNotFoundException") as caught:
        invoke(four_cards(local_stack))
    assert name in str(caught.value)
