"""The re-send of EventsDeadLetterQueue against the embedded stack (template.yaml in moto).

EventBridge dead-letters an event a rule target did not take as the message body, with
RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE, EXHAUSTED_RETRY_CONDITION and RETRY_ATTEMPTS
as message attributes (EventBridge User Guide, "Using dead-letter queues to process undelivered
events"). moto's rule targets never fail, so the tests put such messages on the stack's
EventsDeadLetterQueue themselves; the re-sent events then go through the stack's own rules,
which moto delivers to AlertsQueue and RetrainingQueue.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from embedded.cli import main
from embedded.resend import (
    MAX_REQUEST_BYTES,
    ResendReport,
    entry_size,
    put_batches,
    resend_events,
    rule_bus,
)
from embedded.server import MotoServer
from embedded.stack import EmbeddedStack
from streamscore.aws.events import MAX_ENTRIES
from streamscore.scoring.batch import ALERT_DETAIL_TYPE, ALERT_SOURCE, alert_detail

QUICK: dict[str, Any] = {"backoff_s": (0.01, 0.01)}
DRIFT_WINDOW_MINUTES = 360  # not the default, so the missed check's window shows it was read


class Stack:
    """The embedded stack's queues, bus and rules, and dead letters shaped as EventBridge sends them."""

    def __init__(self, stack: EmbeddedStack):
        self.stack = stack
        self.outputs = stack.deployed.outputs
        self.bus = self.outputs["EventBusName"]
        self.sqs = stack.client("sqs")
        events = stack.client("events")
        self.rules = {
            rule["Name"]: rule["Arn"] for rule in events.list_rules(EventBusName=self.bus)["Rules"]
        }
        self.schedule_rule = next(
            rule["Arn"]
            for rule in events.list_rules()["Rules"]
            if "DriftCheckSchedule" in rule["Name"]
        )

    @property
    def dlq(self) -> str:
        return self.outputs["EventsDeadLetterQueueUrl"]

    def rule(self, logical_id: str) -> str:
        return next(arn for name, arn in self.rules.items() if logical_id in name)

    def queue_arn(self, output: str) -> str:
        return self.outputs[output]

    def resend(self, **options: Any) -> ResendReport:
        return resend_events(
            self.dlq,
            self.bus,
            self.stack.client,
            drift_function=self.outputs["DriftCheckFunctionName"],
            **(QUICK | options),
        )

    def dead_letter(
        self,
        event: dict[str, Any],
        rule_arn: str,
        target_arn: str,
        error_code: str = "SDK_CLIENT_ERROR",
        body: str | None = None,
    ) -> str:
        """EventBridge's message for an event its target did not take; the message id."""
        attributes = {
            "RULE_ARN": rule_arn,
            "TARGET_ARN": target_arn,
            "ERROR_CODE": error_code,
            "ERROR_MESSAGE": "KMS key is disabled",
            "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
            "RETRY_ATTEMPTS": "185",
        }
        return str(
            self.sqs.send_message(
                QueueUrl=self.dlq,
                MessageBody=json.dumps(event) if body is None else body,
                MessageAttributes={
                    k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
                },
            )["MessageId"]
        )

    def drain(self, output: str) -> list[dict[str, Any]]:
        """The message bodies of a queue, deleted."""
        url = self.outputs[output]
        bodies: list[dict[str, Any]] = []
        while page := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in page:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def peek(self) -> list[dict[str, Any]]:
        """EventsDeadLetterQueue's messages, left visible; receiving them at once proves they are."""
        messages: list[dict[str, Any]] = []
        while page := self.sqs.receive_message(
            QueueUrl=self.dlq, MaxNumberOfMessages=10, VisibilityTimeout=30
        ).get("Messages", []):
            messages += page
        for message in messages:
            self.sqs.change_message_visibility(
                QueueUrl=self.dlq, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return messages


def event(source: str, detail_type: str, detail: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An event as EventBridge delivers it (and dead-letters it)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-03-04T11:59:58Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    } | extra


def high_risk(transaction_id: str) -> dict[str, Any]:
    prediction = {
        "transaction_id": transaction_id,
        "score": 0.97,
        "decision": "decline",
        "model_version": "v1",
        "event_time": "2026-03-04T11:59:50.000Z",
        "scored_at": "2026-03-04T11:59:57.120Z",
    }
    return event(ALERT_SOURCE, ALERT_DETAIL_TYPE, alert_detail(prediction))


def retraining_requested() -> dict[str, Any]:
    detail = {
        "trigger_id": "v1/20260303T120000Z--20260304T120000Z",
        "model_version": "v1",
        "status": "drift",
        "drifted": ["channel_ecom"],
    }
    return event(
        "streamscore.monitoring",
        "RetrainingRequested",
        detail,
        resources=["arn:aws:s3:::reports/2026/03/04/report.json"],
    )


@pytest.fixture
def stack(moto_server: MotoServer, stack_name: str) -> Iterator[Stack]:
    with EmbeddedStack(
        stack_name=stack_name,
        parameters={"DriftWindowMinutes": str(DRIFT_WINDOW_MINUTES)},
        server=moto_server,
    ) as embedded:
        yield Stack(embedded)


class Refusing:
    """An EventBridge client that refuses the entries naming a refused alert id; the rest go to moto."""

    def __init__(self, events: Any, refused: set[str]):
        self.events = events
        self.refused = refused
        self.calls: list[int] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's
        self.calls.append(len(Entries))
        refused = [json.loads(e["Detail"]).get("alert_id") in self.refused for e in Entries]
        taken = [e for e, no in zip(Entries, refused, strict=True) if not no]
        accepted = iter(self.events.put_events(Entries=taken)["Entries"] if taken else [])
        results = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"} if no else next(accepted)
            for no in refused
        ]
        return {"FailedEntryCount": sum(refused), "Entries": results}


