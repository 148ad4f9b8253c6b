"""The local run: traffic through the template's stack on embedded AWS, then the drift check and a summary.

`run_embedded(options)` starts moto, deploys template.yaml, starts the event-source emulator,
streams the traffic (the baseline days first, then the days the drift check looks at), waits until both
streams are drained, invokes the drift check over the checked days (their event times: the
counts it reads are by event hour), and returns the summary. With `redrive`, what landed in FailureQueue is re-driven after
the streams drained (embedded/redrive.py), and drained again; with `replay`, both streams
are then read again from TRIM_HORIZON by second mappings with other batch sizes
(embedded/replay.py), after the drift check's window closed. `outages` makes a function
report every record of its batches failed for a while, as a handler does while a dependency
is down, to see the retries, FailureQueue and the re-drive at work. `invoke_function` runs one
handler with one event file against a fresh embedded stack, as `sam local invoke` does in Docker.

RetrainingRequested reaches RetrainingQueue through the stack's own rule: moto delivers bus
events to a rule's SQS target itself (the channel-shift e2e test checks that it arrives). moto
cannot deliver to the optional Step Functions or SageMaker targets: with those parameters set,
the local drift check's PutEvents fails.
"""

from __future__ import annotations

import functools
import itertools
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from embedded.async_invocations import deliver as deliver_async
from embedded.challenger import (
    LifecycleError,
    ModelLifecycle,
    challenger_version,
    promote_after,
)
from embedded.closed_loop import (
    BASELINE_DAYS,
    ClosedLoop,
    LoopError,
    loop_parameters,
)
from embedded.closed_loop_plot import draw_closed_loop
from embedded.containers import FUNCTION_OUTPUT, FunctionContainer, Invocation, Invoker
from embedded.emulator import EventSourceEmulator, Incident, MappingConfig, MappingStats
from embedded.labels import feed_labels
from embedded.producer import (
    SIMULATED_DAYS,
    Producer,
    ProducerResult,
    Traffic,
    file_traffic,
    simulated_traffic,
)
from embedded.progress import ProgressBar
from embedded.redrive import in_process, redrive
from embedded.replay import replay
from embedded.retraining import feature_log_section, retrain_section
from embedded.stack import MODEL_DIR, STACK_NAME, TEMPLATE_PATH, EmbeddedStack
from embedded.summary import (
    Observed,
    build_summary,
    drift_summary,
    functions_summary,
    observe_stack,
    read_json,
    sent_record_ids,
    split_s3,
)
from streamscore.core.artifacts import CARD_FILE
from streamscore.drift.quality_plot import draw_quality

DEFAULT_TRANSACTIONS = 20_000
DEFAULT_SEED = 2026
DEFAULT_INVALID_RATE = 0.01
DRIFT_FUNCTION = "DriftCheckFunction"
INCIDENTS_SHOWN = 10
# Records the producer lets wait in the pipeline, in preprocess batches: enough to keep both
# functions busy; more would only queue, and the latency would measure the queue.
IN_FLIGHT_BATCHES = 2
# The run's own re-drive: the functions run in-process, so a short backoff between tries.
REDRIVE_ATTEMPTS = 3
CHALLENGER_REFRESH_SECONDS = 2  # ModelRefreshSeconds of a run with --challenger, unless given
REDRIVE_BACKOFF_SECONDS = (0.5, 2.0)


class RunError(RuntimeError):
    """The run could not go on; the message says what happened and what to do."""


@dataclass
class RunOptions:
    transactions: int = DEFAULT_TRANSACTIONS
    scenario: str = "baseline"
    invalid_rate: float = DEFAULT_INVALID_RATE
    seed: int = DEFAULT_SEED
    input_path: Path | None = None
    rate: float | None = None  # records per second; None: as fast as the pipeline takes them
    aggregate: int = 1  # user records packed per Kinesis record, as the KPL does; 1: plain
    parameters: dict[str, str] = field(default_factory=dict)
    port: int = 0
    out_dir: Path = Path("out")
    timeout_s: float = 1800.0
    template_path: Path = TEMPLATE_PATH
    stack_name: str = STACK_NAME
    redrive: bool = False  # re-drive FailureQueue once the streams drained
    replay: bool = False  # then replay both streams from TRIM_HORIZON
    replay_batch_size: int | None = None  # None: about two thirds of each mapping's
    # function name -> seconds from its first invocation during which it fails every record
    outages: dict[str, float] = field(default_factory=dict)
    challenger: Path | None = None  # a model directory, scored in shadow from the start
    promote_at: float | None = None  # share of the records sent, then the challenger promoted
    days: float = SIMULATED_DAYS  # the simulated period
    retrain: bool = False  # once the labels are in, retrain and judge (lifecycle/retrain.py)
    closed_loop: bool = False  # a simulated day at a time, the stack's schedules and runner


