"""The re-drive of FailureQueue against the embedded stack: the real handlers, failures forced.

Each test deploys template.yaml into the module's moto with batches of 20 and no retries, so
that a failing invocation sends its batch's range to FailureQueue at once; the handlers are
the real ones, behind a breaker that fails chosen invocations. The re-drive then reads the
ranges back from the streams and invokes the functions in-process, as it invokes a deployed
stack's with lambda.invoke.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from embedded.cli import main
from embedded.containers import FUNCTION_OUTPUT, FunctionError, Invocation, Invoker
from embedded.emulator import EventSourceEmulator
from embedded.producer import Producer, ProducerResult, Traffic, simulated_traffic
from embedded.redrive import RangeInvoker, in_process, lambda_invoker, redrive
from embedded.replay import snapshot
from embedded.server import MotoServer
from embedded.stack import EmbeddedStack
from embedded.summary import build_summary, observe_stack, scan, sent_record_ids

BATCH = 20
PARAMETERS = {
    "PreprocessBatchSize": str(BATCH),
    "PreprocessMaximumBatchingWindowInSeconds": "0",
    "PreprocessMaximumRetryAttempts": "0",
    "PreprocessBisectBatchOnFunctionError": "false",
    "PreprocessStartingPosition": "TRIM_HORIZON",
    "ScoreBatchSize": str(BATCH),
    "ScoreMaximumBatchingWindowInSeconds": "0",
    "ScoreMaximumRetryAttempts": "0",
    "ScoreBisectBatchOnFunctionError": "false",
    "ScoreStartingPosition": "TRIM_HORIZON",
}
DRAIN_SECONDS = 60.0
QUICK: dict[str, Any] = {"backoff_s": (0.01, 0.01)}
DOWN, LOST, RAISE = "down", "lost", "raise"


@dataclass
class Breaker:
    """The real function, failing on chosen invocations (1-based), or on every one while `broken`.

    down: every record reported failed, nothing done (a dependency is down); lost: the handler
    runs, then every record is reported failed (its response was lost); raise: it raises.
    """

    invoke: Invoker
    plan: dict[int, str] = field(default_factory=dict)
    broken: bool = False
    calls: int = 0

    def __call__(self, event: dict[str, Any]) -> Invocation:
        self.calls += 1
        mode = DOWN if self.broken else self.plan.get(self.calls)
        if mode == RAISE:
            return Invocation(error=FunctionError("RuntimeError", "a bug for a while", []))
        if mode == LOST:
            self.invoke(event)
        if mode in (DOWN, LOST):
            failures = [
                {"itemIdentifier": r["kinesis"]["sequenceNumber"]} for r in event["Records"]
            ]
            return Invocation(response={"batchItemFailures": failures})
        return self.invoke(event)


@dataclass
class Pipeline:
    stack: EmbeddedStack
    emulator: EventSourceEmulator
    preprocess: Breaker
    score: Breaker
    traffic: Traffic
    sent: ProducerResult

    @property
    def queue_url(self) -> str:
        return self.stack.deployed.output("FailureQueueUrl")

    @property
    def invoke(self) -> RangeInvoker:
        return in_process(self.emulator.invokers)

    def redrive(self, **options: Any) -> Any:
        report = redrive(self.queue_url, self.stack.client, self.invoke, **(QUICK | options))
        assert self.emulator.wait_until_drained(DRAIN_SECONDS)
        return report

    def peek(self) -> list[dict[str, Any]]:
        """FailureQueue's message bodies, left visible."""
        sqs = self.stack.client("sqs")
        messages: list[dict[str, Any]] = []
        while page := sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30
        ).get("Messages", []):
            messages += page
        for message in messages:
            sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return [json.loads(m["Body"]) for m in messages]

    def table(self, output: str) -> list[dict[str, Any]]:
        return scan(self.stack.client("dynamodb"), self.stack.deployed.output(output))