def test_dead_lettered_events_go_back_through_their_rules_and_their_messages_are_deleted(
    stack: Stack,
) -> None:
    # given: an alert AlertsQueue did not take (dead-lettered twice, as at-least-once delivery
    # can), and a retraining request RetrainingQueue did not take
    alert, request = high_risk("t-1"), retraining_requested()
    alert_rule, retrain_rule = (
        stack.rule("HighRiskTransactionRule"),
        stack.rule("RetrainingRequested"),
    )
    alerts_queue, retraining_queue = (
        stack.queue_arn("AlertsQueueArn"),
        stack.queue_arn("RetrainingQueueArn"),
    )
    stack.dead_letter(alert, alert_rule, alerts_queue)
    stack.dead_letter(alert, alert_rule, alerts_queue, error_code="NO_PERMISSIONS")
    stack.dead_letter(request, retrain_rule, retraining_queue)

    # when
    report = stack.resend()

    # then: each event reached its queue once, through its rule, unchanged but for id and time
    (alerted,) = stack.drain("AlertsQueueUrl")
    (requested,) = stack.drain("RetrainingQueueUrl")
    for sent, original in ((alerted, alert), (requested, request)):
        assert (sent["source"], sent["detail-type"]) == (
            original["source"],
            original["detail-type"],
        )
        assert sent["detail"] == original["detail"]
        assert sent["resources"] == original["resources"]
        assert sent["id"] != original["id"]
    assert alerted["detail"]["alert_id"] == "t-1/v1"
    # the queue is empty, and the report says what was there
    assert stack.peek() == []
    assert (report.messages, report.events, report.resent, report.deleted) == (3, 2, 2, 3)
    assert (report.kept, report.other, report.put_calls, report.ok) == ([], [], 1, True)
    by_target = {(t.rule, t.target): t for t in report.targets}
    alerts = by_target[(alert_rule.rsplit("/", 1)[-1], alerts_queue.rsplit(":", 1)[-1])]
    assert (alerts.messages, alerts.events, alerts.resent, alerts.status) == (2, 1, 1, "re-sent")
    assert alerts.error_codes == {"SDK_CLIENT_ERROR": 1, "NO_PERMISSIONS": 1}
    assert alerts.detail_types == ["HighRiskTransaction"]
    retrains = by_target[(retrain_rule.rsplit("/", 1)[-1], retraining_queue.rsplit(":", 1)[-1])]
    assert (retrains.events, retrains.resent, retrains.detail_types) == (
        1,
        1,
        ["RetrainingRequested"],
    )

    # a second run finds nothing and sends nothing
    again = stack.resend()
    assert (again.messages, again.events, again.put_calls, again.ok) == (0, 0, 0, True)
    assert stack.drain("AlertsQueueUrl") == []