def make_traffic(options: RunOptions) -> Traffic:
    if options.input_path is not None:
        try:
            traffic = file_traffic(options.input_path)
        except OSError as error:
            raise RunError(f"cannot read {options.input_path}: {error.strerror}") from None
        if not traffic.payloads:
            raise RunError(f"{options.input_path} has no records (one payload per line)")
        return traffic
    try:
        return simulated_traffic(
            options.transactions,
            options.scenario,
            options.invalid_rate,
            options.seed,
            options.days,
            BASELINE_DAYS if options.closed_loop else None,
        )
    except ValueError as error:
        raise RunError(str(error)) from None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


class _Console:
    """Status lines and the progress bar on one stream; incidents shown up to a limit."""

    def __init__(self, stream: TextIO, log_path: Path):
        self.stream = stream
        self.log_path = log_path
        self.bar: ProgressBar | None = None
        self.incidents = 0

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.message(text)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def incident(self, incident: Incident) -> None:
        self.incidents += 1
        name = incident.function_arn.rsplit(":", 1)[-1]
        if self.incidents <= INCIDENTS_SHOWN:
            self.say(f"! {name} {incident.message}")
        if self.incidents == INCIDENTS_SHOWN:
            self.say(
                f"! (further incidents are counted in the summary; tracebacks in {self.log_path})"
            )


def _start_functions(stack: EmbeddedStack, log: TextIO, log_path: Path) -> None:
    """Cold-start every function before traffic flows: a broken init stops the run at once."""
    for logical_id, container in stack.functions.items():
        error = container.load()
        if error is not None:
            raise RunError(
                f"{logical_id} ({container.config.handler}) failed to start: {error}. "
                f"The traceback is in {log_path}. Its environment comes from the deployed "
                "function's configuration in template.yaml; fix the handler or the template "
                "and run again."
            )


def _mapping_of(emulator: EventSourceEmulator, stream_arn: str) -> MappingStats:
    for mapping in emulator.mappings:
        if mapping.event_source_arn == stream_arn:
            return emulator.stats[mapping.uuid]
    raise RunError(f"no event-source mapping reads {stream_arn}: the template must map it")


