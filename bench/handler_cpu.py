"""Part 1: handler CPU per record, side by side with the floor and record-at-a-time versions.

Every variant runs on the same batch one after the other, the order rotating batch by batch
(`common.interleaved`), so ratios are taken between measurements made moments apart. CPU is
process CPU time (all threads: the handlers serialise on their I/O pools) with the CPU the fake
AWS spent answering taken out. Each variant has its own fake AWS, seeded with the cards' states,
so every variant sees each batch exactly once, in shard order.

The I/O path: afterwards the handlers run a few more batches with the stated p50 service
latencies injected (sleeps), to find the time per batch with at least one AWS call in flight;
the capacity model adds it to the CPU time scaled to Lambda's CPU share.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
from botocore.config import Config

from bench.common import (
    NAMES,
    SINK,
    AWS_ENV,
    LambdaContext,
    environment,
    interleaved,
    into_sink,
    load_app,
    paired_ratio,
    progress,
    summary,
)
from bench.fake_aws import FakeAWS
from bench.per_record import preprocess_per_record, score_floor, score_per_record
from bench.traffic import distinct_cards, feature_events, state_items, transaction_events, window
from streamscore.features import CardState
from streamscore.monitoring import window_key
from streamscore.preprocess import PreprocessPorts, preprocess_batch
from streamscore.records import parse_kinesis_event

SIZES = (100, 500, 1000)
RECORDS_PER_SIZE = 6000  # 60 batches of 100, 12 of 500, 6 of 1000 (+ one warm-up batch each)
IO_BATCHES = 3  # batches per size with latencies injected (+ one warm-up)
DRIFT_WINDOW_ITEMS = (1000, 4000)
DRIFT_RUNS = 3


def _us_per_record(seconds: float, records: int) -> float:
    return seconds / records * 1e6


def _timed(work: Callable[[], Any], fake: FakeAWS | None = None) -> float:
    """Process CPU seconds of `work`, less what `fake` spent answering it."""
    answered = fake.answer_cpu_s if fake else 0.0
    started = time.process_time()
    work()
    spent = time.process_time() - started
    return spent - ((fake.answer_cpu_s - answered) if fake else 0.0)


def _check(result: dict[str, Any]) -> dict[str, Any]:
    if result.get("batchItemFailures"):
        raise SystemExit(f"a benchmark batch failed records: {result['batchItemFailures'][:3]}")
    return result


def _clients(config: Config, *services: str) -> list[Any]:
    with environment(AWS_ENV):
        return [boto3.client(s, config=config) for s in services]  # type: ignore[call-overload]


def _table_keys(template: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    from embedded.template import table_definitions  # noqa: PLC0415

    return {
        NAMES[logical]: tuple(k["AttributeName"] for k in spec["KeySchema"])
        for logical, spec in table_definitions(dict(template)).items()
        if logical in NAMES
    }


# ----------------------------------------------------------------------------- preprocess


class _MemoryPorts:
    """The preprocess domain's ports as dicts: nothing but the domain runs."""

    def __init__(self, states: dict[str, CardState]) -> None:
        self.states = dict(states)
        self.features: dict[str, dict[str, Any]] = {}

    def ports(self) -> PreprocessPorts:
        outer = self

        class States:
            def load(self, ids: Sequence[str]) -> tuple[dict[str, CardState], set[str]]:
                return {c: outer.states[c] for c in ids if c in outer.states}, set()

            def save(self, states: Sequence[CardState], now: datetime) -> set[str]:
                outer.states.update((s.card_id, s) for s in states)
                return set()

        class Features:
            def load(self, ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
                found = {t: copy.deepcopy(outer.features[t]) for t in ids if t in outer.features}
                return found, set()

            def save(self, records: Sequence[dict[str, Any]], now: datetime) -> set[str]:
                outer.features.update((r["transaction_id"], r) for r in records)
                return set()

        class Sink:
            def forward(self, records: Sequence[dict[str, Any]]) -> set[str]:
                return set()

            def save(self, items: Sequence[dict[str, Any]]) -> set[str]:
                return set()

            def put(self, item: dict[str, Any]) -> None:
                return None

        return PreprocessPorts(States(), Features(), Sink(), Sink(), Sink())


def _use_preprocess_clients(app: ModuleType, dynamodb: Any, kinesis: Any) -> None:
    """Point the handler's module-scope ports at other clients (reaches into the stores)."""
    for store in (app.ports.states, app.ports.features, app.ports.quarantine):
        store.table.client = dynamodb
    app.ports.monitoring.client = dynamodb
    app.ports.forwarder.writer.client = kinesis


def preprocess_cpu(
    template: Mapping[str, Any], latency_s: Mapping[str, float], records_per_size: int
) -> dict[str, Any]:
    keys = _table_keys(template)
    app = load_app("preprocess")
    config = app.client_config()
    handler_fake = FakeAWS(keys).attach(app.dynamodb, app.kinesis)
    unvalidated = _clients(config.merge(Config(parameter_validation=False)), "dynamodb", "kinesis")
    unvalidated_fake = FakeAWS(keys).attach(*unvalidated)
    per_record = _clients(config, "dynamodb", "kinesis")
    per_record_fake = FakeAWS(keys).attach(*per_record)
    tables = {
        "state": NAMES["EntityStateTable"],
        "features": NAMES["FeaturesTable"],
        "quarantine": NAMES["QuarantineTable"],
    }
    now = datetime.now(UTC)
    seed = {NAMES["EntityStateTable"]: state_items(window().states, now)}
    context = LambdaContext("preprocess", 1024)
    results: dict[str, Any] = {}
    monitoring_items: list[dict[str, Any]] = []
    for size in SIZES:
        progress(f"preprocess CPU, batch {size}")
        batches = max(2, records_per_size // size)
        events = transaction_events(size, batches + 1)
        for fake in (handler_fake, unvalidated_fake, per_record_fake):
            fake.reset(seed)
        memory = _MemoryPorts(window().states)
        log_bytes: list[int] = []
        calls_before = handler_fake.calls.copy()
        per_record_before = per_record_fake.calls.total()

        def handler(event: dict[str, Any]) -> float:
            _use_preprocess_clients(app, app.dynamodb, app.kinesis)
            written = SINK.bytes
            with into_sink():
                seconds = _timed(lambda: _check(app.lambda_handler(event, context)), handler_fake)
            log_bytes.append(SINK.bytes - written)
            return _us_per_record(seconds, size)

        def handler_unvalidated(event: dict[str, Any]) -> float:
            _use_preprocess_clients(app, *unvalidated)
            with into_sink():
                seconds = _timed(lambda: _check(app.lambda_handler(event, context)), unvalidated_fake)
            return _us_per_record(seconds, size)

        def domain(event: dict[str, Any]) -> float:
            records = parse_kinesis_event(event)
            ports = memory.ports()
            seconds = _timed(
                lambda: preprocess_batch(
                    records, ports, now=now, quarantine_ttl_days=30, monitoring_ttl_days=90
                )
            )
            return _us_per_record(seconds, size)

        def record_at_a_time(event: dict[str, Any]) -> float:
            seconds = _timed(
                lambda: preprocess_per_record(
                    event, *per_record, tables, NAMES["FeaturesStream"], now
                ),
                per_record_fake,
            )
            return _us_per_record(seconds, size)

        samples = interleaved(
            {
                "handler": handler,
                "handler_no_param_validation": handler_unvalidated,
                "domain_only": domain,
                "per_record": record_at_a_time,
            },
            events,
        )
        _use_preprocess_clients(app, app.dynamodb, app.kinesis)
        calls = handler_fake.calls - calls_before
        results[str(size)] = {
            "batches": batches,
            "distinct_cards_per_batch": round(
                sum(distinct_cards(e) for e in events) / len(events), 1
            ),
            "cpu_us_per_record": {name: summary(values) for name, values in samples.items()},
            "per_record_over_handler": paired_ratio(samples["per_record"], samples["handler"]),
            "handler_over_domain": paired_ratio(samples["handler"], samples["domain_only"]),
            "handler_over_no_param_validation": paired_ratio(
                samples["handler"], samples["handler_no_param_validation"]
            ),
            "handler_calls_per_batch": {
                k: round(v / len(events), 2) for k, v in sorted(calls.items())
            },
            "per_record_calls_per_batch": round(
                (per_record_fake.calls.total() - per_record_before) / len(events), 1
            ),
            "log_bytes_per_batch": summary(log_bytes[1:], 0),
        }
        monitoring_items = list(handler_fake.items[NAMES["MonitoringTable"]].values())
    results["io_path"] = _io_path(
        "preprocess", app, handler_fake, seed, latency_s, transaction_events, context
    )
    results["_monitoring_items"] = monitoring_items
    return results


# ----------------------------------------------------------------------------- score


def score_cpu(
    template: Mapping[str, Any], latency_s: Mapping[str, float], records_per_size: int
) -> dict[str, Any]:
    keys = _table_keys(template)
    app = load_app("score")
    handler_fake = FakeAWS(keys).attach(app.dynamodb, app.events)
    per_record = _clients(app.config, "dynamodb", "events")
    per_record_fake = FakeAWS(keys).attach(*per_record)
    now = datetime.now(UTC)
    context = LambdaContext("score", 2048)
    results: dict[str, Any] = {"model_version": app.model.model_version}
    monitoring_items: list[dict[str, Any]] = []
    for size in SIZES:
        progress(f"score CPU, batch {size}")
        batches = max(2, records_per_size // size)
        events = feature_events(size, batches + 1)
        for fake in (handler_fake, per_record_fake):
            fake.reset({})
        log_bytes: list[int] = []
        calls_before = handler_fake.calls.copy()
        per_record_before = per_record_fake.calls.total()

        def handler(event: dict[str, Any]) -> float:
            written = SINK.bytes
            with into_sink():
                seconds = _timed(lambda: _check(app.lambda_handler(event, context)), handler_fake)
            log_bytes.append(SINK.bytes - written)
            return _us_per_record(seconds, size)

        def floor(event: dict[str, Any]) -> float:
            return _us_per_record(_timed(lambda: score_floor(app.model, event)), size)

        def record_at_a_time(event: dict[str, Any]) -> float:
            seconds = _timed(
                lambda: score_per_record(
                    app.model,
                    app.thresholds,
                    event,
                    *per_record,
                    NAMES["PredictionsTable"],
                    NAMES["EventBus"],
                    now,
                ),
                per_record_fake,
            )
            return _us_per_record(seconds, size)

        samples = interleaved(
            {"handler": handler, "floor": floor, "per_record": record_at_a_time}, events
        )
        calls = handler_fake.calls - calls_before
        results[str(size)] = {
            "batches": batches,
            "cpu_us_per_record": {name: summary(values) for name, values in samples.items()},
            "handler_over_floor": paired_ratio(samples["handler"], samples["floor"]),
            "per_record_over_handler": paired_ratio(samples["per_record"], samples["handler"]),
            "handler_calls_per_batch": {
                k: round(v / len(events), 2) for k, v in sorted(calls.items())
            },
            "per_record_calls_per_batch": round(
                (per_record_fake.calls.total() - per_record_before) / len(events), 1
            ),
            "log_bytes_per_batch": summary(log_bytes[1:], 0),
        }
        monitoring_items = list(handler_fake.items[NAMES["MonitoringTable"]].values())
    results["io_path"] = _io_path("score", app, handler_fake, {}, latency_s, feature_events, context)
    results["_monitoring_items"] = monitoring_items
    return results


# ----------------------------------------------------------------------------- I/O path


def _io_path(
    name: str,
    app: ModuleType,
    fake: FakeAWS,
    seed: Mapping[str, list[dict[str, Any]]],
    latency_s: Mapping[str, float],
    make_events: Callable[[int, int], list[dict[str, Any]]],
    context: LambdaContext,
) -> dict[str, Any]:
    """Per batch size: time with an AWS call in flight, and CPU, with the p50 latencies injected."""
    progress(f"{name} I/O path with stated latencies")
    results: dict[str, Any] = {}
    fake.latency_s = dict(latency_s)
    try:
        for size in SIZES:
            fake.reset(seed)
            io_ms, wall_ms = [], []
            for index, event in enumerate(make_events(size, IO_BATCHES + 1)):
                fake.reset_timing()
                started = time.perf_counter()
                with into_sink():
                    _check(app.lambda_handler(event, context))
                if index:
                    wall_ms.append((time.perf_counter() - started) * 1e3)
                    io_ms.append(fake.io_seconds() * 1e3)
            results[str(size)] = {
                "io_ms_per_batch": summary(io_ms, 1),
                "wall_ms_per_batch_here": summary(wall_ms, 1),
            }
    finally:
        fake.latency_s = {}
    return results


# ----------------------------------------------------------------------------- drift check


def _window_items(
    captured: Sequence[dict[str, Any]], count: int, end: datetime
) -> list[dict[str, Any]]:
    """`count` MonitoringTable items spread evenly over the day before `end`, cycling through
    the STATS and HIST items the handlers wrote (keys made unique, times and hours reassigned)."""
    items = []
    for index in range(count):
        template = captured[index % len(captured)]
        moment = end - timedelta(seconds=(index + 0.5) * 86_000 / count)
        kind = template["sk"]["S"]
        item = dict(template)
        item["pk"] = {"S": f"{template['pk']['S']}#{index}"}
        item["window_key"] = {"S": window_key(kind, moment)}
        item["recorded_at"] = {"S": moment.isoformat(timespec="milliseconds")}
        items.append(item)
    return items


def drift_cpu(
    template: Mapping[str, Any],
    latency_s: Mapping[str, float],
    captured: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """The drift check's CPU per window item read, and its I/O path, at two window sizes."""
    from embedded.lambda_events import scheduled_event  # noqa: PLC0415

    keys = _table_keys(template)
    app = load_app("drift_check")
    fake = FakeAWS(keys).attach(app.dynamodb, app.s3, app.events)
    context = LambdaContext("drift_check", 1024)
    end = datetime.now(UTC).replace(microsecond=0)
    event = scheduled_event(end.isoformat().replace("+00:00", "Z"))
    monitoring = NAMES["MonitoringTable"]
    results: dict[str, Any] = {}
    for count in DRIFT_WINDOW_ITEMS:
        progress(f"drift check CPU, {count} window items")
        items = _window_items(captured, count, end)
        cpu_ms, io_ms = [], []
        last = DRIFT_RUNS + 1  # run 0 warms up, the last one has the latencies injected
        for run in range(last + 1):
            fake.reset({monitoring: items})
            fake.latency_s = dict(latency_s) if run == last else {}
            fake.reset_timing()
            with into_sink():
                seconds = _timed(lambda: app.lambda_handler(event, context), fake)
            if 0 < run < last:
                cpu_ms.append(seconds * 1e3)
            elif run == last:
                io_ms.append(fake.io_seconds() * 1e3)
        fake.latency_s = {}
        results[str(count)] = {
            "cpu_ms_per_check": summary(cpu_ms, 1),
            "cpu_us_per_item": summary([ms * 1e3 / count for ms in cpu_ms], 1),
            "io_ms_per_check": summary(io_ms, 1),
        }
    return results