@pytest.fixture
def pipeline(
    moto_server: MotoServer, stack_name: str, tmp_path: Path
) -> Iterator[Callable[..., Pipeline]]:
    running: list[Pipeline] = []

    def start(
        traffic: Traffic,
        preprocess: dict[int, str] | None = None,
        score: dict[int, str] | None = None,
        broken: bool = False,
    ) -> Pipeline:
        stack = EmbeddedStack(
            stack_name=stack_name, parameters=PARAMETERS, server=moto_server
        ).__enter__()
        breakers = (
            Breaker(stack.function("PreprocessFunction").invoke, preprocess or {}, broken),
            Breaker(stack.function("ScoreFunction").invoke, score or {}),
        )
        stream = stack.deployed.output("TransactionsStreamName")
        sent = Producer(stack.client("kinesis"), stream).send(traffic)  # read from TRIM_HORIZON
        emulator = stack.emulator(
            invokers={
                stack.function(name).config.arn: breaker
                for name, breaker in zip(
                    ("PreprocessFunction", "ScoreFunction"), breakers, strict=True
                )
            },
            idle_poll_s=0.05,
        )
        emulator.start()
        run = Pipeline(stack, emulator, *breakers, traffic, sent)
        running.append(run)
        assert emulator.wait_until_drained(DRAIN_SECONDS)
        return run

    with (tmp_path / "functions.log").open("w") as log, FUNCTION_OUTPUT.to(log):
        yield start
        for run in running:
            run.emulator.stop()
            run.stack.__exit__(None, None, None)


def test_redrive_applies_every_given_up_range_once_and_a_second_redrive_does_nothing(
    pipeline: Callable[..., Pipeline],
) -> None:
    # given: 120 transactions in batches of 20; preprocess's 2nd batch fails before doing
    # anything, its 4th after doing everything (the response was lost); score's 1st raises
    transactions = 120
    run = pipeline(
        simulated_traffic(transactions, seed=21), preprocess={2: DOWN, 4: LOST}, score={1: RAISE}
    )
    given_up = run.peek()
    streams = Counter(
        b["KinesisBatchInfo"]["streamArn"].rsplit("/", 1)[-1].split("-")[2] for b in given_up
    )
    assert streams == {"TransactionsStream": 2, "FeaturesStream": 1}
    assert [b["KinesisBatchInfo"]["batchSize"] for b in given_up] == [BATCH] * 3
    assert len(run.table("PredictionsTableName")) == transactions - 2 * BATCH

    # when
    report = run.redrive()

    # then: three ranges re-driven whole, their messages deleted
    assert (report.messages, len(report.ranges), report.deleted) == (3, 3, 3)
    assert (report.records_redriven, report.records_kept, report.records_lost) == (3 * BATCH, 0, 0)
    assert [r.status for r in report.ranges] == ["redriven"] * 3
    assert report.ok and run.peek() == []
    # every transaction applied once: scored, its features stored, its card counted once
    predictions = {p["transaction_id"] for p in run.table("PredictionsTableName")}
    assert predictions == set(run.traffic.labels)
    assert len(run.table("FeaturesTableName")) == transactions
    per_card = Counter(json.loads(payload)["card_id"] for payload in run.traffic.payloads)
    states = {s["card_id"]: s["txn_count"] for s in run.table("EntityStateTableName")}
    assert states == dict(per_card)
    outputs = run.stack.deployed.outputs
    summary = build_summary(
        run.traffic,
        sent_record_ids(outputs["TransactionsStreamName"], run.sent.positions),
        observe_stack(run.stack.client, outputs),
        1.0,
    )
    counts = summary["counts"]
    assert (counts["in"], counts["scored"]) == (transactions, transactions)
    assert (counts["failed"], counts["unaccounted"]) == (0, 0)
    assert counts["duplicate_predictions"] == 0

    # a second re-drive finds nothing and invokes nothing
    calls = (run.preprocess.calls, run.score.calls)
    second = run.redrive()
    assert (second.messages, second.ranges, second.records_redriven) == (0, [], 0)
    assert (run.preprocess.calls, run.score.calls) == calls

    # the same ranges re-driven again (their messages sent twice, say) change nothing
    before = snapshot(run.stack.client, outputs)
    sqs = run.stack.client("sqs")
    for body in given_up:
        sqs.send_message(QueueUrl=run.queue_url, MessageBody=json.dumps(body))
    third = run.redrive()
    after = snapshot(run.stack.client, outputs)
    assert third.ok and third.records_redriven == 3 * BATCH
    assert after.predictions == before.predictions
    assert after.states == before.states
    assert after.features == before.features