def run_embedded(options: RunOptions, console_stream: TextIO | None = None) -> dict[str, Any]:
    """The whole local run; its summary (see summary.build_summary)."""
    console_stream = console_stream or sys.stderr
    traffic = make_traffic(options)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    log_path = options.out_dir / "functions.log"
    console = _Console(console_stream, log_path)
    if options.challenger is not None:
        _check_challenger(options.challenger, options.parameters)
    if options.closed_loop:
        options.parameters = loop_parameters(options.parameters)
    with log_path.open("w", encoding="utf-8") as log, FUNCTION_OUTPUT.to(log):
        console.say(f"traffic: {traffic.description}")
        started = time.monotonic()
        with EmbeddedStack(
            options.template_path, options.stack_name, options.parameters, options.port
        ) as stack:
            outputs = stack.deployed.outputs
            console.say(
                f"moto at {stack.server.endpoint}: stack {stack.stack_name} deployed from "
                f"{options.template_path.name} in {time.monotonic() - started:.1f} s; "
                f"function logs go to {log_path}"
            )
            _start_functions(stack, log, log_path)
            emulator = stack.emulator(
                invokers=_outages(stack, options.outages), on_incident=console.incident
            )
            for warning in emulator.warnings:
                console.say(f"note: {warning}")
            sent = ProducerResult()
            sections: dict[str, Any] = {}
            clients = functools.cache(stack.client)  # one client per service from here on
            models = _challenger(options, clients, outputs, stack.model_dir, len(traffic), console)
            loop = _closed_loop(options, stack, clients, traffic, emulator, console)
            emulator.start()
            try:
                window_start, finished = _stream(
                    options, traffic, stack, emulator, sent, console, models, loop
                )
                if console.bar is not None:
                    console.bar.close()
                    console.bar = None
                finished, window_end = _after_streaming(
                    options, traffic, stack, clients, emulator, console, sections, finished
                )
            finally:
                emulator.stop()
                if console.bar is not None:
                    console.bar.close()
                    console.bar = None
            # counts are by the transactions' event hours: the window of the checked traffic's
            # own days, or (traffic without event times) the time this run processed it
            start, end = traffic.checked_window() or (window_start, window_end)
            drift = _check_drift(stack, start, end, options.out_dir, console)
            _deliver_to_functions(stack, clients, sections)
            if "labels" in sections:  # every label has come back: the whole window is mature
                sections["quality_check"] = _check_quality(stack, start, end)
            observed = observe_stack(clients, outputs)
            _feature_log_and_retrain(
                options, traffic, clients, outputs, observed, sections, console
            )
            if models is not None:
                sections["models"] = models.summary(observed.predictions)
            if loop is not None:
                sections["closed_loop"] = _loop_section(loop, observed, options.out_dir)
            extra = _extra(stack, options, emulator, sections, log_path, sent)
            record_ids = sent_record_ids(
                outputs["TransactionsStreamName"], sent.positions, sent.sub_sequence
            )
            return build_summary(
                traffic, record_ids, observed, finished - sent.started_at, drift, extra
            )


def _extra(
    stack: EmbeddedStack,
    options: RunOptions,
    emulator: EventSourceEmulator,
    sections: dict[str, Any],
    log_path: Path,
    sent: ProducerResult,
) -> dict[str, Any]:
    """The summary's sections beyond the counts: the stack, the run's sections, the functions,
    the mappings, the incidents, and the producer's packing when it aggregated."""
    # functions by logical id: CloudFormation generates their deployed names
    logical_ids = {c.config.arn: name for name, c in stack.functions.items()}
    producer = {
        "user_records": sent.sent,
        "kinesis_records": sent.kinesis_records,
        "aggregates": sent.aggregates,
        "most_per_aggregate": options.aggregate,
    }
    return {
        "stack": {
            "name": stack.stack_name,
            "endpoint": stack.server.endpoint,
            "template": str(options.template_path),
            "parameters": options.parameters,
        },
        **sections,
        "functions": functions_summary(stack.functions.items()),
        "event_source_mappings": {
            logical_ids.get(mapping.function_arn, mapping.function_arn): _mapping_summary(
                mapping, emulator.stats[mapping.uuid]
            )
            for mapping in emulator.mappings
        },
        "incidents": [
            {
                "function": logical_ids.get(i.function_arn, i.function_arn),
                "message": i.message,
            }
            for i in emulator.incidents[:100]
        ],
        "log": str(log_path),
    } | ({"producer": producer} if options.aggregate > 1 else {})


def _mapping_summary(mapping: MappingConfig, stats: MappingStats) -> dict[str, Any]:
    """What a mapping did, and the enhanced fan-out consumer it read through (None: polling)."""
    return stats.as_dict() | {"consumer": mapping.consumer_arn}


def _deliver_to_functions(
    stack: EmbeddedStack, clients: Callable[[str], Any], sections: dict[str, Any]
) -> None:
    """The events rules deliver to functions (the drift check's RetrainingRequested to
    RetrainStartFunction), invoked as EventBridge does: asynchronously, after the check."""
    dead_letters = stack.deployed.outputs.get("FailureQueueUrl")
    delivered = deliver_async(clients("sqs"), stack.functions, dead_letters)
    if delivered:
        sections["retraining_runner"] = delivered


def _feature_log_and_retrain(
    options: RunOptions,
    traffic: Traffic,
    clients: Callable[[str], Any],
    outputs: Mapping[str, str],
    observed: Observed,
    sections: dict[str, Any],
    console: _Console,
) -> None:
    sections["feature_log"] = feature_log_section(
        clients("s3"), outputs["ArtifactsBucketName"], set(observed.predictions)
    )
    if options.retrain:
        console.say("retraining on the feature log and the labels (simulated time)")
        sections["retrain"] = retrain_section(
            clients, outputs, traffic, options.parameters, options.out_dir, console.say
        )


