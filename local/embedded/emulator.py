"""Event-source emulator: the stack's Kinesis event-source mappings, run against in-process handlers.

For every mapping the stack declares (read back with get_event_source_mapping), one poller per
shard reads the stream and invokes the mapped function with the event Lambda would send,
honouring what the mapping says:

- BatchSize, and MaximumBatchingWindowInSeconds: a batch goes when it is full or when the
  window since its first record ran out (and never above Lambda's 6 MB payload);
- FunctionResponseTypes ReportBatchItemFailures: the checkpoint moves to the lowest failed
  sequence number and the records from there are retried; an empty, null or unknown
  itemIdentifier fails the whole batch;
- BisectBatchOnFunctionError: a batch whose invocation raised is split in two halves, each
  retried on its own; splitting consumes no retry;
- MaximumRetryAttempts and MaximumRecordAgeInSeconds (-1: no limit): past either, the records
  are discarded and their metadata (Lambda's on-failure record for Kinesis) goes to the
  DestinationConfig OnFailure queue or topic;
- StartingPosition (LATEST, TRIM_HORIZON) and State (a disabled mapping is not polled).

Mappings can change while the emulator runs, as they can in Lambda: `reload()` reads every
mapping's configuration again (after an update_event_source_mapping: a new BatchSize, window,
retry limit or State applies from its next poll on), `add()` polls new mappings (a replay
is a second mapping of the function from TRIM_HORIZON: Lambda cannot move an existing
mapping's position) and `remove()` stops polling one.

Resharding (SplitShard, MergeShards): a poller that read a closed shard to its end finishes;
the shards are listed again every `shard_poll_s` (and before a drain is declared), and a
child shard is polled from its TRIM_HORIZON once every parent (ParentShardId,
AdjacentParentShardId) it has on the stream has finished. The AWS sentence saying that Lambda
processes a parent shard before its children could not be found (the docs state per-shard
order); the parent-before-child rule is how Lambda keeps a partition key's order across a
reshard, and this models that intended behaviour.

Not emulated: ParallelizationFactor above 1 (each shard runs one batch at a time; order and
results are the same, concurrency is not), tumbling windows, filter criteria.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from embedded.containers import FunctionError, Invocation, Invoker
from embedded.dynamodb_streams import DynamoStreamAsKinesis, dynamodb_event, is_table_stream
from embedded.lambda_events import KinesisEntry, kinesis_event

# Lambda's limit on a synchronous invocation's payload; a batch is cut before it.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
RECORD_OVERHEAD_BYTES = 600  # the JSON around one record's data in the event
IDLE_POLL_SECONDS = 0.2
# A mapping on an enhanced fan-out consumer has records pushed to it ("Stream consumers use HTTP/2
# to reduce latency by pushing records to Lambda over a long-lived connection", Lambda Developer
# Guide, "Using AWS Lambda with Amazon Kinesis"): its poller looks again this soon (moto has no
# SubscribeToShard; GetRecords stands in for the push). A polling mapping uses `idle_poll_s`.
PUSH_POLL_SECONDS = 0.02
RETRY_PAUSE_SECONDS = (0.05, 1.0)  # first pause before a retry, and the most it grows to
POLL_ATTEMPTS = 5  # failed GetRecords in a row before a poller gives up
SHARD_POLL_SECONDS = 1.0  # how often the stream's shards are listed again (resharding)

Clock = Callable[[], float]


@dataclass(frozen=True)
class MappingConfig:
    """A Kinesis event-source mapping as Lambda describes it (get_event_source_mapping)."""

    uuid: str
    function_arn: str
    event_source_arn: str
    batch_size: int
    batching_window_s: float
    parallelization_factor: int
    bisect_on_error: bool
    maximum_retry_attempts: int  # -1: until the record expires
    maximum_record_age_s: int  # -1: no limit
    report_batch_item_failures: bool
    on_failure_destination: str | None
    starting_position: str
    enabled: bool
    starting_position_timestamp: float | None = None  # epoch seconds, with AT_TIMESTAMP
    consumer_arn: str | None = None  # an enhanced fan-out consumer's (event_source_arn: its stream)

    @property
    def stream_name(self) -> str:
        return self.event_source_arn.rsplit("/", 1)[-1]

    @classmethod
    def from_api(cls, mapping: Mapping[str, Any]) -> MappingConfig:
        destination = mapping.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        source = str(mapping["EventSourceArn"])
        # a consumer's ARN is its stream's followed by /consumer/<name>:<creation timestamp>
        stream, through, _ = source.partition("/consumer/")
        return cls(
            uuid=mapping["UUID"],
            function_arn=mapping["FunctionArn"],
            event_source_arn=stream,
            consumer_arn=source if through else None,
            batch_size=int(mapping.get("BatchSize", 100)),
            batching_window_s=float(mapping.get("MaximumBatchingWindowInSeconds", 0)),
            parallelization_factor=int(mapping.get("ParallelizationFactor", 1)),
            bisect_on_error=_flag(mapping.get("BisectBatchOnFunctionError", False)),
            maximum_retry_attempts=int(mapping.get("MaximumRetryAttempts", -1)),
            maximum_record_age_s=int(mapping.get("MaximumRecordAgeInSeconds", -1)),
            report_batch_item_failures="ReportBatchItemFailures"
            in mapping.get("FunctionResponseTypes", []),
            on_failure_destination=destination or None,
            starting_position=mapping.get("StartingPosition", "LATEST"),
            enabled=mapping.get("State", "Enabled") not in ("Disabled", "Disabling"),
            starting_position_timestamp=_epoch_or_none(mapping.get("StartingPositionTimestamp")),
        )


def _epoch_or_none(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def _flag(value: Any) -> bool:
    # moto returns the template's "true"/"false" parameter strings as they were given
    return value is True or str(value).lower() == "true"


@dataclass
class MappingStats:
    """What one mapping did, over all its shards."""

    records_read: int = 0
    records_succeeded: int = 0
    records_discarded: int = 0
    invocations: int = 0
    function_errors: int = 0
    partial_failures: int = 0
    retries: int = 0
    bisections: int = 0
    failure_records_sent: int = 0
    handler_seconds: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)
    last_error: FunctionError | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, Any]:
        sizes = self.batch_sizes
        return {
            "records_read": self.records_read,
            "records_succeeded": self.records_succeeded,
            "records_discarded": self.records_discarded,
            "invocations": self.invocations,
            "function_errors": self.function_errors,
            "partial_failures": self.partial_failures,
            "retries": self.retries,
            "bisections": self.bisections,
            "failure_records_sent": self.failure_records_sent,
            "handler_seconds": round(self.handler_seconds, 3),
            "mean_batch_size": round(sum(sizes) / len(sizes), 1) if sizes else None,
            "last_error": str(self.last_error) if self.last_error else None,
        }


@dataclass(frozen=True)
class Incident:
    """Something the user should hear about while the run goes on."""

    function_arn: str
    message: str


class FailureDestination:
    """The mapping's OnFailure destination: an SQS queue or an SNS topic, by ARN."""

    def __init__(self, arn: str, clients: Callable[[str], Any]):
        self.arn = arn
        service = arn.split(":")[2]
        if service == "sqs":
            sqs = clients("sqs")
            name, account = arn.split(":")[5], arn.split(":")[4]
            url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            self._send: Callable[[str], None] = lambda body: sqs.send_message(
                QueueUrl=url, MessageBody=body
            )
        elif service == "sns":
            sns = clients("sns")
            self._send = lambda body: sns.publish(TopicArn=arn, Message=body)
        else:
            raise ValueError(f"on-failure destination {arn}: only SQS queues and SNS topics")

    def send(self, record: Mapping[str, Any]) -> None:
        self._send(json.dumps(record))