def test_an_event_putevents_refuses_keeps_its_message_and_the_others_go(stack: Stack) -> None:
    # given: three alerts dead-lettered; PutEvents refuses t-2's entry every time
    alert_rule, alerts_queue = (
        stack.rule("HighRiskTransactionRule"),
        stack.queue_arn("AlertsQueueArn"),
    )
    kept_id = ""
    for transaction in ("t-1", "t-2", "t-3"):
        message = stack.dead_letter(high_risk(transaction), alert_rule, alerts_queue)
        kept_id = message if transaction == "t-2" else kept_id
    refusing = Refusing(stack.stack.client("events"), {"t-2/v1"})
    pauses: list[float] = []

    def clients(service: str) -> Any:
        return refusing if service == "events" else stack.stack.client(service)

    # when
    report = resend_events(
        stack.dlq, stack.bus, clients, attempts=3, backoff_s=(0.1, 0.15), sleep=pauses.append
    )

    # then: the accepted two reached AlertsQueue and their messages went; t-2's message stayed,
    # visible again at once, after three tries a backoff apart
    assert sorted(b["detail"]["transaction_id"] for b in stack.drain("AlertsQueueUrl")) == [
        "t-1",
        "t-3",
    ]
    assert [m["MessageId"] for m in stack.peek()] == [kept_id]
    assert (refusing.calls, pauses) == ([3, 1, 1], [0.1, 0.15])
    assert (report.resent, report.deleted, report.ok) == (2, 2, False)
    (kept,) = report.kept
    assert "alert_id t-2/v1" in kept
    assert kept.endswith("PutEvents refused it: InternalFailure: try again; its message stays")
    (target,) = report.targets
    assert (target.events, target.resent, target.kept, target.status) == (3, 2, 1, "partly kept")

    # when PutEvents takes it again, the next run sends it and empties the queue
    refusing.refused.clear()
    after = resend_events(stack.dlq, stack.bus, clients, **QUICK)
    assert [b["detail"]["transaction_id"] for b in stack.drain("AlertsQueueUrl")] == ["t-2"]
    assert (after.resent, after.ok, stack.peek()) == (1, True, [])


def test_a_dry_run_reports_and_changes_nothing(stack: Stack) -> None:
    # given
    stack.dead_letter(
        high_risk("t-1"), stack.rule("HighRiskTransaction"), stack.queue_arn("AlertsQueueArn")
    )
    stack.dead_letter(
        retraining_requested(),
        stack.rule("RetrainingRequested"),
        stack.queue_arn("RetrainingQueueArn"),
    )
    before = sorted(m["MessageId"] for m in stack.peek())

    # when
    report = stack.resend(dry_run=True)

    # then
    assert sorted(m["MessageId"] for m in stack.peek()) == before  # still there, visible
    assert stack.drain("AlertsQueueUrl") == stack.drain("RetrainingQueueUrl") == []
    assert (report.events, report.resent, report.deleted, report.put_calls) == (2, 0, 0, 0)
    assert [t.status for t in report.targets] == ["would re-send"] * 2
    assert report.kept == [] and report.ok


def test_messages_that_are_not_events_and_missed_scheduled_checks_are_left_and_reported(
    stack: Stack,
) -> None:
    # given: a body that is no JSON, a JSON body that is no event, an event of a rule on another
    # bus, and the drift check's schedule that failed to invoke the function at 12:00:07
    alert_rule, alerts_queue = stack.rule("HighRiskTransaction"), stack.queue_arn("AlertsQueueArn")
    not_json = stack.dead_letter({}, alert_rule, alerts_queue, body="hello")
    not_event = stack.dead_letter({"detail": "x"}, alert_rule, alerts_queue)
    foreign_rule = alert_rule.replace(f"rule/{stack.bus}/", "rule/other-bus/")
    foreign = stack.dead_letter(high_risk("t-9"), foreign_rule, alerts_queue)
    scheduled = event(
        "aws.events",
        "Scheduled Event",
        {},
        time="2026-03-04T12:00:07Z",
        resources=[stack.schedule_rule],
    )
    drift_function = stack.outputs["DriftCheckFunctionArn"]
    missed = stack.dead_letter(scheduled, stack.schedule_rule, drift_function)

    # when
    report = stack.resend()

    # then: nothing re-sent, everything left, visible, and said
    assert (report.messages, report.events, report.put_calls, report.deleted) == (4, 0, 0, 0)
    assert len(stack.peek()) == 4
    assert stack.drain("AlertsQueueUrl") == []
    other = dict(line.split(": ", 1) for line in report.other)
    assert other[f"message {not_json}"] == "not an EventBridge event (not JSON); left in the queue"
    assert other[f"message {not_event}"] == (
        "not an EventBridge event (no valid source, detail-type, detail); left in the queue"
    )
    assert "not on the bus" in other[f"message {foreign}"]
    (check,) = report.missed_checks
    assert (check.message_id, check.deleted, check.note) == (missed, False, None)
    # the window the schedule would have checked: the stack's DriftWindowMinutes back from 12:00
    assert check.window == {
        "start": "2026-03-04T06:00:00+00:00",
        "end": "2026-03-04T12:00:00+00:00",
    }
    assert json.loads(check.payload) == {"window": check.window}
    assert check.function == stack.outputs["DriftCheckFunctionName"]
    assert not report.ok

    # when: the operator ran the check over that window and acknowledges it
    acknowledged = stack.resend(delete_missed_checks=True)

    # then: its message goes; the others stay
    assert (acknowledged.deleted, acknowledged.missed_checks[0].deleted) == (1, True)
    assert sorted(m["MessageId"] for m in stack.peek()) == sorted([not_json, not_event, foreign])


