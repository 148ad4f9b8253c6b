"""Smoke test of a deployed stack: the local run's producer and checks, with real credentials.

No emulator and no moto: the traffic goes to the stack's TransactionsStream, and the checks
look up exactly what was sent, by key (BatchGetItem on PredictionsTable by transaction_id and on
QuarantineTable by the record id preprocess gives a bad record), until every record is
accounted for or the timeout passes. Nothing is scanned and no queue message is consumed: the
queues' depths are reported as CloudWatch would show them. With --drift-check the deployed
DriftCheckFunction is invoked over the checked traffic's event-time window (the counts it
reads are by the transactions' event hours; traffic without event times: the run's own time).

`--smoke` is the post-deploy smoke test. It sends drifted traffic (channel-shift, or the drift
scenario --scenario names), invokes the drift check, and returns a pass/fail list
(summary["smoke"]["checks"]):

1. records: every sent record scored or quarantined (none refused by PutRecords);
   latency: every prediction of the run carries `latency_ms` (arrival on TransactionsStream
   to prediction written, score_batch), p50/p99 reported;
2. alert: a HighRiskTransaction on AlertsQueue whose detail.alert_id is one of this run's
   alerted predictions (declines; reviews too when the stack has AlertOnReview=true);
3. drift_report: HeadObject on the report the check's response names (report_uri), in
   ArtifactsBucket under reports/, written during this run;
4. retraining: the check found drift and sent its trigger ("sent"), and RetrainingQueue
   holds a RetrainingRequested whose detail.trigger_id is the one of the check's report item
   (MonitoringTable, key REPORT#start#end), sent during this run;
5. dead_letters: EventsDeadLetterQueue and FailureQueue are empty at the end.

Peeking, not consuming. AlertsQueue and RetrainingQueue belong to their consumers (fraud
operations, the retraining pipeline): deleting their messages would hide a real alert or
request. Messages are received with a short visibility timeout and made visible again at
once (SQS API Reference, ChangeMessageVisibility: "The minimum is 0 seconds."); if the run
dies in between, a consumer sees them PEEK_VISIBILITY_SECONDS late. A receive adds one to a
message's receive count; neither queue has a redrive policy, so peeking moves nothing to a
dead-letter queue. Receives long-poll: long polling removes "false empty responses (when
messages are available but aren't included in a response)" (SQS Developer Guide,
"Setting-up long polling in Amazon SQS"). At most PEEK_LIMIT messages are looked at: on a
queue with a larger backlog the message can be missed (the check then names the depth).

Empty queues: the depth attributes "may not achieve consistency until at least 1 minute after
the producers stop sending messages" (SQS API Reference, GetQueueAttributes), so each queue
is also long-polled once (and what is received made visible again). An empty
EventsDeadLetterQueue shows no delivery failed for good: errors "that result from missing
permissions to a target, or if a target resource that no longer exists" go "directly to the
target DLQ" (EventBridge User Guide, "Using dead-letter queues to process undelivered events
in EventBridge"); a retriable failure is retried under the target's RetryPolicy (up to 24 h
here) first, and does not show within a smoke test.

Fresh transactions. Transaction ids come from the seed; transactions the stack already scored
are not scored again (the FeaturesTable ledger), so a repeated seed would find the earlier
run's predictions and prove nothing. The smoke test looks a sample of its ids up first and,
when any was scored before, takes its seed from the clock (named in the summary).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from embedded.deploy import NO_CREDENTIALS, StackError, open_deployed_stack
from embedded.producer import SCENARIO_SETTINGS, Producer, ProducerResult, Traffic
from embedded.progress import ProgressBar
from embedded.redrive import RangeInvoker, lambda_invoker
from embedded.run import RunError, RunOptions, make_traffic
from embedded.summary import (
    Observed,
    build_summary,
    drift_summary,
    percentiles,
    plain_item,
    sent_record_ids,
    transaction_id,
)
from streamscore.core.monitoring import REPORT
from streamscore.core.times import utc_iso_ms
from streamscore.drift.report import REPORTS_PREFIX, RETRAINING_REQUESTED
from streamscore.scoring.batch import alert_id

BATCH_GET_KEYS = 100
POLL_SECONDS = 2.0
REQUIRED_OUTPUTS = (
    "TransactionsStreamName",
    "PredictionsTableName",
    "QuarantineTableName",
    "FailureQueueUrl",
    "RetrainingQueueUrl",
)
SMOKE_OUTPUTS = (
    "AlertsQueueUrl",
    "EventsDeadLetterQueueUrl",
    "ArtifactsBucketName",
    "MonitoringTableName",
    "DriftCheckFunctionName",
)
SMOKE_SCENARIO = "channel-shift"  # crosses the drift threshold over the checked days
HIGH_RISK_TRANSACTION = "HighRiskTransaction"
EVENT_WAIT_SECONDS = 60.0  # how long an event may take from PutEvents to its queue
PEEK_VISIBILITY_SECONDS = 30
PEEK_LIMIT = 1000  # messages looked at per queue
CLOCK_SKEW_SECONDS = 60.0  # SQS SentTimestamp and S3 LastModified are the service's clocks
FRESHNESS_SAMPLE = 100  # transaction ids looked up before sending


def _chunks[T](items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def batch_get(
    dynamodb: Any, table: str, key: str, values: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Items of `table` whose `key` is one of `values`, by that value; unprocessed keys are left out."""
    found: dict[str, dict[str, Any]] = {}
    unique = sorted(set(values))
    for chunk in _chunks(unique, BATCH_GET_KEYS):
        response = dynamodb.batch_get_item(
            RequestItems={table: {"Keys": [{key: {"S": value}} for value in chunk]}}
        )
        for raw in response.get("Responses", {}).get(table, []):
            item = plain_item(raw)
            found[str(item[key])] = item
    return found