@dataclass(frozen=True)
class _Attempt:
    invocation: Invocation
    failed_from: int | None  # index of the lowest failed record; None when all succeeded
    invalid_response: str | None = None


class ShardPoller:
    """One shard of one mapping: reads, batches, invokes, checkpoints; one batch at a time."""

    def __init__(
        self,
        mapping: MappingConfig,
        shard_id: str,
        kinesis: Any,
        invoke: Invoker,
        role_arn: str,
        region: str,
        destination: FailureDestination | None,
        stats: MappingStats,
        report: Callable[[Incident], None],
        clock: Clock = time.time,
        idle_poll_s: float = IDLE_POLL_SECONDS,
    ):
        self.mapping = mapping
        self.shard_id = shard_id
        self.kinesis = kinesis
        self.invoke = invoke
        self.role_arn = role_arn
        self.region = region
        self.destination = destination
        self.stats = stats
        self.report = report
        self.clock = clock
        self.idle_poll_s = idle_poll_s
        self._iterator: str | None = None
        self._buffer: deque[dict[str, Any]] = deque()
        self._window_opened: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._busy = False
        self._last_empty_poll_started = 0.0
        self.crashed: BaseException | None = None
        # resharding: set once the shard was seen closed (ListShards gave it an
        # EndingSequenceNumber); the poller finishes at its first empty read after that
        self.closed_seen_at: float | None = None
        self._exhausted = False  # GetRecords gave no NextShardIterator: nothing more, ever
        self.finished = threading.Event()

    # ------------------------------------------------------------- lifecycle

    def open(self, position: str | None = None) -> None:
        """Take the shard iterator of the mapping's starting position (LATEST means: from now)."""
        position = position or self.mapping.starting_position
        if position not in ("LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"):
            raise ValueError(
                f"StartingPosition {position} is not emulated (LATEST, TRIM_HORIZON, AT_TIMESTAMP)"
            )
        extra: dict[str, Any] = {}
        if position == "AT_TIMESTAMP":
            extra["Timestamp"] = datetime.fromtimestamp(
                self.mapping.starting_position_timestamp or 0.0, UTC
            )
        self._iterator = self.kinesis.get_shard_iterator(
            StreamARN=self.mapping.event_source_arn,
            ShardId=self.shard_id,
            ShardIteratorType=position,
            **extra,
        )["ShardIterator"]

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"esm-{self.mapping.stream_name}-{self.shard_id}", daemon=True
        )
        self._thread.start()

    def signal_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def idle_since(self) -> float | None:
        """Start time of the last poll that found nothing, while nothing is buffered or running."""
        if self.finished.is_set():
            return time.monotonic()  # a finished shard stays drained
        with self._state_lock:
            if self._busy or self._buffer:
                return None
            return self._last_empty_poll_started

    # ------------------------------------------------------------- the loop

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self.mapping.enabled and not self._buffer:
                    with self._state_lock:  # disabled by an update: idle, as a drained shard
                        self._last_empty_poll_started = time.monotonic()
                    self._stop.wait(self.idle_poll_s)
                    continue
                if len(self._buffer) < self.mapping.batch_size and not self._exhausted:
                    self._read()
                if not self._buffer:
                    if self._at_end():
                        self.finished.set()
                        return
                    self._stop.wait(self.idle_poll_s)
                    continue
                if self._window_opened is None:
                    self._window_opened = time.monotonic()
                waited = time.monotonic() - self._window_opened
                if (
                    len(self._buffer) < self.mapping.batch_size
                    and waited < self.mapping.batching_window_s
                ):
                    self._stop.wait(min(self.idle_poll_s, self.mapping.batching_window_s - waited))
                    continue
                batch = self._take_batch()
                self._deliver(batch)
                with self._state_lock:
                    self._busy = False
                self._window_opened = time.monotonic() if self._buffer else None
        except BaseException as error:
            self.crashed = error
            self.report(
                Incident(self.mapping.function_arn, f"event-source poller stopped: {error!r}")
            )

    def _at_end(self) -> bool:
        """The shard is closed and everything in it was delivered (the buffer is empty)."""
        if self._exhausted:
            return True
        closed = self.closed_seen_at
        with self._state_lock:
            return closed is not None and self._last_empty_poll_started > closed

    def _read(self) -> None:
        """GetRecords into the buffer; a failed poll is retried, as Lambda's poller does."""
        for attempt in range(1, POLL_ATTEMPTS + 1):
            try:
                self._get_records()
                return
            except Exception as error:
                if attempt == POLL_ATTEMPTS:
                    raise
                self.report(
                    Incident(
                        self.mapping.function_arn,
                        f"GetRecords on {self.shard_id} failed ({error}); polling again",
                    )
                )
                self._stop.wait(min(5.0, 0.2 * 2**attempt))

    def _get_records(self) -> None:
        started = time.monotonic()
        page = self.kinesis.get_records(
            ShardIterator=self._iterator,
            StreamARN=self.mapping.event_source_arn,
            Limit=min(10_000, max(4 * self.mapping.batch_size, 1_000)),
        )
        next_iterator = page.get("NextShardIterator")
        if next_iterator is None:
            self._exhausted = True  # a closed shard read to its end
        self._iterator = next_iterator or self._iterator
        records = page["Records"]
        with self._state_lock:
            self._buffer.extend(records)
            if not records and not self._buffer and not self._busy:
                self._last_empty_poll_started = started
        if records:
            with self.stats.lock:
                self.stats.records_read += len(records)

    def _take_batch(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        size = 0
        with self._state_lock:
            self._busy = True
            while self._buffer and len(batch) < self.mapping.batch_size:
                record_size = payload_bytes(self._buffer[0])
                if batch and size + record_size > MAX_PAYLOAD_BYTES:
                    break
                size += record_size
                batch.append(self._buffer.popleft())
        return batch

    # ------------------------------------------------------------- one batch, to the end

    def _deliver(self, records: list[dict[str, Any]], retries: int = 0) -> None:
        """Invoke until every record succeeded or was discarded; bisect and retry on the way."""
        invocations = 0
        last: Invocation | None = None
        while records:
            records = self._discard_expired(records, invocations, last)
            if not records:
                return
            attempt = self._invoke(records)
            invocations += 1
            last = attempt.invocation
            if attempt.failed_from is None:
                self._count(records_succeeded=len(records))
                return
            if attempt.invocation.error is None and attempt.invalid_response is None:
                # partial failure: checkpoint before the lowest failed record, retry from it
                self._count(records_succeeded=attempt.failed_from, partial_failures=1)
                records = records[attempt.failed_from :]
            elif self.mapping.bisect_on_error and len(records) > 1:
                middle = len(records) // 2
                self._count(bisections=1)
                self._deliver(records[:middle], retries)
                self._deliver(records[middle:], retries)
                return
            limit = self.mapping.maximum_retry_attempts
            if limit >= 0 and retries >= limit:
                self._discard(records, "RetryAttemptsExhausted", invocations, last)
                return
            retries += 1
            self._count(retries=1)
            low, high = RETRY_PAUSE_SECONDS
            self._stop.wait(min(high, low * 2 ** (retries - 1)))

    def _invoke(self, records: Sequence[dict[str, Any]]) -> _Attempt:
        event = self._event(records)
        invocation = self.invoke(event)
        with self.stats.lock:
            self.stats.invocations += 1
            self.stats.handler_seconds += invocation.duration_s
            self.stats.batch_sizes.append(len(records))
        if invocation.error is not None:
            with self.stats.lock:
                self.stats.function_errors += 1
                self.stats.last_error = invocation.error
            self.report(
                Incident(
                    self.mapping.function_arn,
                    f"raised on a batch of {len(records)} records from {self.shard_id} "
                    f"({records[0]['SequenceNumber']}..{records[-1]['SequenceNumber']}): "
                    f"{invocation.error}",
                )
            )
            return _Attempt(invocation, 0)
        if not self.mapping.report_batch_item_failures:
            return _Attempt(invocation, None)
        failed_from, problem = lowest_failure(invocation.response, records)
        if problem is not None:
            self.report(
                Incident(
                    self.mapping.function_arn,
                    f"returned an invalid batchItemFailures response ({problem}); "
                    "the whole batch counts as failed",
                )
            )
            return _Attempt(invocation, 0, invalid_response=problem)
        return _Attempt(invocation, failed_from)

    def _event(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return batch_event(
            records, self.mapping.event_source_arn, self.shard_id, self.role_arn, self.region
        )

    def _discard_expired(
        self, records: list[dict[str, Any]], invocations: int, last: Invocation | None
    ) -> list[dict[str, Any]]:
        limit = self.mapping.maximum_record_age_s
        if limit < 0:
            return records
        now = self.clock()
        expired = 0
        while (
            expired < len(records)
            and now - _epoch(records[expired]["ApproximateArrivalTimestamp"]) > limit
        ):
            expired += 1
        if expired:
            self._discard(records[:expired], "RecordAgeExceeded", invocations, last)
        return records[expired:]

    def _discard(
        self,
        records: Sequence[dict[str, Any]],
        condition: str,
        invocations: int,
        last: Invocation | None,
    ) -> None:
        self._count(records_discarded=len(records))
        first, final = records[0], records[-1]
        self.report(
            Incident(
                self.mapping.function_arn,
                f"gave up on {len(records)} records of {self.shard_id} "
                f"({first['SequenceNumber']}..{final['SequenceNumber']}): {condition}",
            )
        )
        if self.destination is None:
            return
        self.destination.send(
            on_failure_record(
                self.mapping,
                self.shard_id,
                records,
                condition,
                invocations,
                last,
                datetime.fromtimestamp(self.clock(), UTC),
            )
        )
        self._count(failure_records_sent=1)

    def _count(self, **increments: int) -> None:
        with self.stats.lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)


def batch_event(
    records: Sequence[dict[str, Any]], stream_arn: str, shard_id: str, role_arn: str, region: str
) -> dict[str, Any]:
    """The event Lambda sends for `records` of one shard (as GetRecords returns them)."""
    if is_table_stream(stream_arn):
        return dynamodb_event(records, stream_arn, region)
    entries = [
        KinesisEntry(
            partition_key=r["PartitionKey"],
            data=r["Data"],
            sequence_number=r["SequenceNumber"],
            arrival=_epoch(r["ApproximateArrivalTimestamp"]),
        )
        for r in records
    ]
    event = kinesis_event(entries, stream_arn.rsplit("/", 1)[-1], shard_id, region=region)
    for record in event["Records"]:
        record["eventSourceARN"] = stream_arn
        record["invokeIdentityArn"] = role_arn
    return event


def payload_bytes(record: Mapping[str, Any]) -> int:
    """About what one record adds to an event's JSON: its data in base64 and the fields around it."""
    return len(record["Data"]) * 4 // 3 + RECORD_OVERHEAD_BYTES


def lowest_failure(
    response: Any, records: Sequence[dict[str, Any]]
) -> tuple[int | None, str | None]:
    """Index of the lowest failed record of a ReportBatchItemFailures response, or what is wrong with it."""
    if not isinstance(response, Mapping):
        return None, None
    failures = response.get("batchItemFailures")
    if not failures:
        return None, None
    if not isinstance(failures, list):
        return None, "batchItemFailures is not a list"
    index = {r["SequenceNumber"]: i for i, r in enumerate(records)}
    positions = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not identifier:
            return None, "an itemIdentifier is missing, null or empty"
        if identifier not in index:
            return None, f"itemIdentifier {identifier} is not a record of the batch"
        positions.append(index[identifier])
    return min(positions), None


def on_failure_record(
    mapping: MappingConfig,
    shard_id: str,
    records: Sequence[dict[str, Any]],
    condition: str,
    invocations: int,
    last: Invocation | None,
    now: datetime,
) -> dict[str, Any]:
    """Lambda's on-failure destination record for a discarded Kinesis batch (metadata only)."""
    response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if last is not None and last.error is not None:
        response_context["functionError"] = "Unhandled"
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": mapping.function_arn,
            "condition": condition,
            "approximateInvokeCount": invocations,
        },
        "responseContext": response_context,
        "version": "1.0",
        "timestamp": _iso(now),
        _batch_info(mapping.event_source_arn): {
            "shardId": shard_id,
            "startSequenceNumber": records[0]["SequenceNumber"],
            "endSequenceNumber": records[-1]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso(records[0]["ApproximateArrivalTimestamp"]),
            "approximateArrivalOfLastRecord": _iso(records[-1]["ApproximateArrivalTimestamp"]),
            "batchSize": len(records),
            "streamArn": mapping.event_source_arn,
        },
    }


