"""RetrainStartFunction against moto's Step Functions: the state machine of template.yaml, started
once per trigger however often EventBridge delivers its RetrainingRequested, with the waiting
rule's moment in the run's input; a detail without what a run needs fails loudly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from streamscore.retraining.start import InvalidTriggerError
from support.aws_stack import LocalStack
from support.handler_output import emitted_metrics
from support.lambda_runtime import FakeLambdaContext
from support.wiring import Wired, wire

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "events" / "retraining_requested.json").read_text())


@pytest.fixture
def machine(local_stack: LocalStack) -> str:
    definition = (ROOT / "statemachine" / "retrain.asl.json").read_text()
    role = "arn:aws:iam::123456789012:role/runner"
    return str(
        boto3.client("stepfunctions", region_name=REGION).create_state_machine(
            name="streamscore-runner",
            definition=definition.replace("${RetrainProjectName}", "streamscore-retrain"),
            roleArn=role,
        )["stateMachineArn"]
    )


@pytest.fixture
def app(load_handler: Any, local_stack: LocalStack, machine: str) -> Wired:
    environment = local_stack.function_environment(
        "RetrainStartFunction", {"STATE_MACHINE_ARN": machine}
    )
    return wire(load_handler("streamscore.handlers.retrain_start", environment), environment)


def executions(machine: str) -> list[dict[str, Any]]:
    client = boto3.client("stepfunctions", region_name=REGION)
    listed = client.list_executions(stateMachineArn=machine)["executions"]
    return [client.describe_execution(executionArn=e["executionArn"]) for e in listed]


def test_redelivered_requests_start_one_run_that_waits_for_matured_labels(
    app: Wired, machine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # when: EventBridge delivers the same RetrainingRequested three times
    responses = [app.lambda_handler(SAMPLE, FakeLambdaContext()) for _ in range(3)]

    # then: one execution, named by the trigger, waiting until the window's end + 14 + 35 days
    (execution,) = executions(machine)
    run = json.loads(execution["input"])
    assert run == {
        "trigger_id": SAMPLE["detail"]["trigger_id"],
        "reason": "drift",
        "model_version": SAMPLE["detail"]["model_version"],
        "trigger_time": "2026-03-04T12:00:00Z",
        "retrain_at": "2026-04-22T12:00:00Z",
    }
    assert execution["name"] == responses[0]["execution"]
    # while it runs, Step Functions answers a repeat with the original response
    assert [r["started"] for r in responses] == ["running"] * 3
    assert emitted_metrics(capsys.readouterr().out) == {"RetrainWaitDays": 0.0}  # long past


def test_a_request_for_a_run_that_ended_is_refused_and_starts_nothing(
    app: Wired, machine: str
) -> None:
    first = app.lambda_handler(SAMPLE, FakeLambdaContext())
    client = boto3.client("stepfunctions", region_name=REGION)
    (listed,) = client.list_executions(stateMachineArn=machine)["executions"]
    client.stop_execution(executionArn=listed["executionArn"])

    again = app.lambda_handler(SAMPLE, FakeLambdaContext())

    assert (first["started"], again["started"]) == ("running", "exists")
    assert len(executions(machine)) == 1


def _later(detail: dict[str, Any], **changes: str) -> dict[str, Any]:
    """The sample's RetrainingRequested a day later (another trigger), with `changes`."""
    later = json.loads(json.dumps(SAMPLE))
    later["detail"]["trigger_id"] = SAMPLE["detail"]["trigger_id"].replace("0304", "0305")
    later["detail"]["window"]["end"] = "2026-03-05T12:00:00+00:00"
    later["detail"] |= changes
    return later


def test_a_later_trigger_of_the_same_model_joins_the_waiting_run(app: Wired, machine: str) -> None:
    # given: the first trigger's run waits
    first = app.lambda_handler(SAMPLE, FakeLambdaContext())

    # when: the same model's drift is found again a day later
    later = app.lambda_handler(_later(SAMPLE["detail"]), FakeLambdaContext())

    # then: no second run: the later trigger joined the first
    assert (later["started"], later["joined"]) == ("joined", first["execution"])
    assert [e["name"] for e in executions(machine)] == [first["execution"]]


def test_once_the_run_ended_the_next_trigger_starts_its_own(app: Wired, machine: str) -> None:
    app.lambda_handler(SAMPLE, FakeLambdaContext())
    client = boto3.client("stepfunctions", region_name=REGION)
    (listed,) = client.list_executions(stateMachineArn=machine)["executions"]
    client.stop_execution(executionArn=listed["executionArn"])

    later = app.lambda_handler(_later(SAMPLE["detail"]), FakeLambdaContext())

    assert later["started"] == "running"
    assert sorted(json.loads(e["input"])["retrain_at"] for e in executions(machine)) == [
        "2026-04-22T12:00:00Z",
        "2026-04-23T12:00:00Z",
    ]


def test_another_models_trigger_starts_its_own_run(app: Wired, machine: str) -> None:
    # a version whose name begins with the first's is another version
    other = f"{SAMPLE['detail']['model_version']}b"
    app.lambda_handler(SAMPLE, FakeLambdaContext())
    later = _later(SAMPLE["detail"], model_version=other)
    later["detail"]["trigger_id"] = f"{other}/2026-03-05"

    assert app.lambda_handler(later, FakeLambdaContext())["started"] == "running"
    assert len(executions(machine)) == 2


@pytest.mark.parametrize(
    ("detail", "why"),
    [
        ({"window": {"end": "2026-03-04T12:00:00+00:00"}}, "no trigger_id"),
        ({"trigger_id": "v/w", "window": {}}, "no window end"),
        ({"trigger_id": "v/w", "window": {"end": "2026-03-04T12:00:00"}}, "no offset"),
    ],
)
def test_a_detail_without_what_a_run_needs_fails_and_starts_nothing(
    app: Wired, machine: str, detail: dict[str, Any], why: str
) -> None:
    with pytest.raises(InvalidTriggerError, match=why):
        app.lambda_handler(SAMPLE | {"detail": detail}, FakeLambdaContext())
    assert executions(machine) == []