class Trimmed:
    """A Kinesis client whose shards no longer hold the records below `horizon` (retention)."""

    def __init__(self, kinesis: Any, horizon: str):
        self.kinesis = kinesis
        self.horizon = int(horizon)

    def get_shard_iterator(self, **request: Any) -> Any:
        if request["ShardIteratorType"] == "AT_SEQUENCE_NUMBER" and (
            int(request["StartingSequenceNumber"]) < self.horizon
        ):
            raise ClientError(
                {"Error": {"Code": "InvalidArgumentException", "Message": "trimmed"}},
                "GetShardIterator",
            )
        return self.kinesis.get_shard_iterator(**request)

    def get_records(self, **request: Any) -> Any:
        page = self.kinesis.get_records(**request)
        kept = [r for r in page["Records"] if int(r["SequenceNumber"]) >= self.horizon]
        return page | {"Records": kept}


def test_a_range_still_failing_is_kept_and_records_past_retention_are_reported_lost(
    pipeline: Callable[..., Pipeline],
) -> None:
    # given: preprocess down from the start: both batches of 20 in FailureQueue, and a
    # message the re-drive is not for (a drift check's failed asynchronous invocation)
    run = pipeline(simulated_traffic(2 * BATCH, seed=22), broken=True)
    drift_failure = {
        "requestContext": {
            "condition": "RetriesExhausted",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:drift-check:$LATEST",
        },
        "requestPayload": {"window": {}},
    }
    run.stack.client("sqs").send_message(
        QueueUrl=run.queue_url, MessageBody=json.dumps(drift_failure)
    )
    pauses: list[float] = []

    # a dry run reads the ranges back, and invokes and deletes nothing
    calls = run.preprocess.calls
    dry = run.redrive(dry_run=True)
    assert [(r.status, r.found) for r in dry.ranges] == [("would re-drive", BATCH)] * 2
    assert (run.preprocess.calls, dry.deleted, len(run.peek())) == (calls, 0, 3)

    # when: the cause is not fixed yet
    kept = run.redrive(attempts=3, backoff_s=(0.1, 0.15), sleep=pauses.append)

    # then: three tries a backoff apart, nothing deleted, every message visible again
    assert pauses == [0.1, 0.15]
    assert [(r.status, r.attempts, r.redriven) for r in kept.ranges] == [("kept", 3, 0)] * 2
    assert (kept.records_kept, kept.deleted, kept.ok) == (2 * BATCH, 0, False)
    assert "reported 20 of 20 records failed (batchItemFailures)" in (kept.ranges[0].error or "")
    (other,) = kept.other
    assert other.endswith(
        "not a Kinesis batch's record (RetriesExhausted, drift-check); left in the queue"
    )
    assert len(run.peek()) == 3

    # when: the cause is fixed, but the stream no longer holds the first ten records
    run.preprocess.broken = False
    first, tenth = (run.sent.positions[i][1] for i in (0, 10))

    def trimmed(service: str) -> Any:
        client = run.stack.client(service)
        return Trimmed(client, tenth) if service == "kinesis" else client

    partly = redrive(run.queue_url, trimmed, run.invoke, **QUICK)
    assert run.emulator.wait_until_drained(DRAIN_SECONDS)

    # then: what is left is re-driven; the loss is reported with its range and its message kept
    lost, whole = partly.ranges
    assert (lost.status, lost.found, lost.redriven, lost.lost) == ("lost", 10, 10, 10)
    assert lost.lost_range == f"{first} up to (not including) {tenth}"
    assert (whole.status, whole.redriven) == ("redriven", 20)
    assert (partly.records_lost, partly.deleted, partly.ok) == (10, 1, False)
    assert len(run.peek()) == 2  # the lost range's and the drift check's

    # when: the loss is acknowledged
    acknowledged = redrive(run.queue_url, trimmed, run.invoke, delete_lost=True, **QUICK)
    assert run.emulator.wait_until_drained(DRAIN_SECONDS)

    # then: its message goes (its 10 records re-driven again change nothing); the other stays
    assert acknowledged.records_redriven == acknowledged.records_lost == 10
    assert acknowledged.deleted == 1
    assert [b["requestContext"]["condition"] for b in run.peek()] == ["RetriesExhausted"]
    assert len(run.table("PredictionsTableName")) == 2 * BATCH - 10


