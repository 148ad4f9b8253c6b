"""Re-send of EventsDeadLetterQueue: the events an EventBridge rule target did not take.

Every rule target of the stack (RetrainingRequested to RetrainingQueue and the optional state
machine or SageMaker pipeline, HighRiskTransaction to AlertsQueue and the optional SNS topic,
the drift check's schedule) retries, then dead-letters to EventsDeadLetterQueue. What
EventBridge puts there is the event itself as the message body, with the failed delivery as
message attributes. EventBridge User Guide, "Using dead-letter queues to process undelivered
events": "Each message in your DLQ will include the following custom attributes: RULE_ARN,
TARGET_ARN, ERROR_CODE" (sample codes: CONNECTION_FAILURE, ...), the list going on with
ERROR_MESSAGE, EXHAUSTED_RETRY_CONDITION and RETRY_ATTEMPTS; its earlier edition ("Event retry
policy and using dead-letter queues") has "EventBridge includes event metadata and message
attributes in the message, including: the Error Code, Error Message, the Exhausted Retry
Condition, Rule ARN, Retry Attempts, and the Target ARN". Re-sending is ours to do: "Then you
can resolve the issue that resulted in the failed event delivery and process the events at a
later time" (the page), by "custom consumer logic for polling, processing, and deleting the
messages in the DLQ" (the earlier edition, "How to resend events from a dead-letter queue").
Only RULE_ARN, TARGET_ARN and ERROR_CODE are used here (grouping, the report).

`resend_events` receives every message, groups them by rule and target for the report, and puts
each distinct event (by its event id: one event dead-lettered by two targets is put once) back
on the stack's bus with PutEvents: its Source, DetailType, Detail and Resources, at most 10
entries a call and under PutEvents' 256 KB of entries a call (EventBridge User Guide,
"Calculating Amazon EventBridge PutEvents event entry size": "The total entry size must be less
than 256KB", an entry counting the UTF-8 bytes of Source, DetailType, Detail and each resource).
The event gets a new id and time from EventBridge; its detail is unchanged. Entries PutEvents
refused (FailedEntryCount, an ErrorCode on the entry) are tried again a few times, a backoff
apart. A message is deleted only once its event was accepted; the others are made visible again
at once (visibility 0) and reported with the refusal, for the next run.

Re-putting goes through the rules again, so the event reaches every target whose rule matches,
not only the one that failed: a HighRiskTransaction that failed only for the SNS topic reaches
AlertsQueue a second time. That is safe because consumers de-duplicate: every HighRiskTransaction
carries `alert_id` (transaction id / model version, streamscore.scoring.batch.alert_detail) and
every RetrainingRequested `trigger_id` (model version / window, streamscore.drift.report); a
state machine or pipeline attached to RetrainingRequested must de-duplicate on `trigger_id` too.

A target still failing takes the re-sent event through its retries again, then dead-letters it
once more (a new message, and the alarms fire again): fix the target first (the report gives
each target's ERROR_CODE), and `dry_run` shows what is there without sending or deleting.

The drift check's schedule is a rule on the default bus that fires on a schedule, not on a
pattern: its dead letter (source aws.events, "Scheduled Event") put on the stack's bus would
reach no rule, and re-running a check is not a re-send. Such a message is left in the queue and
reported as a missed check with the window it would have checked (the whole hour of its `time`,
back DRIFT_WINDOW_MINUTES of the deployed function): invoke DriftCheckFunction with that
`{"window": ...}` (README, "Drift, alarms and the dashboard"), or decide the next hourly checks
cover it (each looks back a whole window), then delete such messages with
`delete_missed_checks`. Messages that are not an EventBridge event, or whose rule is on another
bus, are left alone and reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from embedded.deploy import open_deployed_stack
from streamscore.aws.events import MAX_ENTRIES
from streamscore.drift.window import InvalidWindowError, resolve_window

RECEIVE_BATCH = (
    10  # SQS's most per ReceiveMessage / DeleteMessageBatch / ChangeMessageVisibilityBatch
)
VISIBILITY_SECONDS = 300  # received messages stay hidden this long; kept ones are released at once
MAX_REQUEST_BYTES = 256 * 1024  # PutEvents: the entries of one call total less than 256 KB
ATTEMPTS = 3  # PutEvents tries of a refused entry
BACKOFF_SECONDS = (1.0, 8.0)  # the first pause between tries, and the most it grows to
DEFAULT_DRIFT_WINDOW_MINUTES = 1440  # DriftWindowMinutes' default, when the function's is unknown
SCHEDULED = ("aws.events", "Scheduled Event")  # source and detail-type of a schedule's event


# ---------------------------------------------------------------- the messages


@dataclass(frozen=True)
class DeadLetter:
    """One EventsDeadLetterQueue message: the event, and why its target did not take it."""

    message_id: str
    receipt_handle: str
    event: Mapping[str, Any]
    attributes: Mapping[str, str]

    @property
    def event_id(self) -> str:
        return str(self.event.get("id") or self.message_id)

    @property
    def rule_arn(self) -> str:
        return self.attributes.get("RULE_ARN", "")

    @property
    def target_arn(self) -> str:
        return self.attributes.get("TARGET_ARN", "")

    @property
    def scheduled(self) -> bool:
        return (self.event.get("source"), self.event.get("detail-type")) == SCHEDULED

    def entry(self, bus_name: str) -> dict[str, Any]:
        """The PutEvents entry that puts the event back on `bus_name`."""
        entry: dict[str, Any] = {
            "Source": self.event["source"],
            "DetailType": self.event["detail-type"],
            "Detail": json.dumps(self.event["detail"], separators=(",", ":"), ensure_ascii=False),
            "EventBusName": bus_name,
        }
        if self.event.get("resources"):
            entry["Resources"] = list(self.event["resources"])
        return entry


def dead_letter(message: Mapping[str, Any]) -> DeadLetter | str:
    """The message's event, or why it is not an EventBridge event."""
    try:
        event = json.loads(message["Body"])
    except (TypeError, ValueError):
        return "not an EventBridge event (not JSON)"
    if not isinstance(event, dict):
        return "not an EventBridge event (not a JSON object)"
    missing = [
        key
        for key, kind in (("source", str), ("detail-type", str), ("detail", dict))
        if not isinstance(event.get(key), kind)
    ]
    resources = event.get("resources", [])
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        missing.append("resources")
    if missing:
        return f"not an EventBridge event (no valid {', '.join(missing)})"
    attributes = {
        name: str(value.get("StringValue", ""))
        for name, value in (message.get("MessageAttributes") or {}).items()
        if isinstance(value, Mapping)
    }
    return DeadLetter(message["MessageId"], message["ReceiptHandle"], event, attributes)