def _settle(
    clients: Callable[[str], Any],
    outputs: dict[str, str],
    traffic: Traffic,
    sent: ProducerResult,
    deadline: float,
    bar: ProgressBar,
) -> Observed:
    """Look up every sent record until each is scored or quarantined, or the deadline passes."""
    dynamodb = clients("dynamodb")
    stream = outputs["TransactionsStreamName"]
    ids = [transaction_id(payload) for payload in traffic.payloads]
    record_ids = sent_record_ids(stream, sent.positions)
    pending = set(sent.positions)
    predictions: dict[str, dict[str, Any]] = {}
    quarantine: dict[str, dict[str, Any]] = {}
    while True:
        wanted = [ids[i] for i in pending if ids[i] is not None and ids[i] not in predictions]
        predictions |= batch_get(
            dynamodb, outputs["PredictionsTableName"], "transaction_id", filter(None, wanted)
        )
        unscored = [i for i in pending if ids[i] not in predictions]
        quarantine |= batch_get(
            dynamodb, outputs["QuarantineTableName"], "record_id", [record_ids[i] for i in unscored]
        )
        pending = {i for i in unscored if record_ids[i] not in quarantine}
        bar.update(len(sent.positions) - len(pending), f"{len(predictions):,} scored")
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    bar.close()
    return Observed(
        predictions=predictions,
        prediction_items=len(predictions),
        quarantine=list(quarantine.values()),
        failure_records=None,
        retraining_requests=None,
        not_seen=len(pending),
    )


def _queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))


# ---------------------------------------------------------------- the drift check


@dataclass(frozen=True)
class DriftRun:
    """One invocation of the deployed drift check: its window, response (None: it failed), summary."""

    window: dict[str, str]
    response: dict[str, Any] | None
    summary: dict[str, Any]
    invoked_at: float  # epoch seconds, this machine's clock


def drift_window(traffic: Traffic, started: datetime) -> dict[str, str]:
    """The window of the checked traffic's event times; without event times, the run's own time."""
    start, end = traffic.checked_window() or (
        started,
        datetime.now(UTC) + timedelta(seconds=1),
    )
    return {"start": utc_iso_ms(start), "end": utc_iso_ms(end)}