def _after_streaming(
    options: RunOptions,
    traffic: Traffic,
    stack: EmbeddedStack,
    clients: Callable[[str], Any],
    emulator: EventSourceEmulator,
    console: _Console,
    sections: dict[str, Any],
    finished: float,
) -> tuple[float, datetime]:
    """The re-drive, the labels and the replay, each when asked for; (end of scoring, window end)."""
    outputs = stack.deployed.outputs
    if options.redrive:
        sections["redrive"] = _redrive(stack, clients, emulator, options, console)
        finished = time.time()  # the re-driven records' predictions are the last
    window_end = datetime.now(UTC) + timedelta(milliseconds=1)
    if traffic.labels and not options.closed_loop:  # the closed loop sent them day by day
        console.say("labels production would see: chargebacks and review outcomes")
        sections["labels"] = feed_labels(
            clients, outputs, traffic, lambda: _drain(emulator, options, console, "the labels")
        )
        labels = sections["labels"]
        quality = labels.get("quality") or {}
        if quality:
            picture = options.out_dir / "quality.png"
            picture.write_bytes(
                draw_quality(
                    quality["model_version"],
                    quality,
                    quality.get("challengers"),
                    by_decision=labels["by_decision"],
                )
            )
            labels["picture"] = str(picture)
    if options.replay:
        console.say("replaying both streams from TRIM_HORIZON")
        sections["replay"] = replay(
            clients,
            outputs,
            emulator,
            lambda: _drain(emulator, options, console, "the replay"),
            options.replay_batch_size,
        )
    return finished, window_end


class _Outage:
    """A function that reports every record failed for `seconds` from its first invocation.

    As the handlers do while a dependency is down past their retries: batchItemFailures
    naming every record, nothing written. Afterwards the real handler runs again.
    """

    def __init__(self, invoke: Invoker, seconds: float):
        self.invoke = invoke
        self.seconds = seconds
        self.began: float | None = None

    def __call__(self, event: dict[str, Any]) -> Invocation:
        now = time.monotonic()
        if self.began is None:
            self.began = now
        if now - self.began >= self.seconds:
            return self.invoke(event)
        failures = [{"itemIdentifier": r["kinesis"]["sequenceNumber"]} for r in event["Records"]]
        return Invocation(response={"batchItemFailures": failures})


def _outages(stack: EmbeddedStack, outages: Mapping[str, float]) -> dict[str, Invoker]:
    invokers: dict[str, Invoker] = {}
    for name, seconds in outages.items():
        try:
            container = stack.function(name)
        except KeyError as error:
            raise RunError(f"--outage: {error.args[0]}") from None
        invokers[container.config.arn] = _Outage(container.invoke, seconds)
    return invokers


def _drain(
    emulator: EventSourceEmulator, options: RunOptions, console: _Console, after: str
) -> None:
    if not emulator.wait_until_drained(options.timeout_s):
        crashed = emulator.crashed()
        reason = (
            f"the emulator stopped: {crashed[0]!r}"
            if crashed
            else f"not drained within --timeout {options.timeout_s:.0f} s"
        )
        raise RunError(
            f"the pipeline did not finish after {after}: {reason}. "
            f"Function logs: {console.log_path}"
        )


def _redrive(
    stack: EmbeddedStack,
    clients: Callable[[str], Any],
    emulator: EventSourceEmulator,
    options: RunOptions,
    console: _Console,
) -> dict[str, Any]:
    """Re-drive FailureQueue with the stack's functions in-process, then drain what it forwarded."""
    report = redrive(
        stack.deployed.output("FailureQueueUrl"),
        clients,
        in_process(emulator.invokers),
        attempts=REDRIVE_ATTEMPTS,
        backoff_s=REDRIVE_BACKOFF_SECONDS,
    )
    _drain(emulator, options, console, "the re-drive")
    console.say(
        f"re-drive: {report.messages} FailureQueue messages, {report.records_redriven:,} records "
        f"re-driven, {report.records_kept:,} kept, {report.records_lost:,} lost"
    )
    return report.as_dict()