def rule_bus(rule_arn: str) -> str:
    """The bus of a rule ARN: rule/<bus>/<name> on a custom bus, rule/<name> on the default one."""
    resource = rule_arn.split(":", 5)[-1]
    parts = resource.split("/")
    return parts[1] if len(parts) == 3 else "default"


def short_arn(arn: str) -> str:
    """The last name in an ARN: a rule's, a queue's, a topic's, a state machine's, a pipeline's."""
    return arn.split(":", 5)[-1].replace(":", "/").rsplit("/", 1)[-1] if arn else ""


def entry_size(entry: Mapping[str, Any]) -> int:
    """An entry's size as EventBridge counts it: UTF-8 bytes of Source, DetailType, Detail, Resources."""
    size = 14 if entry.get("Time") is not None else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(key) or "").encode())
    return size + sum(len(r.encode()) for r in entry.get("Resources") or [])


def put_batches[T](
    items: Sequence[T], size: Callable[[T], int], limit: int = MAX_REQUEST_BYTES
) -> list[list[T]]:
    """PutEvents calls, in order: at most MAX_ENTRIES entries a call, their sizes under `limit`.

    An entry that alone reaches the limit gets no call; `oversized` finds those.
    """
    calls: list[list[T]] = []
    current: list[T] = []
    total = 0
    for item in items:
        item_size = size(item)
        if item_size >= limit:
            continue
        if current and (len(current) == MAX_ENTRIES or total + item_size >= limit):
            calls.append(current)
            current, total = [], 0
        current.append(item)
        total += item_size
    if current:
        calls.append(current)
    return calls


