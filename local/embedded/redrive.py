"""Re-drive of FailureQueue: the Kinesis ranges Lambda gave up on, read again and invoked again.

Each FailureQueue message of an event-source mapping is Lambda's on-failure record of a
discarded Kinesis batch: metadata only (`KinesisBatchInfo`: stream, shard, first and last
sequence number, batch size; `requestContext.functionArn`). `redrive` receives the messages,
reads each recorded range back from its stream (GetShardIterator AT_SEQUENCE_NUMBER at the
first sequence number, GetRecords until the first record past the last one, or the shard's
end: the API has no end bound), and invokes the mapped function with a Kinesis event of
exactly those records: their own sequence numbers and arrival times, in chunks of the
mapping's BatchSize (and under Lambda's 6 MB payload), in shard order.

A chunk whose invocation raised, or whose response names failed records (batchItemFailures),
stops its range there: the records after it are not sent (a card's later transactions must
not overtake an earlier one), and the range is tried again, from the first record not done,
after a backoff, a few times. Ranges are independent: one still failing does not hold the
others back (Lambda gave up on each separately, and went on with its shard meanwhile). A message is deleted only when its whole range succeeded;
the others are made visible again at once, for the next re-drive. Records the stream no
longer holds (older than its retention) are reported as lost, with their range; their
message is kept as the record of the loss unless `delete_lost`. Messages that are not a
Kinesis batch's record (a drift check's failed asynchronous invocation) are left alone.

Running it twice re-drives nothing new (the messages are gone), and a range re-driven twice
changes nothing: the functions apply each transaction once, by its id.

`invoke(function_arn, event)` runs the function: in-process for the embedded stack
(`in_process`), `lambda.invoke` RequestResponse for a deployed one (`lambda_invoker`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from embedded.containers import FunctionError, Invocation, Invoker
from embedded.deploy import open_deployed_stack
from embedded.emulator import MAX_PAYLOAD_BYTES, batch_event, lowest_failure, payload_bytes

RangeInvoker = Callable[[str, dict[str, Any]], Invocation]  # (function ARN, event) -> outcome

RECEIVE_BATCH = 10  # SQS's most per ReceiveMessage / DeleteMessageBatch
# Received messages stay hidden this long: longer than a re-drive of many ranges takes, so no
# other re-drive (or a second terminal) takes them meanwhile. Kept ones are released at once.
VISIBILITY_SECONDS = 900
ATTEMPTS = 3  # tries of a failing range, a backoff apart
BACKOFF_SECONDS = (2.0, 30.0)  # the first pause between tries, and the most it grows to
GET_RECORDS_LIMIT = 10_000
MAX_GET_RECORDS_CALLS = 10_000  # a range not read past its end by then is reported, not waited on
DEFAULT_BATCH_SIZE = 100  # Lambda's default for Kinesis, when no mapping says otherwise


class RangeReadError(RuntimeError):
    """The range could not be read back from its stream."""


# ---------------------------------------------------------------- the messages


@dataclass(frozen=True)
class FailedBatch:
    """One FailureQueue message of an event-source mapping: the range Lambda gave up on."""

    message_id: str
    receipt_handle: str
    function_arn: str
    stream_arn: str
    shard_id: str
    start: str
    end: str
    batch_size: int
    condition: str

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.function_arn, self.stream_arn, self.shard_id, self.start, self.end)

    @property
    def stream_name(self) -> str:
        return self.stream_arn.rsplit("/", 1)[-1]

    @property
    def function_name(self) -> str:
        return self.function_arn.split(":")[6] if self.function_arn.count(":") >= 6 else ""


def failed_batch(message: Mapping[str, Any]) -> FailedBatch | str:
    """The message's range, or why it is not an event-source mapping's on-failure record."""
    try:
        body = json.loads(message["Body"])
    except (TypeError, ValueError):
        return "not JSON"
    info = body.get("KinesisBatchInfo") if isinstance(body, dict) else None
    if not isinstance(info, dict):
        context = body.get("requestContext", {}) if isinstance(body, dict) else {}
        what = context.get("condition") or "no KinesisBatchInfo"
        arn = str(context.get("functionArn", "")).split(":")
        function = arn[6] if len(arn) > 6 else arn[-1]
        return f"not a Kinesis batch's record ({what}{', ' + function if function else ''})"
    try:
        start, end = str(info["startSequenceNumber"]), str(info["endSequenceNumber"])
        int(start), int(end)
        return FailedBatch(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            function_arn=str(body["requestContext"]["functionArn"]),
            stream_arn=str(info["streamArn"]),
            shard_id=str(info["shardId"]),
            start=start,
            end=end,
            batch_size=int(info.get("batchSize", 0)),
            condition=str(body["requestContext"].get("condition", "")),
        )
    except (KeyError, TypeError, ValueError) as error:
        return f"an incomplete Kinesis batch record ({error!r})"


def receive_all(
    sqs: Any, queue_url: str, wait_seconds: int = 0, limit: int = 100_000
) -> list[dict[str, Any]]:
    """Every message on the queue, received (and hidden for VISIBILITY_SECONDS), up to `limit`."""
    messages: list[dict[str, Any]] = []
    while len(messages) < limit:
        page = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=RECEIVE_BATCH,
            VisibilityTimeout=VISIBILITY_SECONDS,
            WaitTimeSeconds=wait_seconds,
        ).get("Messages", [])
        if not page:
            break
        messages += page
    return messages


def _batches[T](items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _delete(sqs: Any, queue_url: str, batches: Sequence[FailedBatch]) -> list[str]:
    """Delete the messages; what could not be deleted, said for people."""
    problems: list[str] = []
    for chunk in _batches(batches, RECEIVE_BATCH):
        response = sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": b.receipt_handle} for i, b in enumerate(chunk)
            ],
        )
        problems += [
            f"message {chunk[int(f['Id'])].message_id} not deleted ({f.get('Message', f['Code'])}): "
            "it will be re-driven again next time, which changes nothing"
            for f in response.get("Failed", [])
        ]
    return problems


def _release(sqs: Any, queue_url: str, handles: Sequence[tuple[str, str]]) -> None:
    """Make received messages visible again at once (message id, receipt handle)."""
    for chunk in _batches(handles, RECEIVE_BATCH):
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, (_, handle) in enumerate(chunk)
            ],
        )


# ---------------------------------------------------------------- reading a range back


def read_range(
    kinesis: Any, stream_arn: str, shard_id: str, start: str, end: str
) -> list[dict[str, Any]]:
    """The shard's records with start <= sequence number <= end, in order (those it still holds).

    GetRecords has no end bound: read from `start` until the first record past `end`, the
    record `end` itself, the end of a closed shard, or the tip of an open one. A start the
    stream no longer holds (trimmed) is read from the shard's trim horizon instead; a shard
    that is gone holds nothing.
    """
    low, high = int(start), int(end)
    try:
        iterator = kinesis.get_shard_iterator(
            StreamARN=stream_arn,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=start,
        )["ShardIterator"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            return []  # the shard expired with its records (a closed shard past retention)
        if code != "InvalidArgumentException":
            raise
        iterator = kinesis.get_shard_iterator(
            StreamARN=stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
    found: list[dict[str, Any]] = []
    for _ in range(MAX_GET_RECORDS_CALLS):
        page = kinesis.get_records(
            ShardIterator=iterator, StreamARN=stream_arn, Limit=GET_RECORDS_LIMIT
        )
        for record in page["Records"]:
            position = int(record["SequenceNumber"])
            if position > high:
                return found
            if position >= low:
                found.append(record)
        if found and int(found[-1]["SequenceNumber"]) == high:
            return found
        iterator = page.get("NextShardIterator")
        if not iterator:
            return found  # a closed shard, read to its end
        if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
            return found  # the tip of the shard: nothing past the range yet
    raise RangeReadError(
        f"{shard_id} of {stream_arn}: not past {end} after {MAX_GET_RECORDS_CALLS:,} GetRecords calls"
    )


def _chunks(records: Sequence[dict[str, Any]], batch_size: int) -> list[list[dict[str, Any]]]:
    """Batches as the mapping would cut them: at most `batch_size` records and Lambda's payload."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for record in records:
        record_size = payload_bytes(record)
        if current and (len(current) == batch_size or size + record_size > MAX_PAYLOAD_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(record)
        size += record_size
    if current:
        chunks.append(current)
    return chunks


# ---------------------------------------------------------------- the stack's mappings


@dataclass(frozen=True)
class Target:
    """What an event for one function from one stream needs: its batch size, role and region."""

    batch_size: int
    role_arn: str
    region: str
    note: str | None = None


def _targets(clients: Callable[[str], Any]) -> Callable[[FailedBatch], Target]:
    """Look up (once each) the mapping of a function and stream, and the function's role."""
    known: dict[tuple[str, str], Target] = {}
    lambda_: Any = None

    def target(batch: FailedBatch) -> Target:
        nonlocal lambda_
        key = (batch.function_arn, batch.stream_arn)
        if key not in known:
            lambda_ = lambda_ or clients("lambda")
            pages = lambda_.get_paginator("list_event_source_mappings").paginate(
                EventSourceArn=batch.stream_arn
            )
            mappings = [
                m
                for page in pages
                for m in page.get("EventSourceMappings", [])
                if m.get("FunctionArn") == batch.function_arn
            ]
            enabled = [m for m in mappings if m.get("State", "Enabled") == "Enabled"] or mappings
            try:
                role = lambda_.get_function_configuration(FunctionName=batch.function_arn)["Role"]
            except (ClientError, KeyError):
                role = ""
            region = batch.stream_arn.split(":")[3]
            if enabled:
                known[key] = Target(
                    int(enabled[0].get("BatchSize", DEFAULT_BATCH_SIZE)), role, region
                )
            else:
                size = max(1, min(batch.batch_size or DEFAULT_BATCH_SIZE, 10_000))
                known[key] = Target(
                    size,
                    role,
                    region,
                    f"no event-source mapping of {batch.function_name} reads {batch.stream_name}: "
                    f"batches of {size}, the failed batch's size",
                )
        return known[key]

    return target


# ---------------------------------------------------------------- the re-drive


@dataclass
class RangeResult:
    """What became of one recorded range (one or more messages naming it)."""

    function: str
    stream: str
    shard_id: str
    start: str
    end: str
    recorded: int  # the on-failure record's batchSize
    condition: str
    messages: int = 0
    found: int = 0  # records read back from the stream
    redriven: int = 0  # records whose invocation succeeded
    lost: int = 0  # records the stream no longer holds
    lost_range: str | None = None
    attempts: int = 0
    invocations: int = 0
    error: str | None = None  # why the range is not done (the last try's)
    note: str | None = None
    status: str = "pending"  # redriven | kept | lost | would re-drive
    read: bool = False  # whether the range could be read back

    @property
    def kept(self) -> int:
        """Records still to re-drive: found on the stream (or recorded, when unread), not done."""
        if self.status != "kept":
            return 0
        return (self.found if self.read else self.recorded) - self.redriven

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


@dataclass
class _Work:
    batches: list[FailedBatch]
    result: RangeResult
    records: list[dict[str, Any]] | None = None
    cursor: int = 0
    done: bool = False


@dataclass
class RedriveReport:
    """The re-drive's outcome: per range, and the messages it received, deleted and left."""

    queue_url: str
    ranges: list[RangeResult] = field(default_factory=list)
    messages: int = 0
    deleted: int = 0
    other: list[str] = field(default_factory=list)  # messages left alone, and why
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def records_redriven(self) -> int:
        return sum(r.redriven for r in self.ranges)

    @property
    def records_kept(self) -> int:
        return sum(r.kept for r in self.ranges)

    @property
    def records_lost(self) -> int:
        return sum(r.lost for r in self.ranges)

    @property
    def kept_messages(self) -> int:
        return self.messages - self.deleted - len(self.other)

    @property
    def ok(self) -> bool:
        """Every range re-driven whole: nothing kept, nothing lost."""
        return all(r.status in ("redriven", "would re-drive") for r in self.ranges) and not (
            self.records_lost
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue_url": self.queue_url,
            "dry_run": self.dry_run,
            "messages": self.messages,
            "ranges": len(self.ranges),
            "records_redriven": self.records_redriven,
            "records_kept": self.records_kept,
            "records_lost": self.records_lost,
            "messages_deleted": self.deleted,
            "messages_kept": self.kept_messages,
            "other_messages": self.other,
            "problems": self.problems,
            "seconds": round(self.seconds, 2),
            "detail": [r.as_dict() for r in self.ranges],
        }


def redrive(
    failure_queue_url: str,
    clients: Callable[[str], Any],
    invoke: RangeInvoker,
    *,
    attempts: int = ATTEMPTS,
    backoff_s: tuple[float, float] = BACKOFF_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    wait_seconds: int = 0,
    dry_run: bool = False,
    delete_lost: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RedriveReport:
    """Re-drive every range in FailureQueue; see the module's docstring for the rules."""
    started = time.monotonic()
    sqs = clients("sqs")
    kinesis = clients("kinesis")
    report = RedriveReport(failure_queue_url, dry_run=dry_run)
    received = receive_all(sqs, failure_queue_url, wait_seconds)
    report.messages = len(received)
    others: list[tuple[str, str]] = []
    work: dict[tuple[str, str, str, str, str], _Work] = {}
    for message in received:
        parsed = failed_batch(message)
        if isinstance(parsed, str):
            report.other.append(f"message {message.get('MessageId')}: {parsed}; left in the queue")
            others.append((message["MessageId"], message["ReceiptHandle"]))
            continue
        if parsed.key not in work:
            work[parsed.key] = _Work(
                [],
                RangeResult(
                    parsed.function_name,
                    parsed.stream_name,
                    parsed.shard_id,
                    parsed.start,
                    parsed.end,
                    parsed.batch_size,
                    parsed.condition,
                ),
            )
        work[parsed.key].batches.append(parsed)
        work[parsed.key].result.messages += 1
    _release(sqs, failure_queue_url, others)
    # shard order: a card's earlier range before its later one
    ordered = sorted(
        work.values(),
        key=lambda w: (w.batches[0].stream_arn, w.batches[0].shard_id, int(w.batches[0].start)),
    )
    report.ranges = [w.result for w in ordered]
    target = _targets(clients)

    pending = list(ordered)
    low, high = backoff_s
    for attempt in range(1, max(1, attempts) + 1):
        for item in pending:
            _drive(item, kinesis, target, invoke, dry_run)
            if progress is not None:
                progress(_line(item.result))
        pending = [w for w in pending if not w.done]
        if not pending or dry_run or attempt >= attempts:
            break
        sleep(min(high, low * 2 ** (attempt - 1)))

    finished = [w for w in ordered if w.done and not dry_run and (not w.result.lost or delete_lost)]
    report.problems += _delete(sqs, failure_queue_url, [b for w in finished for b in w.batches])
    report.deleted = sum(len(w.batches) for w in finished) - len(report.problems)
    keep = [w for w in ordered if w not in finished]
    _release(
        sqs, failure_queue_url, [(b.message_id, b.receipt_handle) for w in keep for b in w.batches]
    )
    for item in ordered:
        result = item.result
        if dry_run:
            result.status = "would re-drive"
        elif not item.done:
            result.status = "kept"
        elif result.lost:
            result.status = "lost"
        else:
            result.status = "redriven"
    report.seconds = time.monotonic() - started
    return report


def _drive(
    item: _Work,
    kinesis: Any,
    target: Callable[[FailedBatch], Target],
    invoke: RangeInvoker,
    dry_run: bool,
) -> None:
    """One try of one range: read it (once), then invoke chunk by chunk until one fails."""
    batch, result = item.batches[0], item.result
    result.attempts += 1
    result.error = None
    records = item.records
    if records is None:
        try:
            records = read_range(kinesis, batch.stream_arn, batch.shard_id, batch.start, batch.end)
        except (ClientError, BotoCoreError, RangeReadError) as error:
            result.error = f"cannot read the range back: {error}"
            return
        item.records = records
        result.read = True
        result.found = len(records)
        result.lost = max(0, batch.batch_size - len(records))
        if result.lost:
            result.lost_range = (
                f"{batch.start}..{batch.end} (all of it)"
                if not records
                else f"{batch.start} up to (not including) {records[0]['SequenceNumber']}"
            )
    if dry_run:
        item.done = True
        return
    how = target(batch)
    result.note = how.note
    for chunk in _chunks(records[item.cursor :], how.batch_size):
        event = batch_event(chunk, batch.stream_arn, batch.shard_id, how.role_arn, how.region)
        invocation = invoke(batch.function_arn, event)
        result.invocations += 1
        if invocation.error is not None:
            result.error = f"{result.function} raised {invocation.error}"
            return
        failed_from, problem = lowest_failure(invocation.response, chunk)
        if problem is not None:
            result.error = f"{result.function} returned an invalid batchItemFailures ({problem})"
            return
        if failed_from is not None:
            item.cursor += failed_from
            result.redriven += failed_from
            result.error = (
                f"{result.function} reported {len(chunk) - failed_from} of {len(chunk)} records "
                f"failed (batchItemFailures), from {chunk[failed_from]['SequenceNumber']}"
            )
            return
        item.cursor += len(chunk)
        result.redriven += len(chunk)
    item.done = True


# ---------------------------------------------------------------- invokers


def in_process(invokers: Mapping[str, Invoker]) -> RangeInvoker:
    """The embedded stack's functions, by ARN (the emulator's invokers: containers in-process)."""

    def invoke(function_arn: str, event: dict[str, Any]) -> Invocation:
        invoker = invokers.get(function_arn)
        if invoker is None:
            return Invocation(
                error=FunctionError(
                    "ResourceNotFoundException", f"no function {function_arn} in this stack", []
                )
            )
        return invoker(event)

    return invoke


def lambda_invoker(lambda_client: Any) -> RangeInvoker:
    """A deployed function: lambda.invoke, RequestResponse, its response or its error."""

    def invoke(function_arn: str, event: dict[str, Any]) -> Invocation:
        started = time.perf_counter()
        try:
            response = lambda_client.invoke(
                FunctionName=function_arn,
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode(),
            )
            raw = response["Payload"].read()
        except (ClientError, BotoCoreError) as error:
            code = (
                error.response.get("Error", {}).get("Code", "ClientError")
                if isinstance(error, ClientError)
                else type(error).__name__
            )
            return Invocation(error=FunctionError(code, str(error), []))
        duration = time.perf_counter() - started
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if response.get("FunctionError"):
            details = body if isinstance(body, dict) else {}
            return Invocation(
                error=FunctionError(
                    str(details.get("errorType", response["FunctionError"])),
                    str(details.get("errorMessage", raw[:500].decode(errors="replace"))),
                    list(details.get("stackTrace", [])),
                ),
                duration_s=duration,
            )
        return Invocation(response=body, duration_s=duration)

    return invoke


def redrive_deployed(
    stack_name: str,
    region: str | None,
    attempts: int = ATTEMPTS,
    dry_run: bool = False,
    delete_lost: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RedriveReport:
    """Re-drive a deployed stack's FailureQueue with your credentials."""
    stack, clients = open_deployed_stack(stack_name, region)
    url = stack.output("FailureQueueUrl")
    return redrive(
        url,
        clients,
        lambda_invoker(clients("lambda")),
        attempts=attempts,
        wait_seconds=2,  # long polling: an empty answer means the queue is empty
        dry_run=dry_run,
        delete_lost=delete_lost,
        progress=progress,
    )


# ---------------------------------------------------------------- for people

RANGES_SHOWN = 20


def _line(result: RangeResult) -> str:
    return _range_line(result.as_dict())


def _range_line(result: Mapping[str, Any]) -> str:
    where = (
        f"{result['function']} {result['stream']} {result['shard_id']} "
        f"{result['start']}..{result['end']}"
    )
    if result.get("error"):
        return f"{where}: {result['error']}"
    return f"{where}: {result['redriven']:,} of {result['found']:,} records re-driven"


def render_redrive(report: Mapping[str, Any]) -> list[str]:
    """The re-drive's lines (from RedriveReport.as_dict), for the summary or the terminal."""
    detail = report.get("detail", [])
    streams = sorted({r["stream"] for r in detail})
    messages, ranges = report["messages"], report["ranges"]
    lines = [
        f"Re-drive       FailureQueue: {messages} message{'s' if messages != 1 else ''}, "
        f"{ranges} range{'s' if ranges != 1 else ''}"
        + (f" of {', '.join(streams)}" if streams else "")
        + f" ({report['seconds']:.1f} s)",
    ]
    if report.get("dry_run"):
        found = sum(r["found"] for r in detail)
        lines.append(
            f"  would re-drive {found:>6,} records (dry run: nothing invoked, nothing deleted)"
        )
    else:
        lines.append(
            f"  re-driven    {report['records_redriven']:>8,} records; "
            f"messages deleted: {report['messages_deleted']}"
        )
        kept_ranges = sum(1 for r in detail if r["status"] == "kept")
        lines.append(
            f"  kept         {report['records_kept']:>8,} records in {kept_ranges} range"
            f"{'s' if kept_ranges != 1 else ''} still failing (their messages stay in FailureQueue)"
        )
    lines.append(
        f"  lost         {report['records_lost']:>8,} records no longer on the stream "
        "(past its retention)"
    )
    for result in detail[:RANGES_SHOWN]:
        if result["status"] != "redriven" or result.get("note"):
            text = f"    {result['status']}: {_range_line(result)}"
            if result.get("lost_range"):
                text += f"; lost {result['lost']:,}: {result['lost_range']}"
            if result.get("note"):
                text += f" ({result['note']})"
            lines.append(text)
    if len(detail) > RANGES_SHOWN:
        lines.append(f"    ... {len(detail) - RANGES_SHOWN} more ranges in the JSON summary")
    lines += [
        f"    {text}" for text in [*report.get("other_messages", []), *report.get("problems", [])]
    ]
    return lines