def _challenger(
    options: RunOptions,
    clients: Any,
    outputs: Mapping[str, str],
    model_dir: Path,
    records: int,
    console: _Console,
) -> ModelLifecycle | None:
    """The challenger published in the stack's registry (None: no --challenger)."""
    if options.challenger is None:
        return None
    shipped = _shipped_version(model_dir)
    try:
        models = ModelLifecycle.start(
            clients,
            outputs,
            options.challenger,
            shipped,
            promote_after(options.promote_at, records),
        )
    except LifecycleError as error:
        raise RunError(f"--challenger: {error}") from None
    when = (
        f"; promoted after {models.promote_after:,} records"
        if models.promote_after is not None
        else ""
    )
    console.say(f"challenger {models.challenger} scored in shadow beside {shipped}{when}")
    return models


def _check_challenger(directory: Path, parameters: dict[str, str]) -> None:
    """Before the stack starts, so that a wrong directory fails at once; the pointer read every
    few seconds, so that a promotion shows within a short run (unless ModelRefreshSeconds is
    given)."""
    try:
        challenger_version(directory, _shipped_version(MODEL_DIR))
    except LifecycleError as error:
        raise RunError(f"--challenger: {error}") from None
    parameters.setdefault("ModelRefreshSeconds", str(CHALLENGER_REFRESH_SECONDS))


def _shipped_version(model_dir: Path) -> str:
    return str(json.loads((model_dir / CARD_FILE).read_text())["model_version"])


def _closed_loop(
    options: RunOptions,
    stack: EmbeddedStack,
    clients: Callable[[str], Any],
    traffic: Traffic,
    emulator: EventSourceEmulator,
    console: _Console,
) -> ClosedLoop | None:
    if not options.closed_loop:
        return None
    if traffic.event_end is None:
        raise RunError("--closed-loop needs simulated traffic (its event times), not --input")
    try:
        return ClosedLoop(
            stack,
            clients,
            traffic,
            lambda: _drain(emulator, options, console, "the labels"),
            console.say,
            options.out_dir,
        )
    except LoopError as error:
        raise RunError(f"--closed-loop: {error}") from None


def _loop_section(loop: ClosedLoop, observed: Observed, out_dir: Path) -> dict[str, Any]:
    section = loop.summary(observed.predictions)
    picture = out_dir / "closed-loop.png"
    picture.write_bytes(draw_closed_loop(section))
    return section | {"picture": str(picture)}