def receive_all(sqs: Any, queue_url: str, wait_seconds: int = 0) -> list[dict[str, Any]]:
    """Every message on the queue with its attributes, received (and hidden for VISIBILITY_SECONDS)."""
    messages: list[dict[str, Any]] = []
    while True:
        page = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=RECEIVE_BATCH,
            VisibilityTimeout=VISIBILITY_SECONDS,
            WaitTimeSeconds=wait_seconds,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not page:
            return messages
        messages += page


def _chunks[T](items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _delete(sqs: Any, queue_url: str, letters: Sequence[DeadLetter]) -> dict[str, str]:
    """Delete the messages; those that could not be deleted, by message id, with the reason."""
    failed: dict[str, str] = {}
    for chunk in _chunks(letters, RECEIVE_BATCH):
        response = sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)
            ],
        )
        for failure in response.get("Failed", []):
            message = chunk[int(failure["Id"])].message_id
            failed[message] = str(failure.get("Message", failure["Code"]))
    return failed


def _release(sqs: Any, queue_url: str, handles: Sequence[str]) -> None:
    """Make received messages visible again at once (by receipt handle)."""
    for chunk in _chunks(handles, RECEIVE_BATCH):
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(chunk)
            ],
        )


# ---------------------------------------------------------------- the report


@dataclass
class TargetResult:
    """The dead letters of one rule target: how many, why they failed, what became of them."""

    rule: str
    target: str
    rule_arn: str
    target_arn: str
    detail_types: list[str] = field(default_factory=list)
    messages: int = 0
    events: int = 0
    resent: int = 0  # events PutEvents accepted
    kept: int = 0  # events PutEvents refused: their messages stay
    error_codes: dict[str, int] = field(default_factory=dict)  # EventBridge's ERROR_CODE
    first_time: str = ""
    last_time: str = ""
    status: str = "pending"  # re-sent | kept | partly kept | would re-send

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MissedCheck:
    """A scheduled drift check whose invocation failed: the window to check instead."""

    message_id: str
    scheduled_at: str
    rule: str
    error_code: str
    function: str
    window: dict[str, str] | None
    note: str | None = None
    deleted: bool = False

    @property
    def payload(self) -> str:
        return json.dumps({"window": self.window}) if self.window else ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__) | {"payload": self.payload}


@dataclass
class ResendReport:
    """The re-send's outcome: per rule target, and the messages received, deleted and left."""

    queue_url: str
    bus_name: str
    targets: list[TargetResult] = field(default_factory=list)
    missed_checks: list[MissedCheck] = field(default_factory=list)
    messages: int = 0
    events: int = 0  # distinct events to re-send
    resent: int = 0
    kept: list[str] = field(default_factory=list)  # refused events, and why
    deleted: int = 0
    put_calls: int = 0
    other: list[str] = field(default_factory=list)  # messages left alone, and why
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """Nothing left in the queue: every event re-sent (or would be), nothing else there."""
        return not (self.kept or self.other or any(not m.deleted for m in self.missed_checks))

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue_url": self.queue_url,
            "bus_name": self.bus_name,
            "dry_run": self.dry_run,
            "messages": self.messages,
            "events": self.events,
            "events_resent": self.resent,
            "events_kept": len(self.kept),
            "messages_deleted": self.deleted,
            "put_events_calls": self.put_calls,
            "kept": self.kept,
            "missed_checks": [m.as_dict() for m in self.missed_checks],
            "other_messages": self.other,
            "problems": self.problems,
            "seconds": round(self.seconds, 2),
            "targets": [t.as_dict() for t in self.targets],
        }


@dataclass
class _Event:
    letters: list[DeadLetter]
    entry: dict[str, Any]
    size: int
    accepted: bool = False
    error: str | None = None

    @property
    def first(self) -> DeadLetter:
        return self.letters[0]

    def describe(self) -> str:
        detail = self.first.event.get("detail", {})
        key = next((f"{k} {detail[k]}" for k in ("alert_id", "trigger_id") if k in detail), "")
        return (
            f"event {self.first.event_id} ({self.first.event['detail-type']}"
            + (f", {key}" if key else "")
            + ")"
        )