def invoke_drift_check(
    invoke: RangeInvoker,
    clients: Callable[[str], Any],
    outputs: dict[str, str],
    window: dict[str, str],
) -> DriftRun:
    invoked_at = time.time()
    name = outputs.get("DriftCheckFunctionName")
    if not name:
        error = {"error": "the stack has no DriftCheckFunctionName output"}
        return DriftRun(window, None, error, invoked_at)
    invocation = invoke(name, {"window": window})
    if invocation.error is not None or not isinstance(invocation.response, dict):
        failed = {"error": str(invocation.error or "no response"), "window": window}
        return DriftRun(window, None, failed, invoked_at)
    payload: dict[str, Any] = invocation.response
    report = None
    uri = payload.get("report_uri")
    if uri:
        bucket, _, key = str(uri).removeprefix("s3://").partition("/")
        try:
            report = json.loads(clients("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
        except ClientError:
            report = None  # the report may be missing (a check says so) or unreadable to you
    return DriftRun(window, payload, drift_summary(payload, report, None), invoked_at)


# ---------------------------------------------------------------- peeking at queues


def _body(raw: str) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


@dataclass(frozen=True)
class Peek:
    found: dict[str, Any] | None  # the first message body `wanted` accepted
    looked_at: int  # distinct messages received


def peek(
    sqs: Any,
    url: str,
    wanted: Callable[[dict[str, Any], float], bool],
    wait_s: float,
    limit: int = PEEK_LIMIT,
) -> Peek:
    """Receive messages until `wanted(body, sent_epoch_s)` accepts one, without consuming any.

    Each received message is hidden for PEEK_VISIBILITY_SECONDS, so the next receive returns
    others; when the search ends (found, `limit` messages looked at, or `wait_s` passed)
    every one is made visible again. Nothing is deleted.
    """
    deadline = time.monotonic() + wait_s
    handles: dict[str, str] = {}  # message id -> its latest receipt handle
    found: dict[str, Any] | None = None
    try:
        while found is None and len(handles) < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            messages = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=PEEK_VISIBILITY_SECONDS,
                WaitTimeSeconds=max(1, min(5, int(remaining))),
                AttributeNames=["SentTimestamp"],
            ).get("Messages", [])
            for message in messages:
                handles[message["MessageId"]] = message["ReceiptHandle"]
                sent_ms = float(message.get("Attributes", {}).get("SentTimestamp", 0))
                body = _body(message["Body"])
                if found is None and wanted(body, sent_ms / 1000):
                    found = body
    finally:
        _make_visible(sqs, url, list(handles.values()))
    return Peek(found, len(handles))


def _make_visible(sqs: Any, url: str, handles: Sequence[str]) -> None:
    for chunk in _chunks(handles, 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for i, handle in enumerate(chunk)
        ]
        # on failure they become visible when PEEK_VISIBILITY_SECONDS end
        with contextlib.suppress(ClientError, BotoCoreError):
            sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)