def _stream(
    options: RunOptions,
    traffic: Traffic,
    stack: EmbeddedStack,
    emulator: EventSourceEmulator,
    sent: ProducerResult,
    console: _Console,
    models: ModelLifecycle | None = None,
    loop: ClosedLoop | None = None,
) -> tuple[datetime, float]:
    """Produce the baseline days, drain, produce the checked part, drain; (drift window start, end
    time). With a closed loop, each simulated day is drained and the loop run at its midnight."""
    outputs = stack.deployed.outputs
    first = _mapping_of(emulator, outputs["TransactionsStreamArn"])
    second = _mapping_of(emulator, outputs["FeaturesStreamArn"])
    batch = max(
        m.batch_size
        for m in emulator.mappings
        if m.event_source_arn == outputs["TransactionsStreamArn"]
    )
    limit = IN_FLIGHT_BATCHES * batch
    producer = Producer(
        stack.client("kinesis"),
        outputs["TransactionsStreamName"],
        rate_per_s=options.rate,
        aggregate=options.aggregate,
    )
    bar = console.bar = ProgressBar(len(traffic), "records")
    deadline = time.monotonic() + options.timeout_s

    def done() -> int:
        """Kinesis records through preprocess (an aggregate counts once)."""
        return first.records_succeeded + first.records_discarded

    def users_done() -> int:
        """User records through preprocess: exact without aggregates, else at the mean packing."""
        if sent.kinesis_records in (0, sent.sent):
            return done()
        return min(sent.sent, done() * sent.sent // sent.kinesis_records)

    def show() -> None:
        bar.update(users_done(), f"sent {sent.sent:,} | at score {second.records_succeeded:,}")

    def backlog(count: int) -> int:
        """Kinesis records waiting: not yet through preprocess, plus features not yet scored."""
        at_score = second.records_read - second.records_succeeded - second.records_discarded
        return count - done() + at_score

    def wait_for_room(count: int) -> None:
        while backlog(count) > limit and time.monotonic() < deadline:
            if emulator.crashed():
                raise RunError(f"the event-source emulator stopped: {emulator.crashed()[0]!r}")
            show()
            time.sleep(0.02)

    def drain() -> None:
        if not emulator.wait_until_drained(max(0.0, deadline - time.monotonic()), progress=show):
            crashed = emulator.crashed()
            reason = (
                f"the emulator stopped: {crashed[0]!r}"
                if crashed
                else (f"not drained within --timeout {options.timeout_s:.0f} s")
            )
            raise RunError(
                f"the pipeline did not finish: {reason}; {done():,} of "
                f"{sent.kinesis_records:,} Kinesis records passed preprocess. Function logs: "
                f"{console.log_path}"
            )
        show()

    def progress(count: int) -> None:
        show()
        happened = models.on_sent(count) if models is not None else None
        if happened:
            console.say(happened)

    window_start = datetime.now(UTC)
    midnights = loop.schedule if loop is not None else {}
    bounds = sorted({0, traffic.monitored_from, *midnights, len(traffic)})
    for start, stop in itertools.pairwise(bounds):
        if start > 0:
            drain()  # the baseline days are scored before the checked window opens
        if start == traffic.monitored_from:
            window_start = datetime.now(UTC)
        if loop is not None:
            loop.at_index(start)
        producer.send(traffic, start, stop, sent, progress=progress, backlog=wait_for_room)
    drain()
    if loop is not None:
        loop.end(len(traffic))
    _say_sent(sent, console)
    return window_start, time.time()


def _say_sent(sent: ProducerResult, console: _Console) -> None:
    if sent.refused:
        console.say(f"! {sent.refused:,} records were refused by PutRecords after every resend")
    if sent.aggregates:
        console.say(
            f"sent {sent.sent:,} records in {sent.kinesis_records:,} Kinesis records, "
            f"{sent.aggregates:,} of them KPL aggregates"
        )


def _check_drift(
    stack: EmbeddedStack,
    start: datetime,
    end: datetime,
    out_dir: Path,
    console: _Console,
) -> dict[str, Any]:
    """Invoke the drift check over [start, end); its report and picture."""
    event = {"window": {"start": _iso(start), "end": _iso(end)}}
    invocation = stack.function(DRIFT_FUNCTION).invoke(event)
    if invocation.error is not None:
        return {"error": str(invocation.error), "window": event["window"]}
    response = invocation.response or {}
    s3 = stack.client("s3")
    report = read_json(s3, response.get("report_uri"))
    picture = None
    if response.get("plot_uri"):
        picture_path = out_dir / f"drift-{response.get('report_id', 'report')}.png"
        bucket, key = split_s3(response["plot_uri"])
        picture_path.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        picture = str(picture_path)
    return drift_summary(response, report, picture)


def _check_quality(stack: EmbeddedStack, start: datetime, end: datetime) -> dict[str, Any]:
    """Invoke the quality check over [start, end); its verdict and report location."""
    event = {"check": "quality", "window": {"start": _iso(start), "end": _iso(end)}}
    invocation = stack.function(DRIFT_FUNCTION).invoke(event)
    if invocation.error is not None:
        return {"error": str(invocation.error), "window": event["window"]}
    return dict(invocation.response or {})


# ---------------------------------------------------------------- invoke


def invoke_function(
    function: str,
    event: Mapping[str, Any],
    parameters: Mapping[str, str] | None = None,
    port: int = 0,
    template_path: Path = TEMPLATE_PATH,
    log_stream: TextIO | None = None,
    prepare: Callable[[EmbeddedStack], None] | None = None,
) -> tuple[FunctionContainer, Invocation]:
    """Invoke one function of a fresh embedded stack with `event`, logs to `log_stream`."""
    with (
        FUNCTION_OUTPUT.to(log_stream or sys.stderr),
        EmbeddedStack(template_path, STACK_NAME, parameters, port) as stack,
    ):
        container = stack.function(function)
        if prepare is not None:
            prepare(stack)
        return container, container.invoke(dict(event))
