"""`python -m local run --stack-name`: the producer and the checks against a deployed stack.

A real deployment cannot be reached here. The checks are run against a stack deployed into
moto, with the emulator playing Lambda's event-source mappings, through boto3's usual
configuration (endpoint and credentials from the environment), exactly as they would run
against AWS. moto cannot run a function for lambda.invoke: the smoke test's drift check runs
the deployed DriftCheckFunction in-process instead. moto delivers the bus's events to the
rules' SQS targets itself (AlertsQueue, RetrainingQueue), as EventBridge would.

The smoke test's checks are shown to pass on a healthy stack and to fail, each, when what it
checks is missing: rule targets removed, the drift report deleted after it was written,
records dropped by the score function, dead letters left on the queues.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from embedded.cli import main
from embedded.containers import FUNCTION_OUTPUT, Invocation, Invoker
from embedded.producer import ProducerResult
from embedded.redrive import RangeInvoker
from embedded.remote import (
    SMOKE_SCENARIO,
    SmokeContext,
    invoke_drift_check,
    retraining_check,
    run_against_stack,
    smoke_traffic,
)
from embedded.run import RunOptions
from embedded.server import DUMMY_CREDENTIALS, MotoServer
from embedded.stack import EmbeddedStack
from embedded.summary import Observed
from streamscore.core.times import utc_iso_ms


@pytest.fixture
def deployed(
    moto_server: MotoServer, moto_environment: None, stack_name: str, tmp_path: Path
) -> Iterator[EmbeddedStack]:
    """A stack in moto with the emulator running as Lambda would."""
    with (
        (tmp_path / "functions.log").open("w") as log,
        FUNCTION_OUTPUT.to(log),
        EmbeddedStack(stack_name=stack_name, server=moto_server) as stack,
    ):
        emulator = stack.emulator()
        emulator.start()
        yield stack
        emulator.stop()


def test_the_checks_find_every_record_of_a_deployed_stack_by_key(
    deployed: EmbeddedStack, tmp_path: Path
) -> None:
    options = RunOptions(
        transactions=300, invalid_rate=0.05, seed=3, timeout_s=60, out_dir=tmp_path
    )

    summary = run_against_stack(options, deployed.stack_name, None, drift_check=False)

    counts = summary["counts"]
    assert counts["in"] == 300 + counts["invalid_sent"]
    assert (counts["scored"], counts["quarantined"]) == (300, counts["invalid_sent"])
    assert (counts["not_seen"], counts["unaccounted"]) == (0, 0)
    assert summary["retraining_requests"] is None  # the queues are not read, only measured
    assert summary["failure_queue_depth"] == 0
    assert summary["quality"]["labelled"] == 300


def test_a_missing_stack_is_named(
    deployed: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--stack-name", "not-deployed", "--transactions", "10"])

    assert code == 2
    assert "stack not-deployed" in capsys.readouterr().err


def test_without_credentials_the_stack_mode_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    # when
    code = main(["run", "--stack-name", "prod", "--region", "eu-west-1"])

    # then
    assert code == 2
    err = capsys.readouterr().err
    assert "no AWS credentials found for --stack-name" in err
    assert "leave --stack-name out" in err


# ---------------------------------------------------------------- the smoke test

# the smoke tests' stacks ask for 120 scored transactions in a drift window (the default is
# 500): the same checks with a quarter of the traffic, and a quarter of the suite's time
SMOKE_MIN_SAMPLE = "120"
SMOKE_TRANSACTIONS = 720  # ~180 in the drift window
SMOKE_SEED = 5
CHECKS = ["records", "latency", "alert", "drift_report", "retraining", "dead_letters"]


@contextlib.contextmanager
def _deployed_as_if_on_aws(
    server: MotoServer,
    name: str,
    log_path: Path,
    score: Callable[[Invoker], Invoker] | None = None,
    parameters: dict[str, str] | None = None,
) -> Iterator[EmbeddedStack]:
    """A stack in moto with its mappings running; `score` wraps ScoreFunction's handler."""
    parameters = {"MinSampleSize": SMOKE_MIN_SAMPLE} | (parameters or {})
    with (
        log_path.open("w") as log,
        FUNCTION_OUTPUT.to(log),
        EmbeddedStack(stack_name=name, server=server, parameters=parameters) as stack,
    ):
        container = stack.function("ScoreFunction")
        invokers = {container.config.arn: score(container.invoke)} if score else None
        emulator = stack.emulator(invokers=invokers)
        emulator.start()
        try:
            yield stack
        finally:
            emulator.stop()