def _messages_in(sqs: Any, url: str) -> int:
    """Messages on the queue: its depth attributes, or what one long-poll receive finds."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    depth = sum(int(value) for value in attributes.values())
    received = peek(sqs, url, lambda _body, _sent: False, wait_s=1.0, limit=10).looked_at
    return max(depth, received)


# ---------------------------------------------------------------- the smoke test's checks


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    values: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail} | dict(
            self.values or {}
        )


@dataclass(frozen=True)
class SmokeContext:
    """What the checks look at, besides the summary."""

    clients: Callable[[str], Any]
    outputs: Mapping[str, str]
    parameters: Mapping[str, str]
    observed: Observed
    sent: ProducerResult
    drift: DriftRun
    event_wait_s: float


def _records_check(summary: Mapping[str, Any], sent: ProducerResult) -> Check:
    counts = summary["counts"]
    missing = counts.get("not_seen", 0)
    ok = not missing and not counts["unaccounted"] and not sent.refused
    detail = (
        f"{counts['in']:,} records: {counts['scored']:,} scored, "
        f"{counts['quarantined']:,} quarantined, {missing:,} neither"
        + (f"; {sent.refused:,} refused by PutRecords" if sent.refused else "")
    )
    return Check("records", ok, detail)


def _latency_check(observed: Observed) -> Check:
    values = [p["latency_ms"] for p in observed.predictions.values() if "latency_ms" in p]
    latency = percentiles(values)
    scored = len(observed.predictions)
    ok = scored > 0 and latency["n"] == scored
    detail = (
        f"p50 {latency['p50']} ms, p99 {latency['p99']} ms over {latency['n']:,} of "
        f"{scored:,} predictions (arrival on TransactionsStream to prediction written)"
    )
    return Check("latency", ok, detail, {"p50_ms": latency["p50"], "p99_ms": latency["p99"]})


def _alert_check(context: SmokeContext) -> Check:
    alerted = {"review", "decline"}
    if context.parameters.get("AlertOnReview", "true") == "false":
        alerted = {"decline"}
    expected = {
        alert_id(p) for p in context.observed.predictions.values() if p.get("decision") in alerted
    }
    if not expected:
        return Check(
            "alert",
            False,
            f"no transaction of this run was scored {' or '.join(sorted(alerted))}: "
            "no alert to look for (send more transactions)",
        )

    def ours(body: dict[str, Any], _sent: float) -> bool:
        detail = body.get("detail")
        return (
            body.get("detail-type") == HIGH_RISK_TRANSACTION
            and isinstance(detail, dict)
            and detail.get("alert_id") in expected
        )

    sqs = context.clients("sqs")
    url = context.outputs["AlertsQueueUrl"]
    result = peek(sqs, url, ours, context.event_wait_s)
    if result.found is not None:
        return Check(
            "alert",
            True,
            f"AlertsQueue holds alert {result.found['detail']['alert_id']} "
            f"({len(expected):,} alerted transactions in this run)",
        )
    return Check(
        "alert",
        False,
        f"none of this run's {len(expected):,} alerts on AlertsQueue: {result.looked_at:,} "
        f"messages peeked in {context.event_wait_s:.0f} s (depth {_queue_depth(sqs, url):,}); "
        "is HighRiskTransactionRule's target in place, and EventsDeadLetterQueue empty?",
    )


def _report_check(context: SmokeContext) -> Check:
    response = context.drift.response
    if response is None:
        return Check(
            "drift_report", False, f"the drift check failed: {context.drift.summary['error']}"
        )
    uri = str(response.get("report_uri") or "")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    expected_bucket = context.outputs["ArtifactsBucketName"]
    if bucket != expected_bucket or not key.startswith(f"{REPORTS_PREFIX}/"):
        return Check(
            "drift_report",
            False,
            f"the drift check named the report {uri!r}, not an object under "
            f"s3://{expected_bucket}/{REPORTS_PREFIX}/",
        )
    try:
        head = context.clients("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        return Check("drift_report", False, f"HeadObject on {uri}: {code or error}")
    written = head["LastModified"].timestamp()
    if written < context.drift.invoked_at - CLOCK_SKEW_SECONDS:
        return Check(
            "drift_report",
            False,
            f"{uri} was last written {head['LastModified'].isoformat()}, before this run's "
            "drift check",
        )
    return Check("drift_report", True, f"{uri} ({head['ContentLength']:,} bytes)")


def _trigger_id(context: SmokeContext) -> str | None:
    """The trigger id of the check's report item (MonitoringTable), by the window's key."""
    window = context.drift.window
    key = {"pk": {"S": f"{REPORT}#{window['start']}#{window['end']}"}, "sk": {"S": REPORT}}
    item = context.clients("dynamodb").get_item(
        TableName=context.outputs["MonitoringTableName"], Key=key, ConsistentRead=True
    )
    value = plain_item(item.get("Item", {})).get("trigger_id")
    return str(value) if value else None


def retraining_check(context: SmokeContext) -> Check:
    response = context.drift.response
    if response is None:
        return Check(
            "retraining", False, f"the drift check failed: {context.drift.summary['error']}"
        )
    status, trigger = response.get("status"), response.get("retraining")
    if status != "drift":
        sample = (context.drift.summary.get("sample") or {}).get("n")
        return Check(
            "retraining",
            False,
            f"the drift check found {status} (sample {sample}), not drift: no retraining to "
            f"request (MinSampleSize {context.parameters.get('MinSampleSize', '?')})",
        )
    if trigger != "sent":
        cooldown = context.parameters.get("RetrainCooldownHours", "?")
        return Check(
            "retraining",
            False,
            f"drift found, but nothing sent ({trigger}): a trigger of this model version "
            f"completed within RetrainCooldownHours ({cooldown}) or is still being sent. The "
            "check can pass once per cooldown: deploy the stack you smoke-test with "
            "RetrainCooldownHours=0, or run it after the cooldown",
        )
    expected = _trigger_id(context)
    if expected is None:
        return Check("retraining", False, "the report item names no trigger_id")
    since = context.drift.invoked_at - CLOCK_SKEW_SECONDS
    earlier: list[float] = []

    def ours(body: dict[str, Any], sent: float) -> bool:
        detail = body.get("detail")
        if body.get("detail-type") != RETRAINING_REQUESTED or not isinstance(detail, dict):
            return False
        if detail.get("trigger_id") != expected:
            return False
        if sent < since:
            earlier.append(sent)
            return False
        return True

    sqs = context.clients("sqs")
    url = context.outputs["RetrainingQueueUrl"]
    result = peek(sqs, url, ours, context.event_wait_s)
    if result.found is not None:
        return Check("retraining", True, f"RetrainingQueue holds trigger {expected}")
    why = (
        "only from before this run (the window's trigger was sent by an earlier check)"
        if earlier
        else "none"
    )
    return Check(
        "retraining",
        False,
        f"RetrainingRequested of trigger {expected} on RetrainingQueue: {why}; "
        f"{result.looked_at:,} messages peeked in {context.event_wait_s:.0f} s",
    )


def _dead_letters_check(context: SmokeContext) -> Check:
    sqs = context.clients("sqs")
    found = {
        name: _messages_in(sqs, context.outputs[output])
        for name, output in (
            ("EventsDeadLetterQueue", "EventsDeadLetterQueueUrl"),
            ("FailureQueue", "FailureQueueUrl"),
        )
    }
    detail = ", ".join(f"{name} {count:,}" for name, count in found.items())
    return Check("dead_letters", not any(found.values()), f"messages: {detail}", found)


def smoke_checks(summary: Mapping[str, Any], context: SmokeContext) -> dict[str, Any]:
    """The smoke test's pass/fail list (the module docstring says what each check shows)."""
    checks = [
        _records_check(summary, context.sent),
        _latency_check(context.observed),
        _alert_check(context),
        _report_check(context),
        retraining_check(context),
        _dead_letters_check(context),
    ]
    return {
        "passed": all(check.passed for check in checks),
        "checks": [check.as_dict() for check in checks],
        "cost": {"records_sent": context.sent.sent, "drift_check_invocations": 1},
    }