def test_the_command_resends_a_deployed_stacks_dead_letters(
    stack: Stack,
    moto_environment: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a "deployed" stack (moto, through boto3's usual configuration)
    stack.dead_letter(
        high_risk("t-1"), stack.rule("HighRiskTransaction"), stack.queue_arn("AlertsQueueArn")
    )
    report_path = tmp_path / "resend.json"
    name = stack.stack.stack_name

    # when / then: a dry run changes nothing and exits 0
    assert main(["resend-events", "--stack-name", name, "--dry-run"]) == 0
    assert "would re-send      1 events (dry run" in capsys.readouterr().out
    assert len(stack.peek()) == 1

    # when / then: the re-send
    assert main(["resend-events", "--stack-name", name, "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "Re-send        EventsDeadLetterQueue: 1 message, 1 event for the bus" in out
    assert "re-sent             1 events (PutEvents accepted them); messages deleted: 1" in out
    assert "re-sent: " in out and "HighRiskTransaction, 1 event (1 re-sent)" in out
    written = json.loads(report_path.read_text())
    assert (written["events_resent"], written["messages_deleted"], written["kept"]) == (1, 1, [])
    assert [b["detail"]["alert_id"] for b in stack.drain("AlertsQueueUrl")] == ["t-1/v1"]

    # a message left behind makes it exit 1
    stack.dead_letter({}, "", "", body="not an event")
    assert main(["resend-events", "--stack-name", name]) == 1
    assert "not an EventBridge event (not JSON); left in the queue" in capsys.readouterr().out


def test_the_command_without_a_stack_says_the_embedded_one_has_nothing_to_resend(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["resend-events"]) == 2
    err = capsys.readouterr().err
    assert "exists only while `python -m local run` runs" in err
    assert "give --stack-name" in err


def test_putevents_calls_take_at_most_ten_entries_under_256_kb() -> None:
    def entry(detail_bytes: int) -> dict[str, Any]:
        return {"Source": "s", "DetailType": "d", "Detail": "x" * detail_bytes}

    small = [entry(100)] * 23
    assert [len(call) for call in put_batches(small, entry_size)] == [10, 10, 3]
    big = [entry(100_000)] * 5  # three would reach 256 KB
    assert [len(call) for call in put_batches(big, entry_size)] == [2, 2, 1]
    too_big = entry(MAX_REQUEST_BYTES)
    assert put_batches([entry(10), too_big, entry(10)], entry_size) == [[entry(10), entry(10)]]
    # the size as EventBridge counts it: UTF-8 bytes of Source, DetailType, Detail, Resources
    assert entry_size({"Source": "é", "DetailType": "ab", "Detail": "{}", "Resources": ["r"]}) == 7
    assert len(put_batches([entry(1)] * MAX_ENTRIES, entry_size)) == 1


def test_the_bus_of_a_rule_arn() -> None:
    assert (
        rule_bus("arn:aws:events:us-east-1:123456789012:rule/streamscore/alerts") == "streamscore"
    )
    assert rule_bus("arn:aws:events:us-east-1:123456789012:rule/drift-schedule") == "default"


def test_a_missed_check_without_the_functions_setting_uses_the_default_window(stack: Stack) -> None:
    # the stack's function is unknown: the default DriftWindowMinutes, with a note saying so
    scheduled = event("aws.events", "Scheduled Event", {}, time="2026-03-04T12:30:00Z")
    stack.dead_letter(scheduled, stack.schedule_rule, stack.outputs["DriftCheckFunctionArn"])

    report = resend_events(stack.dlq, stack.bus, stack.stack.client, drift_function=None)

    (check,) = report.missed_checks
    assert check.window == {
        "start": "2026-03-03T12:00:00+00:00",
        "end": "2026-03-04T12:00:00+00:00",
    }
    assert check.note == "the stack names no drift check function"