def _in_process(
    stack: EmbeddedStack, after: Callable[[Invocation], None] | None = None
) -> Callable[[Any], RangeInvoker]:
    """Stands in for embedded.remote.lambda_invoker: the deployed function runs in-process."""

    def factory(_lambda_client: Any) -> RangeInvoker:
        def invoke(name: str, event: dict[str, Any]) -> Invocation:
            invocation = stack.function(name).invoke(event)
            if after is not None:
                after(invocation)
            return invocation

        return invoke

    return factory


@contextlib.contextmanager
def _aws_environment(server: MotoServer) -> Iterator[None]:
    """boto3's usual configuration pointing at moto (for a module-scoped fixture)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in DUMMY_CREDENTIALS.items():
            patch.setenv(name, value)
        patch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        patch.setenv("AWS_DEFAULT_REGION", server.region)
        yield


@dataclass
class SmokeRun:
    stack: EmbeddedStack
    code: int
    out: str
    err: str
    summary: dict[str, Any]

    @property
    def checks(self) -> dict[str, dict[str, Any]]:
        return {check["name"]: check for check in self.summary["smoke"]["checks"]}

    def messages(self, output: str) -> list[dict[str, Any]]:
        """The message bodies on a queue, received and made visible again at once."""
        sqs = self.stack.client("sqs")
        received = sqs.receive_message(
            QueueUrl=self.stack.deployed.output(output),
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            WaitTimeSeconds=0,
        )
        return [json.loads(m["Body"]) for m in received.get("Messages", [])]


def _smoke(
    stack: EmbeddedStack,
    tmp: Path,
    invoker: Callable[[Any], RangeInvoker],
    *more: str,
    transactions: int = SMOKE_TRANSACTIONS,
) -> SmokeRun:
    """`python -m local run --stack-name NAME --smoke`, with the drift check run in-process."""
    out, err = io.StringIO(), io.StringIO()
    json_path = tmp / "smoke.json"
    with (
        pytest.MonkeyPatch.context() as patch,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        patch.setattr("embedded.remote.lambda_invoker", invoker)
        code = main(
            [
                "run", "--stack-name", stack.stack_name, "--smoke",
                "--transactions", str(transactions), "--seed", str(SMOKE_SEED),
                "--json", str(json_path), *more,
            ]
        )  # fmt: skip
    return SmokeRun(stack, code, out.getvalue(), err.getvalue(), json.loads(json_path.read_text()))


@pytest.fixture(scope="module")
def healthy(
    moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SmokeRun]:
    """One smoke test of a healthy stack, through the command line; the stack stays up."""
    tmp = tmp_path_factory.mktemp("healthy")
    with (
        _aws_environment(moto_server),
        _deployed_as_if_on_aws(moto_server, "smoke-healthy", tmp / "functions.log") as stack,
    ):
        yield _smoke(stack, tmp, _in_process(stack), "--timeout", "120")


@pytest.mark.slow
def test_the_smoke_test_passes_on_a_healthy_stack(healthy: SmokeRun) -> None:
    checks = healthy.checks
    summary = healthy.summary

    assert healthy.code == 0, healthy.err
    assert list(checks) == CHECKS
    assert [name for name, check in checks.items() if not check["passed"]] == []
    assert summary["smoke"]["passed"] is True
    assert f"({SMOKE_SCENARIO}, seed {SMOKE_SEED}," in summary["traffic"]
    assert summary["counts"]["scored"] == SMOKE_TRANSACTIONS
    latency = checks["latency"]
    assert 0 <= latency["p50_ms"] <= latency["p99_ms"]
    assert summary["latency_ms"]["n"] == SMOKE_TRANSACTIONS
    assert (summary["drift"]["status"], summary["drift"]["retraining"]) == ("drift", "sent")
    assert summary["smoke"]["cost"] == {
        "records_sent": summary["counts"]["in"],
        "drift_check_invocations": 1,
    }
    assert "Smoke test     passed" in healthy.out
    for name in CHECKS:
        assert f"pass  {name}" in healthy.out


@pytest.mark.slow
def test_the_smoke_test_consumes_nothing(healthy: SmokeRun) -> None:
    # the alerts and the retraining request it peeked at are still there for their consumers
    alerts = healthy.messages("AlertsQueueUrl")
    requests = healthy.messages("RetrainingQueueUrl")

    assert alerts
    assert {a["detail-type"] for a in alerts} == {"HighRiskTransaction"}
    assert [r["detail-type"] for r in requests] == ["RetrainingRequested"]
    assert requests[0]["detail"]["trigger_id"] in healthy.checks["retraining"]["detail"]


@pytest.mark.slow
def test_a_seed_the_stack_has_scored_is_replaced_by_a_fresh_one(healthy: SmokeRun) -> None:
    # given
    options = RunOptions(transactions=SMOKE_TRANSACTIONS, seed=SMOKE_SEED)

    # when
    with _aws_environment(healthy.stack.server):
        chosen, traffic, notes = smoke_traffic(
            options, healthy.stack.client, healthy.stack.deployed.outputs
        )

    # then
    assert chosen.seed != SMOKE_SEED
    assert chosen.scenario == SMOKE_SCENARIO
    assert notes == [
        f"seed {SMOKE_SEED} was sent to this stack before: this run uses {chosen.seed}"
    ]
    assert f"seed {chosen.seed}," in traffic.description


@pytest.mark.slow
def test_a_second_trigger_within_the_cooldown_fails_the_retraining_check_and_says_why(
    healthy: SmokeRun,
) -> None:
    # given: the healthy run's trigger was sent; a check of another window finds drift too
    window = healthy.summary["drift"]["window"]
    start = datetime.fromisoformat(window["start"]) + timedelta(seconds=1)
    other = {"start": utc_iso_ms(start), "end": utc_iso_ms(datetime.fromisoformat(window["end"]))}
    outputs = healthy.stack.deployed.outputs

    with _aws_environment(healthy.stack.server):
        drift = invoke_drift_check(
            _in_process(healthy.stack)(None), healthy.stack.client, outputs, other
        )
        context = SmokeContext(
            healthy.stack.client,
            outputs,
            {"RetrainCooldownHours": "24"},
            Observed(),
            ProducerResult(),
            drift,
            event_wait_s=1.0,
        )
        check = retraining_check(context)

    assert drift.response is not None
    assert (drift.response["status"], drift.response["retraining"]) == ("drift", "cooldown")
    assert not check.passed
    assert "RetrainCooldownHours (24)" in check.detail
    assert "RetrainCooldownHours=0" in check.detail


@pytest.mark.slow
def test_the_smoke_test_refuses_traffic_too_small_for_a_drift_verdict(
    healthy: SmokeRun, capsys: pytest.CaptureFixture[str]
) -> None:
    with _aws_environment(healthy.stack.server):
        code = main(
            ["run", "--stack-name", healthy.stack.stack_name, "--smoke", "--transactions", "100"]
        )

    assert code == 2
    err = capsys.readouterr().err
    assert f"fewer than the stack's MinSampleSize {SMOKE_MIN_SAMPLE}" in err
    assert "Send about --transactions" in err


def test_the_smoke_test_needs_a_deployed_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--smoke"]) == 2
    assert "--smoke tests a deployed stack: give its --stack-name" in capsys.readouterr().err


def _remove_target(stack: EmbeddedStack, target_id: str) -> None:
    """Take the queue target `target_id` off the stack's rule that has it."""
    events = stack.client("events")
    bus = stack.deployed.output("EventBusName")
    for rule in events.list_rules(EventBusName=bus)["Rules"]:
        targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
        if any(target["Id"] == target_id for target in targets):
            events.remove_targets(Rule=rule["Name"], EventBusName=bus, Ids=[target_id])
            return
    raise AssertionError(f"no rule of {stack.stack_name} has the target {target_id}")


