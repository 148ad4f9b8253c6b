"""The event-source emulator's Lambda semantics, against a handler that fails chosen records.

Each test deploys template.yaml with small batches into moto, puts records on TransactionsStream
and lets the emulator deliver them to a recording fake in place of PreprocessFunction; what the
fake saw and what landed in FailureQueue is what Lambda's Kinesis mapping would have done.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from embedded.containers import FunctionError, Invocation
from embedded.emulator import EventSourceEmulator, Incident, MappingConfig
from embedded.server import MotoServer
from embedded.stack import EmbeddedStack

PREPROCESS = "PreprocessFunction"
# Small batches from the start of the stream; no waiting for a window unless a test asks.
SMALL_BATCHES = {
    "PreprocessBatchSize": "8",
    "PreprocessMaximumBatchingWindowInSeconds": "0",
    "PreprocessMaximumRetryAttempts": "2",
    "PreprocessStartingPosition": "TRIM_HORIZON",
    "PreprocessBisectBatchOnFunctionError": "false",
}
DRAIN_SECONDS = 30.0


@dataclass
class FailingHandler:
    """Records every event; reports `fail` as batch item failures, raises on `poison`."""

    fail: set[str] = field(default_factory=set)
    poison: set[str] = field(default_factory=set)
    response: Callable[[list[str], list[str]], Any] | None = None
    clock_step: Callable[[], None] | None = None
    batches: list[list[str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: dict[str, Any]) -> Invocation:
        records = event["Records"]
        names = [base64.b64decode(r["kinesis"]["data"]).decode() for r in records]
        sequences = [r["kinesis"]["sequenceNumber"] for r in records]
        with self.lock:
            self.batches.append(names)
            self.events.append(event)
        if self.clock_step is not None:
            self.clock_step()
        if self.poison & set(names):
            return Invocation(error=FunctionError("RetryableError", "poison record", []))
        if self.response is not None:
            return Invocation(response=self.response(names, sequences))
        failures = [
            {"itemIdentifier": s} for n, s in zip(names, sequences, strict=True) if n in self.fail
        ]
        return Invocation(response={"batchItemFailures": failures})


@dataclass
class Harness:
    stack: EmbeddedStack
    handler: FailingHandler
    emulator: EventSourceEmulator
    sequences: dict[str, str]  # record name -> sequence number
    incidents: list[Incident]

    def failure_records(self) -> list[dict[str, Any]]:
        sqs = self.stack.client("sqs")
        url = self.stack.deployed.output("FailureQueueUrl")
        bodies = []
        while messages := sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300
        ).get("Messages", []):
            bodies += [json.loads(m["Body"]) for m in messages]
        return bodies


def put(stack: EmbeddedStack, names: Sequence[str]) -> dict[str, str]:
    response = stack.client("kinesis").put_records(
        StreamName=stack.deployed.output("TransactionsStreamName"),
        Records=[{"Data": name.encode(), "PartitionKey": "card_1"} for name in names],
    )
    return {name: r["SequenceNumber"] for name, r in zip(names, response["Records"], strict=True)}


@pytest.fixture
def harness(
    request: pytest.FixtureRequest, moto_server: MotoServer, stack_name: str
) -> Iterator[Callable[..., Harness]]:
    running: list[tuple[EmbeddedStack, EventSourceEmulator]] = []

    def start(
        handler: FailingHandler,
        names: Sequence[str],
        clock: Callable[[], float] | None = None,
        drain: bool = True,
        **parameters: str,
    ) -> Harness:
        stack = EmbeddedStack(
            stack_name=stack_name, parameters=SMALL_BATCHES | parameters, server=moto_server
        ).__enter__()
        sequences = put(stack, names)  # before the emulator starts: it reads from TRIM_HORIZON
        incidents: list[Incident] = []
        arn = stack.function(PREPROCESS).config.arn
        emulator = stack.emulator(
            invokers={arn: handler}, clock=clock, idle_poll_s=0.05, on_incident=incidents.append
        )
        emulator.start()
        running.append((stack, emulator))
        if drain:
            assert emulator.wait_until_drained(DRAIN_SECONDS)
        return Harness(stack, handler, emulator, sequences, incidents)

    yield start
    for stack, emulator in running:
        emulator.stop()
        stack.__exit__(None, None, None)


def records(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def test_partial_failures_retry_from_the_lowest_failed_record_then_go_to_failure_queue(
    harness: Callable[..., Harness],
) -> None:
    # given: r3 and r6 of a batch of eight always fail; two retries allowed
    handler = FailingHandler(fail={"r6", "r3"})

    # when
    run = harness(handler, records("r", 8))

    # then: the batch, then twice from r3 (lowest failed) on, then FailureQueue
    assert handler.batches == [records("r", 8)] + [[f"r{i}" for i in range(3, 8)]] * 2
    (failure,) = run.failure_records()
    info = failure["KinesisBatchInfo"]
    stream_arn = run.stack.deployed.output("TransactionsStreamArn")
    assert info["startSequenceNumber"] == run.sequences["r3"]
    assert info["endSequenceNumber"] == run.sequences["r7"]
    assert (info["batchSize"], info["streamArn"], info["shardId"]) == (
        5,
        stream_arn,
        "shardId-000000000000",
    )
    assert info["approximateArrivalOfFirstRecord"] <= info["approximateArrivalOfLastRecord"]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["requestContext"]["functionArn"] == run.stack.function(PREPROCESS).config.arn
    assert "functionError" not in failure["responseContext"]  # it answered, with failures
    assert failure["version"] == "1.0"
    stats = run.emulator.stats[run.emulator.mappings[0].uuid]
    assert (stats.records_succeeded, stats.records_discarded, stats.retries) == (3, 5, 2)


def test_the_shard_goes_on_after_a_batch_is_given_up(harness: Callable[..., Harness]) -> None:
    # given
    handler = FailingHandler(fail={"r1"})

    # when
    run = harness(handler, records("r", 10), PreprocessMaximumRetryAttempts="0")

    # then
    # batch 1 fails from r1 and is given up at once; batch 2 (r8, r9) is delivered after it
    assert handler.batches == [records("r", 8), ["r8", "r9"]]
    assert [f["KinesisBatchInfo"]["batchSize"] for f in run.failure_records()] == [7]


def test_a_raising_handler_is_bisected_down_to_the_poison_record(
    harness: Callable[..., Harness],
) -> None:
    # given: any batch holding r5 raises; bisect on, one retry
    handler = FailingHandler(poison={"r5"})

    # when
    run = harness(
        handler,
        records("r", 8),
        PreprocessBisectBatchOnFunctionError="true",
        PreprocessMaximumRetryAttempts="1",
    )

    # then: halves until r5 is alone, r5 retried once, everything else delivered once
    assert handler.batches == [
        records("r", 8),
        ["r0", "r1", "r2", "r3"],
        ["r4", "r5", "r6", "r7"],
        ["r4", "r5"],
        ["r4"],
        ["r5"],
        ["r5"],
        ["r6", "r7"],
    ]
    (failure,) = run.failure_records()
    info = failure["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == run.sequences["r5"]
    assert info["batchSize"] == 1
    assert failure["responseContext"]["functionError"] == "Unhandled"
    assert failure["requestContext"]["approximateInvokeCount"] == 2
    assert any("raised on a batch of 8 records" in i.message for i in run.incidents)
    assert any("poison record" in i.message for i in run.incidents)


def test_without_bisect_a_raising_batch_is_retried_whole_then_given_up(
    harness: Callable[..., Harness],
) -> None:
    # given
    handler = FailingHandler(poison={"r2"})

    # when
    run = harness(handler, records("r", 8))

    # then
    assert handler.batches == [records("r", 8)] * 3  # first attempt and two retries
    (failure,) = run.failure_records()
    assert failure["KinesisBatchInfo"]["batchSize"] == 8
    assert failure["KinesisBatchInfo"]["startSequenceNumber"] == run.sequences["r0"]
    assert failure["requestContext"]["approximateInvokeCount"] == 3


def test_records_older_than_the_maximum_age_are_given_up_without_more_retries(
    harness: Callable[..., Harness],
) -> None:
    # given: a clock that jumps two minutes at every invocation; records may be 60 s old
    now = [time.time()]
    handler = FailingHandler(poison={"r0"}, clock_step=lambda: now.__setitem__(0, now[0] + 120))

    # when
    run = harness(
        handler,
        records("r", 3),
        clock=lambda: now[0],
        PreprocessMaximumRecordAgeInSeconds="60",
        PreprocessMaximumRetryAttempts="5",
    )

    # then: one invocation; by the retry the records are too old
    assert handler.batches == [records("r", 3)]
    (failure,) = run.failure_records()
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    assert failure["KinesisBatchInfo"]["batchSize"] == 3


def test_an_unknown_item_identifier_fails_the_whole_batch(
    harness: Callable[..., Harness],
) -> None:
    # given
    handler = FailingHandler(
        response=lambda names, sequences: {"batchItemFailures": [{"itemIdentifier": "12345"}]}
    )

    # when
    run = harness(handler, records("r", 4), PreprocessMaximumRetryAttempts="1")

    # then
    assert handler.batches == [records("r", 4)] * 2
    assert run.failure_records()[0]["KinesisBatchInfo"]["batchSize"] == 4
    assert any("not a record of the batch" in i.message for i in run.incidents)


def test_batches_follow_the_batch_size_and_events_are_shaped_as_lambda_sends_them(
    harness: Callable[..., Harness],
) -> None:
    # given
    handler = FailingHandler()

    # when
    run = harness(handler, records("r", 19))

    # then
    assert [len(b) for b in handler.batches] == [8, 8, 3]
    assert [name for batch in handler.batches for name in batch] == records("r", 19)
    assert run.failure_records() == []
    function = run.stack.function(PREPROCESS).config
    record = handler.events[0]["Records"][0]
    assert record["eventSource"] == "aws:kinesis"
    assert record["eventName"] == "aws:kinesis:record"
    assert record["eventSourceARN"] == run.stack.deployed.output("TransactionsStreamArn")
    assert record["eventID"] == f"shardId-000000000000:{run.sequences['r0']}"
    assert record["invokeIdentityArn"] == function.role
    assert record["awsRegion"] == "us-east-1"
    assert record["kinesis"]["partitionKey"] == "card_1"
    assert record["kinesis"]["sequenceNumber"] == run.sequences["r0"]
    assert base64.b64decode(record["kinesis"]["data"]) == b"r0"
    assert abs(record["kinesis"]["approximateArrivalTimestamp"] - time.time()) < 60


def test_the_batching_window_waits_to_fill_a_batch(harness: Callable[..., Harness]) -> None:
    # given: a 3 s window; three records, and five more half a second later
    handler = FailingHandler()
    run = harness(
        handler, records("a", 3), drain=False, PreprocessMaximumBatchingWindowInSeconds="3"
    )
    time.sleep(0.5)
    put(run.stack, records("b", 5))

    # when
    assert run.emulator.wait_until_drained(DRAIN_SECONDS)

    # then: one full batch of eight, not the three that came first
    assert handler.batches == [records("a", 3) + records("b", 5)]


def test_without_a_window_a_batch_goes_with_what_is_there(
    harness: Callable[..., Harness],
) -> None:
    handler = FailingHandler()
    run = harness(handler, records("a", 3), drain=False)
    time.sleep(0.5)
    put(run.stack, records("b", 5))

    assert run.emulator.wait_until_drained(DRAIN_SECONDS)

    assert handler.batches == [records("a", 3), records("b", 5)]


def test_a_batch_size_changed_mid_run_applies_from_the_next_poll(
    harness: Callable[..., Harness],
) -> None:
    # given: batches of eight while the mapping says so
    handler = FailingHandler()
    run = harness(handler, records("a", 10))
    assert [len(b) for b in handler.batches] == [8, 2]

    # when: the mapping is updated, as `aws lambda update-event-source-mapping` would
    mapping = run.emulator.mappings[0]
    run.stack.client("lambda").update_event_source_mapping(UUID=mapping.uuid, BatchSize=3)
    run.emulator.reload()
    put(run.stack, records("b", 7))
    assert run.emulator.wait_until_drained(DRAIN_SECONDS)

    # then
    assert [len(b) for b in handler.batches] == [8, 2, 3, 3, 1]
    assert run.emulator.mappings[0].batch_size == 3


def test_a_second_mapping_from_trim_horizon_replays_the_stream_with_its_own_batch_size(
    harness: Callable[..., Harness],
) -> None:
    # given: ten records delivered in batches of eight
    handler = FailingHandler()
    run = harness(handler, records("r", 10))
    mapping = run.emulator.mappings[0]

    # when: a replay mapping of the same function with batches of four
    created = run.stack.client("lambda").create_event_source_mapping(
        EventSourceArn=mapping.event_source_arn,
        FunctionName=mapping.function_arn,
        StartingPosition="TRIM_HORIZON",
        BatchSize=4,
    )
    run.emulator.add([MappingConfig.from_api(created)])
    assert run.emulator.wait_until_drained(DRAIN_SECONDS)
    run.emulator.remove(created["UUID"])

    # then: the stream again, from its first record, in other batches
    assert handler.batches == [
        records("r", 8),
        ["r8", "r9"],
        records("r", 4),
        ["r4", "r5", "r6", "r7"],
        ["r8", "r9"],
    ]
    assert run.emulator.stats[created["UUID"]].records_read == 10
    assert created["UUID"] not in {m.uuid for m in run.emulator.mappings}
