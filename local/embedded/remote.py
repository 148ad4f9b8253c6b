"""Smoke test of a deployed stack: the local run's producer and checks, with real credentials.

No emulator and no moto: the traffic goes to the stack's TransactionsStream, and the checks
look up exactly what was sent, by key (BatchGetItem on PredictionsTable by transaction_id and on
QuarantineTable by the record id preprocess gives a bad record), until every record is
accounted for or the timeout passes. Nothing is scanned and no queue message is consumed: the
queues' depths are reported as CloudWatch would show them. With --drift-check the deployed
DriftCheckFunction is invoked over the run's window.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from embedded.deploy import StackError, describe_stack
from embedded.producer import Producer, ProducerResult, Traffic
from embedded.progress import ProgressBar
from embedded.run import RunError, RunOptions, make_traffic
from embedded.summary import (
    Observed,
    build_summary,
    drift_summary,
    plain_item,
    sent_record_ids,
    transaction_id,
)

BATCH_GET_KEYS = 100
POLL_SECONDS = 2.0
REQUIRED_OUTPUTS = (
    "TransactionsStreamName",
    "PredictionsTableName",
    "QuarantineTableName",
    "FailureQueueUrl",
    "RetrainingQueueUrl",
)


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


def _drift_check(
    clients: Callable[[str], Any], outputs: dict[str, str], start: datetime
) -> dict[str, Any]:
    name = outputs.get("DriftCheckFunctionName")
    if not name:
        return {"error": "the stack has no DriftCheckFunctionName output"}
    window = {
        "start": start.isoformat(timespec="milliseconds"),
        "end": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(timespec="milliseconds"),
    }
    response = clients("lambda").invoke(
        FunctionName=name, Payload=json.dumps({"window": window}).encode()
    )
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        return {"error": json.dumps(payload), "window": window}
    report = None
    uri = (payload or {}).get("report_uri")
    if uri:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            report = json.loads(clients("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
        except clients("s3").exceptions.ClientError:
            report = None  # the report is there; these credentials may not read it
    return drift_summary(payload or {}, report, None)


def run_against_stack(
    options: RunOptions, stack_name: str, region: str | None, drift_check: bool
) -> dict[str, Any]:
    """Send the traffic to a deployed stack and check what became of it."""
    session = boto3.session.Session(region_name=region)
    if session.get_credentials() is None:
        raise RunError(
            "no AWS credentials found for --stack-name (configure a profile, or set "
            "AWS_PROFILE / AWS_ACCESS_KEY_ID); the local run needs none: leave --stack-name out"
        )
    clients: Callable[[str], Any] = session.client  # type: ignore[assignment]
    try:
        stack = describe_stack(clients("cloudformation"), stack_name)
    except StackError as error:
        raise RunError(f"{error}; is the stack deployed in {session.region_name}?") from None
    missing = [key for key in REQUIRED_OUTPUTS if key not in stack.outputs]
    if missing:
        raise RunError(f"stack {stack_name} lacks the outputs {', '.join(missing)}")
    traffic = make_traffic(options)
    started = datetime.now(UTC)
    producer = Producer(
        clients("kinesis"), stack.outputs["TransactionsStreamName"], rate_per_s=options.rate
    )
    bar = ProgressBar(len(traffic), "sent")
    sent = producer.send(traffic, progress=bar.update)
    bar.close()
    deadline = time.monotonic() + options.timeout_s
    observed = _settle(
        clients, stack.outputs, traffic, sent, deadline, ProgressBar(sent.sent, "checked")
    )
    finished = time.time()
    sqs = clients("sqs")
    drift = _drift_check(clients, stack.outputs, started) if drift_check else None
    extra = {
        "stack": {"name": stack_name, "region": session.region_name},
        "failure_queue_depth": _queue_depth(sqs, stack.outputs["FailureQueueUrl"]),
        "retraining_queue_depth": _queue_depth(sqs, stack.outputs["RetrainingQueueUrl"]),
        "notes": [
            "deployed stack: records were found by key; failed records are not counted "
            "(FailureQueue is left unread); its depth and RetrainingQueue's are in the JSON",
        ],
    }
    record_ids = sent_record_ids(stack.outputs["TransactionsStreamName"], sent.positions)
    return build_summary(traffic, record_ids, observed, finished - sent.started_at, drift, extra)
