"""A replaced event-source mapping, under the template's defaults, loses and repeats nothing.

CloudFormation replaces an AWS::Lambda::EventSourceMapping when a property that cannot be
updated changes (StartingPosition, for one), and an operator may delete and recreate one. The
new mapping starts from its StartingPosition, not from the old one's checkpoint. With LATEST it
misses what arrived while no mapping existed ("could miss events during creation or updates",
Lambda Developer Guide, "Polling and stream starting positions"); with TRIM_HORIZON it re-reads
the retention, and a MaximumRecordAgeInSeconds below the records' age would send them all to
FailureQueue unprocessed. The template's defaults (TRIM_HORIZON, no maximum age) must give: every
transaction scored once, every card's state applied once, nothing in FailureQueue.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from embedded.emulator import EventSourceEmulator, MappingConfig
from embedded.producer import Producer, simulated_traffic
from embedded.server import MotoServer
from embedded.stack import EmbeddedStack
from embedded.summary import scan

TRANSACTIONS = 120
DRAIN_SECONDS = 60.0
HOURS_LATER = 2 * 3600.0  # older than the one-hour maximum record age the template had
# small batches, no batching window: the test is about positions, not throughput
PARAMETERS = {
    "StreamMode": "PROVISIONED",
    "ShardCount": "1",
    "PreprocessBatchSize": "25",
    "PreprocessMaximumBatchingWindowInSeconds": "0",
    "ScoreBatchSize": "25",
    "ScoreMaximumBatchingWindowInSeconds": "0",
}


def _replacement(lambda_: Any, old: MappingConfig) -> dict[str, Any]:
    """The mapping CloudFormation creates in place of `old`: the same template properties."""
    request: dict[str, Any] = {
        "EventSourceArn": old.event_source_arn,
        "FunctionName": old.function_arn,
        "StartingPosition": old.starting_position,
        "BatchSize": old.batch_size,
        "MaximumBatchingWindowInSeconds": int(old.batching_window_s),
        "ParallelizationFactor": old.parallelization_factor,
        "BisectBatchOnFunctionError": old.bisect_on_error,
        "MaximumRetryAttempts": old.maximum_retry_attempts,
        "MaximumRecordAgeInSeconds": old.maximum_record_age_s,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    }
    if old.on_failure_destination:
        request["DestinationConfig"] = {"OnFailure": {"Destination": old.on_failure_destination}}
    if old.starting_position == "AT_TIMESTAMP":
        request["StartingPositionTimestamp"] = old.starting_position_timestamp
    return dict(lambda_.create_event_source_mapping(**request))


def replace_mappings_and_check(
    moto_server: MotoServer, stack_name: str, parameters: dict[str, str]
) -> list[str]:
    """Run half the traffic, let two hours pass, replace both mappings while a third more
    arrives, send the rest; what went wrong, as sentences (empty: nothing)."""
    now = [time.time()]
    with EmbeddedStack(stack_name=stack_name, parameters=parameters, server=moto_server) as stack:
        outputs = stack.deployed.outputs
        kinesis, lambda_ = stack.client("kinesis"), stack.client("lambda")
        traffic = simulated_traffic(TRANSACTIONS, seed=11)
        producer = Producer(kinesis, outputs["TransactionsStreamName"])
        emulator: EventSourceEmulator = stack.emulator(clock=lambda: now[0], idle_poll_s=0.05)
        emulator.start()
        try:
            first, second = TRANSACTIONS // 2, (5 * TRANSACTIONS) // 6
            result = producer.send(traffic, stop=first)
            assert emulator.wait_until_drained(DRAIN_SECONDS)

            # two hours later, both mappings are replaced; records arrive in between
            now[0] += HOURS_LATER
            old = list(emulator.mappings)
            for mapping in old:
                emulator.remove(mapping.uuid)
                lambda_.delete_event_source_mapping(UUID=mapping.uuid)
            producer.send(traffic, start=first, stop=second, result=result)
            emulator.add([MappingConfig.from_api(_replacement(lambda_, m)) for m in old])
            producer.send(traffic, start=second, result=result)
            assert emulator.wait_until_drained(DRAIN_SECONDS)
        finally:
            emulator.stop()

        dynamodb, sqs = stack.client("dynamodb"), stack.client("sqs")
        predictions = Counter(
            p["transaction_id"] for p in scan(dynamodb, outputs["PredictionsTableName"])
        )
        states = {
            s["card_id"]: int(s["txn_count"])
            for s in scan(dynamodb, outputs["EntityStateTableName"])
        }
        failed = sqs.get_queue_attributes(
            QueueUrl=outputs["FailureQueueUrl"],
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]["ApproximateNumberOfMessages"]
        discarded = sum(emulator.stats[m.uuid].records_discarded for m in emulator.mappings)
        discarded += sum(emulator.stats[m.uuid].records_discarded for m in old)

    transactions = [json.loads(payload) for payload in traffic.payloads]
    per_card = Counter(str(t["card_id"]) for t in transactions)
    problems = []
    missing = set(traffic.labels) - set(predictions)
    if missing:
        problems.append(f"{len(missing)} transactions never scored")
    repeated = [t for t, n in predictions.items() if n > 1]
    if repeated:
        problems.append(f"{len(repeated)} transactions scored more than once")
    if states != dict(per_card):
        wrong = [c for c in per_card if states.get(c) != per_card[c]]
        problems.append(f"{len(wrong)} cards whose state did not apply each transaction once")
    if discarded or int(failed):
        problems.append(f"{discarded} records discarded, {failed} FailureQueue messages")
    return problems


@pytest.mark.slow
def test_replaced_mappings_under_the_template_defaults_lose_and_repeat_nothing(
    moto_server: MotoServer, stack_name: str
) -> None:
    assert replace_mappings_and_check(moto_server, stack_name, PARAMETERS) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"PreprocessStartingPosition": "LATEST", "ScoreStartingPosition": "LATEST"},
            "never scored",
        ),
        (
            {
                "PreprocessMaximumRecordAgeInSeconds": "3600",
                "ScoreMaximumRecordAgeInSeconds": "3600",
            },
            "records discarded",
        ),
    ],
    ids=["latest-misses-the-gap", "an-hour-maximum-age-discards-the-replay"],
)
def test_the_former_defaults_fail_the_same_check(
    moto_server: MotoServer, stack_name: str, overrides: dict[str, str], expected: str
) -> None:
    # the check can fail: each former default, alone, breaks it as the documentation says
    problems = replace_mappings_and_check(moto_server, stack_name, PARAMETERS | overrides)
    assert any(expected in p for p in problems), problems