def _batch_info(stream_arn: str) -> str:
    return "DDBStreamBatchInfo" if is_table_stream(stream_arn) else "KinesisBatchInfo"


def _list_shards(kinesis: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every shard of the stream, open and closed, over ListShards' pages."""
    page = kinesis.list_shards(StreamARN=stream_arn)
    shards = list(page["Shards"])
    while page.get("NextToken"):
        page = kinesis.list_shards(NextToken=page["NextToken"])
        shards += page["Shards"]
    return shards


def _parents(shard: Mapping[str, Any]) -> list[str]:
    return [shard[key] for key in ("ParentShardId", "AdjacentParentShardId") if shard.get(key)]


def _epoch(moment: datetime | float) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)


def _iso(moment: datetime | float) -> str:
    value = moment if isinstance(moment, datetime) else datetime.fromtimestamp(moment, UTC)
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


class EventSourceEmulator:
    """Every Kinesis mapping of a stack, polled shard by shard, invoking `invokers[function_arn]`."""

    def __init__(
        self,
        mappings: Sequence[MappingConfig],
        invokers: Mapping[str, Invoker],
        roles: Mapping[str, str],
        clients: Callable[[str], Any],
        region: str,
        clock: Clock = time.time,
        idle_poll_s: float = IDLE_POLL_SECONDS,
        on_incident: Callable[[Incident], None] | None = None,
        shard_poll_s: float = SHARD_POLL_SECONDS,
        consumers: Mapping[str, str] | None = None,
    ):
        """`consumers`: stream ARN -> the enhanced fan-out consumer its mappings read through,
        where the mappings do not say so themselves (the local stack's, whose mappings moto
        keeps on the stream)."""
        self._consumers = dict(consumers or {})
        self.mappings: list[MappingConfig] = []
        self.stats: dict[str, MappingStats] = {}
        self.incidents: list[Incident] = []
        self._incident_lock = threading.Lock()
        self._on_incident = on_incident
        self.pollers: list[ShardPoller] = []
        self.warnings: list[str] = []
        self.invokers = dict(invokers)
        self._roles = dict(roles)
        # one client per service for the emulator's lifetime: a boto3 client costs tens of
        # milliseconds to make, and the shards are listed every `shard_poll_s` per mapping
        self._clients = functools.cache(clients)
        self._region = region
        self._clock = clock
        self._idle_poll_s = idle_poll_s
        self._destinations: dict[str, FailureDestination] = {}
        self._started = False
        self._shard_poll_s = shard_poll_s
        self._shards_lock = threading.RLock()
        # per mapping: shards it has a poller for, or will never poll (closed before a LATEST start)
        self._known_shards: dict[str, set[str]] = {}
        self._watcher_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._add_pollers([m for m in mappings if m.enabled])

    def _add_pollers(self, mappings: Sequence[MappingConfig]) -> list[ShardPoller]:
        added: list[ShardPoller] = []
        for given in mappings:
            mapping = given
            if mapping.consumer_arn is None and mapping.event_source_arn in self._consumers:
                mapping = replace(mapping, consumer_arn=self._consumers[mapping.event_source_arn])
            if mapping.parallelization_factor > 1:
                self.warnings.append(
                    f"{mapping.stream_name}: ParallelizationFactor "
                    f"{mapping.parallelization_factor} runs as 1 locally (one batch at a time "
                    "per shard; same order and results, less concurrency)"
                )
            arn = mapping.on_failure_destination
            if arn and arn not in self._destinations:
                self._destinations[arn] = FailureDestination(arn, self._clients)
            self.mappings.append(mapping)
            self.stats[mapping.uuid] = MappingStats()
            kinesis = self._stream_client(mapping.event_source_arn)
            shards = _list_shards(kinesis, mapping.event_source_arn)
            listed = {s["ShardId"] for s in shards}
            known = self._known_shards.setdefault(mapping.uuid, set())
            for shard in shards:
                closed = "EndingSequenceNumber" in shard["SequenceNumberRange"]
                if mapping.starting_position == "LATEST":
                    if closed:  # nothing comes after "now" on a closed shard
                        known.add(shard["ShardId"])
                        continue
                elif any(parent in listed for parent in _parents(shard)):
                    continue  # TRIM_HORIZON: polled once its parents finished
                known.add(shard["ShardId"])
                added.append(self._poller(mapping, shard["ShardId"], kinesis))
        self.pollers += added
        return added

    def _stream_client(self, stream_arn: str) -> Any:
        """The Kinesis client, or a table's stream behind the same calls."""
        if is_table_stream(stream_arn):
            return DynamoStreamAsKinesis(self._clients("dynamodbstreams"))
        return self._clients("kinesis")

    def _poller(self, mapping: MappingConfig, shard_id: str, kinesis: Any) -> ShardPoller:
        arn = mapping.on_failure_destination
        return ShardPoller(
            mapping,
            shard_id,
            kinesis,
            self.invokers[mapping.function_arn],
            self._roles.get(mapping.function_arn, ""),
            self._region,
            self._destinations.get(arn) if arn else None,
            self.stats[mapping.uuid],
            self._report,
            self._clock,
            PUSH_POLL_SECONDS if mapping.consumer_arn else self._idle_poll_s,
        )

    def sync_shards(self) -> int:
        """List every polled stream's shards again; start the children whose parents finished.

        Marks the pollers of shards now closed, so that they finish once read to their end, and
        returns how many shards still wait for a poller (started now or not yet startable).
        """
        with self._shards_lock:
            if not self._started:
                return 0
            pending = 0
            listings: dict[str, list[dict[str, Any]]] = {}
            for mapping in list(self.mappings):
                arn = mapping.event_source_arn
                kinesis = self._stream_client(arn)
                if arn not in listings:
                    listings[arn] = _list_shards(kinesis, arn)
                pending += self._sync_mapping(mapping, listings[arn], kinesis)
            return pending

    def _sync_mapping(
        self, mapping: MappingConfig, shards: list[dict[str, Any]], kinesis: Any
    ) -> int:
        seen_at = time.monotonic()
        pollers = {p.shard_id: p for p in self.pollers if p.mapping.uuid == mapping.uuid}
        for shard in shards:
            poller = pollers.get(shard["ShardId"])
            closed = "EndingSequenceNumber" in shard["SequenceNumberRange"]
            if poller is not None and closed and poller.closed_seen_at is None:
                poller.closed_seen_at = seen_at
        listed = {s["ShardId"] for s in shards}
        known = self._known_shards.setdefault(mapping.uuid, set())
        pending = 0
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id in known:
                continue
            pending += 1
            parents = [p for p in _parents(shard) if p in listed]  # expired parents: done
            if all(
                p in known and (p not in pollers or pollers[p].finished.is_set()) for p in parents
            ):
                poller = self._poller(mapping, shard_id, kinesis)
                # a child's records all come after the reshard: from its start
                poller.open("TRIM_HORIZON")
                known.add(shard_id)
                self.pollers.append(poller)
                pollers[shard_id] = poller
                poller.start()
        return pending

    def _no_shard_pending(self) -> bool:
        try:
            return self.sync_shards() == 0
        except Exception as error:  # not known to be drained: listed again on the next pass
            self._report(Incident("", f"listing the streams' shards failed: {error!r}"))
            return False

    def _watch_shards(self) -> None:
        while not self._watcher_stop.wait(self._shard_poll_s):
            try:
                self.sync_shards()
            except Exception as error:  # listed again at the next tick
                self._report(Incident("", f"listing the streams' shards failed: {error!r}"))

    def _report(self, incident: Incident) -> None:
        with self._incident_lock:
            self.incidents.append(incident)
        if self._on_incident is not None:
            self._on_incident(incident)

    def start(self) -> None:
        """Open every shard at its starting position, then start polling."""
        for poller in self.pollers:
            poller.open()
        for poller in self.pollers:
            poller.start()
        self._started = True
        self._watcher = threading.Thread(target=self._watch_shards, name="esm-shards", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._watcher_stop.set()
        if self._watcher is not None:
            self._watcher.join(30.0)
        with self._shards_lock:
            pollers = list(self.pollers)
        for poller in pollers:  # all of them told before any is waited for
            poller.signal_stop()
        for poller in pollers:
            poller.stop()

    def add(self, mappings: Sequence[MappingConfig]) -> None:
        """Poll these mappings too (each from its starting position), from now on if running."""
        with self._shards_lock:
            added = self._add_pollers(mappings)
            if self._started:
                for poller in added:
                    poller.open()
                for poller in added:
                    poller.start()

    def remove(self, uuid: str) -> None:
        """Stop polling a mapping (its stats stay, under its UUID): a deleted mapping."""
        with self._shards_lock:
            leaving = [p for p in self.pollers if p.mapping.uuid == uuid]
            self.pollers = [p for p in self.pollers if p.mapping.uuid != uuid]
            self.mappings = [m for m in self.mappings if m.uuid != uuid]
            self._known_shards.pop(uuid, None)
        for poller in leaving:
            poller.stop()

    def reload(self) -> list[MappingConfig]:
        """Read every polled mapping's configuration again; pollers use it from their next poll.

        What update_event_source_mapping changes (BatchSize, the batching window, retries,
        bisect, the maximum age, State) applies; the starting position, the stream and the
        function of a running mapping do not change (nor can they in Lambda).
        """
        lambda_ = self._clients("lambda")
        fresh: dict[str, MappingConfig] = {}
        for mapping in self.mappings:
            current = MappingConfig.from_api(lambda_.get_event_source_mapping(UUID=mapping.uuid))
            fresh[mapping.uuid] = replace(
                current,
                function_arn=mapping.function_arn,
                event_source_arn=mapping.event_source_arn,
                consumer_arn=mapping.consumer_arn,
                starting_position=mapping.starting_position,
            )
        self.mappings = [fresh[m.uuid] for m in self.mappings]
        for poller in self.pollers:
            poller.mapping = fresh[poller.mapping.uuid]
        return self.mappings

    def crashed(self) -> list[BaseException]:
        return [p.crashed for p in self.pollers if p.crashed is not None]

    def wait_until_drained(
        self, timeout_s: float, progress: Callable[[], None] | None = None
    ) -> bool:
        """True once every shard is read to its end and no batch runs; False after `timeout_s`.

        Drained: at some moment T every poller was idle, and each has since finished a poll
        that started after T and found nothing. Whatever an invocation wrote before T (the
        features stream) is then seen, and no invocation runs to write more. And no shard
        waits for a poller: a child of a reshard whose parents have not finished, or that
        has just been started, is work still to come.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.crashed():
                return False
            if progress is not None:
                progress()
            quiet = list(self.pollers)
            if all(p.idle_since() is not None for p in quiet):
                quiet_from = time.monotonic()
                # a poller started since T (a reshard's child) did its work after T: start over
                while time.monotonic() < deadline and self.pollers == quiet:
                    since = [p.idle_since() for p in quiet]
                    if any(s is None for s in since):
                        break
                    if all(s is not None and s >= quiet_from for s in since):
                        if self._no_shard_pending() and self.pollers == quiet:
                            return True
                        break
                    time.sleep(self._idle_poll_s / 4)
            time.sleep(0.05)
        return False