def test_the_redrive_command_redrives_a_deployed_stack(
    pipeline: Callable[..., Pipeline],
    moto_environment: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a "deployed" stack (moto, through boto3's usual configuration) with one range given up
    run = pipeline(simulated_traffic(2 * BATCH, seed=23), preprocess={1: DOWN})
    invoked: list[str] = []

    def invoker(client: Any) -> RangeInvoker:
        # moto cannot run the functions: what lambda.invoke would run runs in-process
        def invoke(function_arn: str, event: dict[str, Any]) -> Invocation:
            invoked.append(function_arn)
            return run.invoke(function_arn, event)

        return invoke

    monkeypatch.setattr("embedded.redrive.lambda_invoker", invoker)
    report_path = tmp_path / "redrive.json"

    # when
    code = main(["redrive", "--stack-name", run.stack.stack_name, "--json", str(report_path)])

    # then
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Re-drive       FailureQueue: 1 message, 1 range of" in out
    assert f"re-driven    {BATCH:>8,} records; messages deleted: 1" in out
    assert invoked == [run.stack.function("PreprocessFunction").config.arn]
    report = json.loads(report_path.read_text())
    assert (report["records_redriven"], report["records_kept"], report["records_lost"]) == (
        BATCH,
        0,
        0,
    )
    assert run.peek() == []
    assert run.emulator.wait_until_drained(DRAIN_SECONDS)
    assert len(run.table("PredictionsTableName")) == 2 * BATCH


def test_the_redrive_command_without_a_stack_says_how_to_redrive_the_embedded_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["redrive"])

    assert code == 2
    err = capsys.readouterr().err
    assert "exists only while `python -m local run` runs" in err
    assert "python -m local run --redrive" in err


class FakeLambda:
    """lambda.invoke's answers: a payload, and the FunctionError header for a failed function."""

    def __init__(self, payload: Any, function_error: str | None = None):
        self.payload = payload
        self.function_error = function_error
        self.requests: list[dict[str, Any]] = []

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        answer: dict[str, Any] = {
            "StatusCode": 200,
            "Payload": io.BytesIO(json.dumps(self.payload).encode()),
        }
        if self.function_error:
            answer["FunctionError"] = self.function_error
        return answer


def test_lambda_invoke_answers_become_invocations() -> None:
    # given
    event: dict[str, Any] = {"Records": []}
    failures = {"batchItemFailures": [{"itemIdentifier": "7"}]}

    # when
    fine = lambda_invoker(FakeLambda(failures))
    raised = lambda_invoker(
        FakeLambda(
            {"errorType": "RuntimeError", "errorMessage": "boom", "stackTrace": ["x"]}, "Unhandled"
        )
    )

    # then
    assert fine("arn:fn", event).response == failures
    error = raised("arn:fn", event).error
    assert error is not None and (error.error_type, error.message) == ("RuntimeError", "boom")
    client = FakeLambda(None)
    lambda_invoker(client)("arn:fn", event)
    assert client.requests[0]["InvocationType"] == "RequestResponse"
    assert json.loads(client.requests[0]["Payload"]) == event