def render_smoke(section: Mapping[str, Any]) -> list[str]:
    """The smoke test's lines for people."""
    verdict = "passed" if section["passed"] else "FAILED"
    lines = [f"Smoke test     {verdict}"]
    for check in section["checks"]:
        mark = "pass" if check["passed"] else "FAIL"
        lines.append(f"  {mark}  {check['name']:<13} {check['detail']}")
    cost = section["cost"]
    lines.append(
        f"  cost: {cost['records_sent']:,} records sent, "
        f"{cost['drift_check_invocations']} drift check invocation"
    )
    return lines


# ---------------------------------------------------------------- the run


def _stack_parameters(cloudformation: Any, stack_name: str) -> dict[str, str]:
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    return {
        p["ParameterKey"]: str(p.get("ResolvedValue", p.get("ParameterValue", "")))
        for p in stack.get("Parameters", [])
    }


def smoke_traffic(
    options: RunOptions, clients: Callable[[str], Any], outputs: Mapping[str, str]
) -> tuple[RunOptions, Traffic, list[str]]:
    """Drifted traffic of transactions the stack never scored (see the module docstring)."""
    notes = []
    if options.input_path is None and not SCENARIO_SETTINGS.get(options.scenario):
        options = replace(options, scenario=SMOKE_SCENARIO)
    traffic = make_traffic(options)
    ids = [t for t in map(transaction_id, traffic.payloads) if t is not None]
    step = max(1, len(ids) // FRESHNESS_SAMPLE)
    table = outputs["PredictionsTableName"]
    if batch_get(clients("dynamodb"), table, "transaction_id", ids[::step]):
        if options.input_path is not None:
            raise RunError(
                f"transactions of {options.input_path} were scored by this stack before: the "
                "smoke test would find the earlier predictions; send new transaction ids"
            )
        seed = int(time.time())
        notes.append(f"seed {options.seed} was sent to this stack before: this run uses {seed}")
        options = replace(options, seed=seed)
        traffic = make_traffic(options)
    return options, traffic, notes


def _require_sample(traffic: Traffic, parameters: Mapping[str, str]) -> None:
    """Refuse traffic whose checked days hold fewer transactions than a drift verdict needs."""
    needed = int(parameters.get("MinSampleSize", "0") or 0)
    checked = sum(
        1
        for payload in traffic.payloads[traffic.monitored_from :]
        if transaction_id(payload) in traffic.labels
    )
    if traffic.labels and checked < needed:
        share = checked / max(len(traffic.labels), 1)
        more = int(needed / share * 1.1) if share else needed
        raise RunError(
            f"the drift window would hold {checked:,} transactions, fewer than the stack's "
            f"MinSampleSize {needed:,}: no drift verdict, no retraining request. Send about "
            f"--transactions {more:,}"
        )


def run_against_stack(
    options: RunOptions,
    stack_name: str,
    region: str | None,
    drift_check: bool,
    *,
    smoke: bool = False,
    invoke: RangeInvoker | None = None,
    event_wait_s: float | None = None,
) -> dict[str, Any]:
    """Send the traffic to a deployed stack and check what became of it.

    `smoke`: the smoke test (drifted traffic, the drift check, summary["smoke"]).
    `invoke(function name, event)` runs a function; default lambda.invoke, RequestResponse.
    `event_wait_s`: how long to look for an alert or request on its queue (EVENT_WAIT_SECONDS).
    """
    try:
        stack, clients = open_deployed_stack(stack_name, region)
    except StackError as error:
        hint = "; the local run needs none: leave --stack-name out"
        raise RunError(f"{error}{hint if str(error) == NO_CREDENTIALS else ''}") from None
    required = REQUIRED_OUTPUTS + (SMOKE_OUTPUTS if smoke else ())
    missing = [key for key in required if key not in stack.outputs]
    if missing:
        raise RunError(f"stack {stack_name} lacks the outputs {', '.join(missing)}")
    outputs = stack.outputs
    notes = [
        "deployed stack: records were found by key; failed records are not counted "
        "(FailureQueue is left unread); its depth and RetrainingQueue's are in the JSON",
    ]
    parameters: dict[str, str] = {}
    if smoke:
        parameters = _stack_parameters(clients("cloudformation"), stack_name)
        options, traffic, fresh = smoke_traffic(options, clients, outputs)
        notes += fresh
        _require_sample(traffic, parameters)
    else:
        traffic = make_traffic(options)
    started = datetime.now(UTC)
    producer = Producer(
        clients("kinesis"), outputs["TransactionsStreamName"], rate_per_s=options.rate
    )
    bar = ProgressBar(len(traffic), "sent")
    sent = producer.send(traffic, progress=bar.update)
    bar.close()
    deadline = time.monotonic() + options.timeout_s
    observed = _settle(clients, outputs, traffic, sent, deadline, ProgressBar(sent.sent, "checked"))
    finished = time.time()
    drift = None
    if drift_check or smoke:
        invoke = invoke or lambda_invoker(clients("lambda"))
        drift = invoke_drift_check(invoke, clients, outputs, drift_window(traffic, started))
    sqs = clients("sqs")
    extra = {
        "stack": {"name": stack_name, "region": stack.region},
        "failure_queue_depth": _queue_depth(sqs, outputs["FailureQueueUrl"]),
        "retraining_queue_depth": _queue_depth(sqs, outputs["RetrainingQueueUrl"]),
        "notes": notes,
    }
    if smoke:
        extra["seed"] = options.seed
    record_ids = sent_record_ids(outputs["TransactionsStreamName"], sent.positions)
    summary = build_summary(
        traffic,
        record_ids,
        observed,
        finished - sent.started_at,
        drift.summary if drift else None,
        extra,
    )
    if smoke and drift is not None:
        wait = EVENT_WAIT_SECONDS if event_wait_s is None else event_wait_s
        context = SmokeContext(clients, outputs, parameters, observed, sent, drift, wait)
        summary["smoke"] = smoke_checks(summary, context)
    return summary