@pytest.mark.slow
def test_each_smoke_check_fails_when_what_it_checks_is_missing(
    moto_server: MotoServer, moto_environment: None, tmp_path: Path
) -> None:
    # given: a stack whose rules lost their queue targets, whose drift report is gone once
    # written, with a message in each dead-letter queue
    with _deployed_as_if_on_aws(moto_server, "smoke-broken", tmp_path / "functions.log") as stack:
        _remove_target(stack, "AlertsQueue")
        _remove_target(stack, "RetrainingQueue")
        sqs = stack.client("sqs")
        for output in ("EventsDeadLetterQueueUrl", "FailureQueueUrl"):
            sqs.send_message(QueueUrl=stack.deployed.output(output), MessageBody="{}")

        def delete_report(invocation: Invocation) -> None:
            uri = invocation.response["report_uri"]
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            stack.client("s3").delete_object(Bucket=bucket, Key=key)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("embedded.remote.EVENT_WAIT_SECONDS", 3.0)
            run = _smoke(stack, tmp_path, _in_process(stack, delete_report), "--timeout", "120")

    # then: the records still pass; every other check fails, naming what is missing
    checks = run.checks
    failed = [name for name, check in checks.items() if not check["passed"]]
    assert run.code == 1
    assert failed == ["alert", "drift_report", "retraining", "dead_letters"]
    assert run.summary["smoke"]["passed"] is False
    assert "none of this run's" in checks["alert"]["detail"]
    assert checks["drift_report"]["detail"].startswith("HeadObject on s3://")
    # EventBridge took the request; no rule delivered it
    assert run.summary["drift"]["retraining"] == "sent"
    assert "on RetrainingQueue: none" in checks["retraining"]["detail"]
    dead_letters = checks["dead_letters"]
    assert (dead_letters["EventsDeadLetterQueue"], dead_letters["FailureQueue"]) == (1, 1)
    assert "Smoke test     FAILED" in run.out
    for name in failed:
        assert f"FAIL  {name}" in run.out
        assert f"problem: smoke test: {name} failed" in run.err


def _losing_last_record(score: Invoker) -> Invoker:
    """The score function, silently losing the last record of every batch."""

    def invoke(event: dict[str, Any]) -> Invocation:
        return score({**event, "Records": event["Records"][:-1]})

    return invoke


@pytest.mark.slow
def test_the_records_check_fails_when_records_are_lost(
    moto_server: MotoServer, moto_environment: None, tmp_path: Path
) -> None:
    # given: a stack whose score function loses records; a small sample is enough for it
    with (
        _deployed_as_if_on_aws(
            moto_server,
            "smoke-lossy",
            tmp_path / "functions.log",
            score=_losing_last_record,
            parameters={"MinSampleSize": "10"},
        ) as stack,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr("embedded.remote.EVENT_WAIT_SECONDS", 1.0)
        run = _smoke(stack, tmp_path, _in_process(stack), "--timeout", "10", transactions=200)

    # then
    records = run.checks["records"]
    not_seen = run.summary["counts"]["not_seen"]
    assert run.code == 1
    assert not records["passed"]
    assert 0 < not_seen < 200
    assert f"{not_seen:,} neither" in records["detail"]
    assert "problem: smoke test: records failed" in run.err