# ---------------------------------------------------------------- the re-send


def resend_events(
    queue_url: str,
    bus_name: str,
    clients: Callable[[str], Any],
    *,
    drift_function: str | None = None,
    dry_run: bool = False,
    delete_missed_checks: bool = False,
    attempts: int = ATTEMPTS,
    backoff_s: tuple[float, float] = BACKOFF_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    wait_seconds: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ResendReport:
    """Re-send every event in EventsDeadLetterQueue to `bus_name`; the module's docstring has the rules."""
    started = time.monotonic()
    sqs = clients("sqs")
    report = ResendReport(queue_url, bus_name, dry_run=dry_run)
    received = receive_all(sqs, queue_url, wait_seconds)
    report.messages = len(received)
    sorted_out = _sort_out(received, bus_name, report)
    _release(sqs, queue_url, sorted_out.left)
    report.missed_checks = _missed_checks(sorted_out.scheduled, clients, drift_function)
    # in the order they happened: an alert before a later one
    events = sorted(sorted_out.events.values(), key=lambda e: str(e.first.event.get("time", "")))
    report.events = len(events)
    if not dry_run:
        report.put_calls = _put(
            clients("events"), events, attempts, backoff_s, sleep, progress, bus_name
        )

    drop_checks = delete_missed_checks and not dry_run
    done = [letter for item in events if item.accepted for letter in item.letters]
    kept = [letter for item in events if not item.accepted for letter in item.letters]
    (done if drop_checks else kept).extend(sorted_out.scheduled)
    failed = _delete(sqs, queue_url, done)
    _release(sqs, queue_url, [letter.receipt_handle for letter in kept])
    report.deleted = len(done) - len(failed)
    report.problems += [
        f"message {message} not deleted ({why}): it is handled again next time (an event "
        "re-sent twice is de-duplicated by its consumers)"
        for message, why in failed.items()
    ]
    for check in report.missed_checks:
        check.deleted = drop_checks and check.message_id not in failed
    report.resent = sum(item.accepted for item in events)
    if not dry_run:
        report.kept = [
            f"{item.describe()}: {item.error}; its message stays"
            for item in events
            if not item.accepted
        ]
    report.targets = _target_results(sorted_out.targets, events, dry_run)
    report.seconds = time.monotonic() - started
    return report


@dataclass
class _SortedOut:
    events: dict[str, _Event] = field(default_factory=dict)  # by event id
    targets: dict[tuple[str, str], TargetResult] = field(default_factory=dict)
    scheduled: list[DeadLetter] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # receipt handles of messages left alone


def _sort_out(
    received: Sequence[Mapping[str, Any]], bus_name: str, report: ResendReport
) -> _SortedOut:
    """Events to re-send (one per event id), missed scheduled checks, and messages left alone."""
    out = _SortedOut()
    for message in received:
        parsed = dead_letter(message)
        if isinstance(parsed, str):
            report.other.append(f"message {message.get('MessageId')}: {parsed}; left in the queue")
            out.left.append(message["ReceiptHandle"])
        elif parsed.scheduled:
            out.scheduled.append(parsed)
        elif parsed.rule_arn and rule_bus(parsed.rule_arn) != bus_name:
            report.other.append(
                f"message {parsed.message_id}: {parsed.event['detail-type']} of rule "
                f"{parsed.rule_arn}, not on the bus {bus_name}: put there it would reach no "
                "rule; left in the queue"
            )
            out.left.append(parsed.receipt_handle)
        else:
            if parsed.event_id in out.events:
                out.events[parsed.event_id].letters.append(parsed)
            else:
                entry = parsed.entry(bus_name)
                out.events[parsed.event_id] = _Event([parsed], entry, entry_size(entry))
            key = (parsed.rule_arn, parsed.target_arn)
            if key not in out.targets:
                out.targets[key] = TargetResult(
                    short_arn(parsed.rule_arn) or "(no RULE_ARN)",
                    short_arn(parsed.target_arn) or "(no TARGET_ARN)",
                    parsed.rule_arn,
                    parsed.target_arn,
                )
            _count(out.targets[key], parsed)
    return out


def _target_results(
    targets: Mapping[tuple[str, str], TargetResult], events: Sequence[_Event], dry_run: bool
) -> list[TargetResult]:
    """Each target's events: how many, re-sent or kept (an event counts for every target it failed)."""
    for key, result in targets.items():
        mine = [
            item for item in events if any((m.rule_arn, m.target_arn) == key for m in item.letters)
        ]
        result.events = len(mine)
        result.resent = sum(item.accepted for item in mine)
        result.kept = 0 if dry_run else result.events - result.resent
        if dry_run:
            result.status = "would re-send"
        elif not result.kept:
            result.status = "re-sent"
        else:
            result.status = "partly kept" if result.resent else "kept"
    return sorted(targets.values(), key=lambda t: (t.rule, t.target))


def _count(result: TargetResult, letter: DeadLetter) -> None:
    result.messages += 1
    detail_type = str(letter.event["detail-type"])
    if detail_type not in result.detail_types:
        result.detail_types.append(detail_type)
    code = letter.attributes.get("ERROR_CODE") or "(no ERROR_CODE)"
    result.error_codes[code] = result.error_codes.get(code, 0) + 1
    moment = str(letter.event.get("time", ""))
    if moment:
        result.first_time = min(result.first_time or moment, moment)
        result.last_time = max(result.last_time, moment)


def _put(
    events: Any,
    items: Sequence[_Event],
    attempts: int,
    backoff_s: tuple[float, float],
    sleep: Callable[[float], None],
    progress: Callable[[str], None] | None,
    bus_name: str,
) -> int:
    """PutEvents every event that fits, trying refused ones again; returns the calls made."""
    for item in items:
        if item.size >= MAX_REQUEST_BYTES:
            item.error = (
                f"its entry is {item.size:,} bytes, over PutEvents' {MAX_REQUEST_BYTES:,} a call"
            )
    pending = [item for item in items if item.error is None]
    low, high = backoff_s
    calls = 0
    for attempt in range(1, max(1, attempts) + 1):
        for batch in put_batches(pending, lambda item: item.size):
            calls += 1
            try:
                response = events.put_events(Entries=[item.entry for item in batch])
                results = response.get("Entries", [])
                if len(results) != len(batch):
                    raise ValueError(f"{len(results)} results for {len(batch)} entries")
            except (ClientError, BotoCoreError, ValueError) as error:
                for item in batch:
                    item.error = f"PutEvents failed: {error}"
                results = []
            for item, result in zip(batch, results, strict=False):
                if result.get("ErrorCode"):
                    item.error = f"PutEvents refused it: {result['ErrorCode']}" + (
                        f": {result['ErrorMessage']}" if result.get("ErrorMessage") else ""
                    )
                else:
                    item.accepted, item.error = True, None
            if progress is not None:
                taken = sum(item.accepted for item in batch)
                progress(f"PutEvents to {bus_name}: {taken} of {len(batch)} accepted")
        pending = [item for item in pending if not item.accepted]
        if not pending or attempt >= attempts:
            break
        sleep(min(high, low * 2 ** (attempt - 1)))
    return calls


def _missed_checks(
    letters: Sequence[DeadLetter], clients: Callable[[str], Any], drift_function: str | None
) -> list[MissedCheck]:
    """Each missed scheduled check with the window it would have checked."""
    if not letters:
        return []
    minutes, note = _drift_window_minutes(clients, drift_function)
    checks = []
    for letter in sorted(letters, key=lambda m: str(m.event.get("time", ""))):
        moment = str(letter.event.get("time", ""))
        window: dict[str, str] | None = None
        problem = note
        try:
            resolved = resolve_window({"time": moment}, datetime.now(UTC), minutes)
            window = {"start": resolved.start.isoformat(), "end": resolved.end.isoformat()}
        except (InvalidWindowError, ValueError, TypeError) as error:
            problem = f"no window from its time {moment!r}: {error}"
        checks.append(
            MissedCheck(
                letter.message_id,
                moment,
                short_arn(letter.rule_arn),
                letter.attributes.get("ERROR_CODE", ""),
                drift_function or "DriftCheckFunction",
                window,
                problem,
            )
        )
    return checks


def _drift_window_minutes(
    clients: Callable[[str], Any], drift_function: str | None
) -> tuple[int, str | None]:
    """DRIFT_WINDOW_MINUTES of the deployed drift check, or the default with a note why."""
    if not drift_function:
        return DEFAULT_DRIFT_WINDOW_MINUTES, "the stack names no drift check function"
    try:
        config = clients("lambda").get_function_configuration(FunctionName=drift_function)
        value = config.get("Environment", {}).get("Variables", {})["DRIFT_WINDOW_MINUTES"]
        return int(value), None
    except (ClientError, BotoCoreError, KeyError, ValueError) as error:
        return DEFAULT_DRIFT_WINDOW_MINUTES, (
            f"window of {DEFAULT_DRIFT_WINDOW_MINUTES} minutes (the default): "
            f"the function's DRIFT_WINDOW_MINUTES could not be read ({error})"
        )


def resend_deployed(
    stack_name: str,
    region: str | None,
    dry_run: bool = False,
    delete_missed_checks: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ResendReport:
    """Re-send a deployed stack's EventsDeadLetterQueue with your credentials."""
    stack, clients = open_deployed_stack(stack_name, region)
    return resend_events(
        stack.output("EventsDeadLetterQueueUrl"),
        stack.output("EventBusName"),
        clients,
        drift_function=stack.outputs.get("DriftCheckFunctionName"),
        dry_run=dry_run,
        delete_missed_checks=delete_missed_checks,
        wait_seconds=2,  # long polling: an empty answer means the queue is empty
        progress=progress,
    )


# ---------------------------------------------------------------- for people

TARGETS_SHOWN = 20


def render_resend(report: Mapping[str, Any]) -> list[str]:
    """The re-send's lines (from ResendReport.as_dict), for the terminal."""
    messages = report["messages"]
    lines = [
        f"Re-send        EventsDeadLetterQueue: {messages} message{'s' if messages != 1 else ''}, "
        f"{report['events']} event{'s' if report['events'] != 1 else ''} for the bus "
        f"{report['bus_name']} ({report['seconds']:.1f} s)",
    ]
    if report["dry_run"]:
        lines.append(
            f"  would re-send {report['events']:>6,} events (dry run: nothing put, nothing deleted)"
        )
    else:
        lines.append(
            f"  re-sent      {report['events_resent']:>8,} events (PutEvents accepted them); "
            f"messages deleted: {report['messages_deleted']}"
        )
        lines.append(
            f"  kept         {report['events_kept']:>8,} events PutEvents refused "
            "(their messages stay in EventsDeadLetterQueue)"
        )
    for target in report["targets"][:TARGETS_SHOWN]:
        codes = ", ".join(f"{code} x{n}" for code, n in sorted(target["error_codes"].items()))
        lines.append(
            f"    {target['status']}: {target['rule']} -> {target['target']}: "
            f"{', '.join(target['detail_types'])}, {target['events']} event"
            f"{'s' if target['events'] != 1 else ''} ({target['resent']} re-sent); "
            f"failed with {codes}"
        )
    if len(report["targets"]) > TARGETS_SHOWN:
        lines.append(f"    ... {len(report['targets']) - TARGETS_SHOWN} more targets in the JSON")
    lines += [f"    kept: {text}" for text in report["kept"]]
    for check in report["missed_checks"]:
        what = (
            f"    missed drift check scheduled at {check['scheduled_at']} "
            f"({check['rule']}, {check['error_code'] or 'no ERROR_CODE'}): "
        )
        if check["deleted"]:
            what += "its message deleted (--delete-missed-checks)"
        elif check["window"]:
            what += (
                f"invoke {check['function']} with '{check['payload']}', then delete the "
                "message with --delete-missed-checks"
            )
        else:
            what += "left in the queue"
        lines.append(what + (f" ({check['note']})" if check.get("note") else ""))
    lines += [f"    {text}" for text in [*report["other_messages"], *report["problems"]]]
    return lines
