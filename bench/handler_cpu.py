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
import gc
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

import boto3
from botocore.config import Config

from bench.common import (
    AWS_ENV,
    NAMES,
    SINK,
    Function,
    LambdaContext,
    calibration_us,
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
from bench.traffic import (
    distinct_cards,
    feature_events,
    last_records,
    ledger_items,
    state_items,
    transaction_events,
    window,
)
from streamscore.aws.clients import ClientOptions
from streamscore.aws.retry import client_config
from streamscore.core.feature_record import FeatureRecord
from streamscore.core.ids import CardId, RecordId, TransactionId
from streamscore.core.monitoring import Fact, summed
from streamscore.core.records import parse_kinesis_event
from streamscore.preprocess.batch import preprocess_batch
from streamscore.preprocess.ports import CardRecord, PreprocessPorts
from streamscore.scoring.batch import score_batch
from streamscore.scoring.ports import ScorePorts

SIZES = (10, 100, 500, 1000)  # 10: what a quiet shard's one-second window gathers
RECORDS_PER_SIZE = 6000  # 60 batches of 100, 12 of 500, 6 of 1000 (+ one warm-up batch each)
MAX_BATCHES = 200  # of 10 records
IO_BATCHES = 3  # batches per size with latencies injected (+ one warm-up)
LATENCY_SCALE = 10.0  # latencies slept 10x longer, in-flight time divided by 10 (fake_aws)
DRIFT_WINDOW_ITEMS = (1000, 4000)
DRIFT_RUNS = 3


def _us_per_record(seconds: float, records: int) -> float:
    return seconds / records * 1e6


def _timed(work: Callable[[], Any], fake: FakeAWS | None = None, freeze: bool = True) -> float:
    """Process CPU seconds of `work`, less what `fake` spent answering it.

    Every object that exists before the call is frozen for it (gc.freeze, then gc.unfreeze,
    both outside the timed region), as the functions run in Lambda, where a handler module
    freezes what init built (streamscore.core.lambda_init): full collections during the call
    walk only what it makes. `freeze=False` measures without (bench/hot_path.py).
    """
    answered = fake.answer_cpu_s if fake else 0.0
    if freeze:
        gc.freeze()
    try:
        started = time.process_time()
        work()
        spent = time.process_time() - started
    finally:
        if freeze:
            gc.unfreeze()
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

    def __init__(
        self,
        cards: dict[CardId, CardRecord],
        ledger: dict[TransactionId, FeatureRecord] | None = None,
    ) -> None:
        self.cards = dict(cards)
        self.features: dict[TransactionId, FeatureRecord] = dict(ledger or {})

    def ports(self) -> PreprocessPorts:
        outer = self

        class States:
            def load(self, ids: Sequence[CardId]) -> tuple[dict[CardId, CardRecord], set[CardId]]:
                return {c: outer.cards[c] for c in ids if c in outer.cards}, set()

            def save(self, cards: Sequence[CardRecord], now: datetime) -> set[CardId]:
                outer.cards.update((CardId(c.state.card_id), c) for c in cards)
                return set()

        class Features:
            def load(
                self, ids: Sequence[TransactionId]
            ) -> tuple[dict[TransactionId, FeatureRecord], set[TransactionId]]:
                found = {t: copy.deepcopy(outer.features[t]) for t in ids if t in outer.features}
                return found, set()

            def save(self, records: Sequence[FeatureRecord], now: datetime) -> set[TransactionId]:
                outer.features.update((r["transaction_id"], r) for r in records)
                return set()

        class Forwarder:
            def forward(self, records: Sequence[FeatureRecord]) -> set[TransactionId]:
                return set()

        class Quarantine:
            def save(self, items: Sequence[dict[str, Any]]) -> set[RecordId]:
                return set()

        return PreprocessPorts(States(), Features(), Forwarder(), Quarantine())


def _score_memory_ports() -> ScorePorts:
    """The scoring domain's ports in memory: no prediction stored yet, every write accepted.
    Creating predictions sums their counts per count item (core.monitoring.summed), as the
    fact writer does before it builds its Updates: the histograms are part of the domain."""

    class Predictions:
        def load(
            self, ids: Sequence[TransactionId]
        ) -> tuple[dict[TransactionId, dict[str, Any]], set[TransactionId]]:
            return {}, set()

        def create(
            self, facts: Sequence[Fact], now: datetime
        ) -> tuple[set[TransactionId], set[TransactionId]]:
            summed(facts)
            return {TransactionId(f.key) for f in facts}, set()

        def save(self, predictions: Sequence[dict[str, Any]], now: datetime) -> set[TransactionId]:
            return set()

    class Alerts:
        def publish(self, alerts: Sequence[dict[str, Any]]) -> set[TransactionId]:
            return set()

    class Quarantine:
        def save(self, items: Sequence[dict[str, Any]]) -> set[RecordId]:
            return set()

    return ScorePorts(Predictions(), Alerts(), Quarantine())


class _Variants(ABC):
    """One function's variants on one batch size at a time; each returns µs of CPU per record."""

    name = ""
    freeze = True  # the handler's call with what exists before it frozen, as in Lambda
    handler_fake: FakeAWS
    app: Function
    context: LambdaContext

    def __init__(self) -> None:
        self.size = 0
        self.log_bytes: list[int] = []

    def start(self, size: int) -> None:
        self.size = size
        self.log_bytes = []

    @abstractmethod
    def variants(self) -> dict[str, Callable[[dict[str, Any]], float]]:
        """Implemented by each function's variants."""

    @abstractmethod
    def fakes(self) -> tuple[FakeAWS, ...]:
        """Implemented by each function's variants."""

    def seed(self) -> dict[str, list[dict[str, Any]]]:
        return {}

    @abstractmethod
    def events(self, size: int, batches: int) -> list[dict[str, Any]]:
        """Implemented by each function's variants."""

    @abstractmethod
    def per_record_fake(self) -> FakeAWS:
        """Implemented by each function's variants."""

    def _handler(self, event: dict[str, Any], fake: FakeAWS) -> float:
        written = SINK.bytes
        with into_sink():
            seconds = _timed(
                lambda: _check(self.app.lambda_handler(event, self.context)), fake, self.freeze
            )
        self.log_bytes.append(SINK.bytes - written)
        return _us_per_record(seconds, self.size)


class _Preprocess(_Variants):
    name = "preprocess"

    def __init__(
        self, template: Mapping[str, Any], **client_options: Unpack[ClientOptions]
    ) -> None:
        super().__init__()
        keys = _table_keys(template)
        self.app = load_app("preprocess", **client_options)
        config = client_config()
        self.handler_fake = FakeAWS(keys).attach(self.app.dynamodb, self.app.kinesis)
        self.per_record_dynamodb, self.per_record_kinesis = _clients(config, "dynamodb", "kinesis")
        self._per_record_fake = FakeAWS(keys).attach(
            self.per_record_dynamodb, self.per_record_kinesis
        )
        self.tables = {
            "state": NAMES["EntityStateTable"],
            "features": NAMES["FeaturesTable"],
            "quarantine": NAMES["QuarantineTable"],
        }
        self.now = datetime.now(UTC)
        # the cards as preprocess leaves them: each with its last feature record pending, stored
        self.states = {
            NAMES["EntityStateTable"]: state_items(window().states, self.now),
            NAMES["FeaturesTable"]: ledger_items(window().states, self.now),
        }
        self.pending = last_records(window().states, self.now)
        self.context = LambdaContext("preprocess", 1024)
        self.memory = _MemoryPorts({})

    def seed(self) -> dict[str, list[dict[str, Any]]]:
        return self.states

    def fakes(self) -> tuple[FakeAWS, ...]:
        return (self.handler_fake, self._per_record_fake)

    def per_record_fake(self) -> FakeAWS:
        return self._per_record_fake

    def events(self, size: int, batches: int) -> list[dict[str, Any]]:
        return transaction_events(size, batches)

    def start(self, size: int) -> None:
        super().start(size)
        states = window().states
        self.memory = _MemoryPorts(
            {
                CardId(c): CardRecord(s, {self.pending[c]["transaction_id"]: self.pending[c]})
                for c, s in states.items()
            },
            {r["transaction_id"]: r for r in self.pending.values()},
        )

    def variants(self) -> dict[str, Callable[[dict[str, Any]], float]]:
        return {
            "handler": self.handler,
            "domain_only": self.domain,
            "per_record": self.record_at_a_time,
        }

    def handler(self, event: dict[str, Any]) -> float:
        return self._handler(event, self.handler_fake)

    def domain(self, event: dict[str, Any]) -> float:
        records = parse_kinesis_event(event)
        ports = self.memory.ports()
        seconds = _timed(lambda: preprocess_batch(records, ports, now=self.now))
        return _us_per_record(seconds, self.size)

    def record_at_a_time(self, event: dict[str, Any]) -> float:
        seconds = _timed(
            lambda: preprocess_per_record(
                event,
                self.per_record_dynamodb,
                self.per_record_kinesis,
                self.tables,
                NAMES["FeaturesStream"],
                self.now,
            ),
            self._per_record_fake,
        )
        return _us_per_record(seconds, self.size)


class _Score(_Variants):
    name = "score"

    def __init__(
        self, template: Mapping[str, Any], **client_options: Unpack[ClientOptions]
    ) -> None:
        super().__init__()
        keys = _table_keys(template)
        self.app = load_app("score", **client_options)
        self.handler_fake = FakeAWS(keys).attach(self.app.dynamodb, self.app.events)
        self.per_record_dynamodb, self.per_record_events = _clients(
            client_config(), "dynamodb", "events"
        )
        self._per_record_fake = FakeAWS(keys).attach(
            self.per_record_dynamodb, self.per_record_events
        )
        self.now = datetime.now(UTC)
        self.context = LambdaContext("score", 2048)

    def fakes(self) -> tuple[FakeAWS, ...]:
        return (self.handler_fake, self._per_record_fake)

    def per_record_fake(self) -> FakeAWS:
        return self._per_record_fake

    def events(self, size: int, batches: int) -> list[dict[str, Any]]:
        return feature_events(size, batches)

    def variants(self) -> dict[str, Callable[[dict[str, Any]], float]]:
        return {
            "handler": self.handler,
            "domain_only": self.domain,
            "floor": self.floor,
            "per_record": self.record_at_a_time,
        }

    def handler(self, event: dict[str, Any]) -> float:
        return self._handler(event, self.handler_fake)

    def floor(self, event: dict[str, Any]) -> float:
        return _us_per_record(_timed(lambda: score_floor(self.app.stage.model, event)), self.size)

    def domain(self, event: dict[str, Any]) -> float:
        """The floor's work and what scoring must do beyond it (validation, decisions,
        predictions, alerts, count histograms), on in-memory ports: the handler's CPU above
        this row is the AWS path's."""
        records = parse_kinesis_event(event)
        stage = self.app.stage
        ports = _score_memory_ports()
        seconds = _timed(
            lambda: score_batch(records, stage.model, ports, stage.policy, lambda: self.now)
        )
        return _us_per_record(seconds, self.size)

    def record_at_a_time(self, event: dict[str, Any]) -> float:
        seconds = _timed(
            lambda: score_per_record(
                self.app.stage.model,
                self.app.stage.policy.thresholds,
                event,
                self.per_record_dynamodb,
                self.per_record_events,
                NAMES["PredictionsTable"],
                NAMES["EventBus"],
                self.now,
            ),
            self._per_record_fake,
        )
        return _us_per_record(seconds, self.size)


RATIOS = {
    "preprocess": {
        "per_record_over_handler": ("per_record", "handler"),
        "handler_over_domain": ("handler", "domain_only"),
    },
    "score": {
        "handler_over_floor": ("handler", "floor"),
        "domain_over_floor": ("domain_only", "floor"),
        "handler_over_domain": ("handler", "domain_only"),
        "per_record_over_handler": ("per_record", "handler"),
    },
}


def _measure(
    bench: _Variants, records_per_size: int, latency_s: Mapping[str, float]
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    monitoring: list[dict[str, Any]] = []
    for size in SIZES:
        progress(f"{bench.name} CPU, batch {size}")
        batches = max(2, min(MAX_BATCHES, records_per_size // size))
        events = bench.events(size, batches + 1)  # the first batch warms up, uncounted
        for fake in bench.fakes():
            fake.reset(bench.seed())
        bench.start(size)
        calls_before = bench.handler_fake.calls.copy()
        per_record_before = bench.per_record_fake().calls.total()
        samples = interleaved(bench.variants() | {"calibration": calibration_us}, events)
        calibration = samples.pop("calibration")
        calls = bench.handler_fake.calls - calls_before
        row: dict[str, Any] = {"batches": batches}
        if bench.name == "preprocess":
            row["distinct_cards_per_batch"] = round(
                sum(distinct_cards(e) for e in events) / len(events), 1
            )
        row["cpu_us_per_record"] = {name: summary(values) for name, values in samples.items()}
        row["calibration_us"] = summary(calibration)
        # each variant's CPU over the calibration measured moments apart: the machine's speed
        # cancels out, what is left moves with the code
        row["normalised_cpu"] = {
            name: paired_ratio(values, calibration, 4) for name, values in samples.items()
        }
        for ratio, (top, bottom) in RATIOS[bench.name].items():
            row[ratio] = paired_ratio(samples[top], samples[bottom])
        row["handler_calls_per_batch"] = {
            k: round(v / len(events), 2) for k, v in sorted(calls.items())
        }
        row["per_record_calls_per_batch"] = round(
            (bench.per_record_fake().calls.total() - per_record_before) / len(events), 1
        )
        row["log_bytes_per_batch"] = summary(bench.log_bytes[1:], 0)
        results[str(size)] = row
        monitoring = list(bench.handler_fake.items[NAMES["MonitoringTable"]].values())
    results["io_path"] = _io_path(bench, bench.seed(), latency_s)
    results["_monitoring_items"] = monitoring
    return results


def preprocess_cpu(
    template: Mapping[str, Any], latency_s: Mapping[str, float], records_per_size: int
) -> dict[str, Any]:
    return _measure(_Preprocess(template), records_per_size, latency_s)


def score_cpu(
    template: Mapping[str, Any], latency_s: Mapping[str, float], records_per_size: int
) -> dict[str, Any]:
    bench = _Score(template)
    measured = _measure(bench, records_per_size, latency_s)
    return {"model_version": bench.app.stage.model.model_version} | measured


# ----------------------------------------------------------------------------- I/O path


def _io_path(
    bench: _Variants, seed: Mapping[str, list[dict[str, Any]]], latency_s: Mapping[str, float]
) -> dict[str, Any]:
    """Per batch size: time with an AWS call in flight, with the p50 latencies injected."""
    progress(f"{bench.name} I/O path with stated latencies")
    results: dict[str, Any] = {}
    fake = bench.handler_fake
    fake.latency_s, fake.latency_scale = dict(latency_s), LATENCY_SCALE
    try:
        for size in SIZES:
            fake.reset(seed)
            io_ms = []
            for index, event in enumerate(bench.events(size, IO_BATCHES + 1)):
                fake.reset_timing()
                with into_sink():
                    _check(bench.app.lambda_handler(event, bench.context))
                if index:
                    io_ms.append(fake.io_seconds() * 1e3)
            results[str(size)] = {"io_ms_per_batch": summary(io_ms, 1)}
    finally:
        fake.latency_s, fake.latency_scale = {}, 1.0
    return results


# ----------------------------------------------------------------------------- drift check


COUNT_WINDOW_PREFIX = "COUNT#"
WINDOW_HOURS = 23  # whole hours inside any 24 h window ending after them


def _window_items(
    captured: Sequence[dict[str, Any]], count: int, end: datetime
) -> list[dict[str, Any]]:
    """`count` hourly count items (MonitoringTable, sk COUNT) spread over the 23 whole hours
    before `end`'s hour, cycling through the count items the handlers wrote: each made another
    (hour, slot) of its kind, model version and shard, found through its hour's WindowIndex
    partition `COUNT#<YYYY-MM-DDTHH>` (functions/streamscore/core/monitoring.py)."""
    counts = [i for i in captured if i.get("sk", {}).get("S") == "COUNT"]
    if not counts:
        raise SystemExit("the handlers wrote no hourly count items to build a window from")
    top = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    items = []
    for index in range(count):
        template = counts[index % len(counts)]
        hour = (top - timedelta(hours=1 + index % WINDOW_HOURS)).strftime("%Y-%m-%dT%H")
        slot = index // WINDOW_HOURS
        kind, version = template["kind"]["S"], template["model_version"]["S"]
        shard = template["shard_id"]["S"]
        item = dict(template)
        item["pk"] = {"S": f"COUNT#{kind}#{version}#{hour}#{shard}#{slot}"}
        item["hour"] = {"S": hour}
        item["window_key"] = {"S": f"{COUNT_WINDOW_PREFIX}{hour}"}
        item["recorded_at"] = {"S": f"{hour}:00:00.000+00:00"}
        items.append(item)
    return items


DRIFT_NOT_SWITCHED = (
    "not measured: the drift check still queries the per-batch HIST/STATS items, which the "
    "handlers no longer write (it does not read the hourly COUNT items yet), so its CPU per "
    "window item would be that of a dead path"
)


def drift_cpu(
    template: Mapping[str, Any],
    latency_s: Mapping[str, float],
    captured: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """The drift check's CPU per window item read, and its I/O path, at two window sizes.

    The window holds hourly count items. When a first run shows that the drift check does not
    query their partitions (COUNT#<hour>), nothing is measured: {"skipped": why}.
    """
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
            fake.latency_scale = LATENCY_SCALE if run == last else 1.0
            fake.reset_timing()
            queried = fake.queried.copy()
            with into_sink():
                seconds = _timed(lambda: app.lambda_handler(event, context), fake)
            asked = fake.queried - queried
            if run == 0 and not any(k.startswith(COUNT_WINDOW_PREFIX) for k in asked):
                progress("drift check: skipped, it does not read the hourly count items yet")
                kinds = sorted({k.split("#")[0] for k in asked})
                return {"skipped": DRIFT_NOT_SWITCHED, "queried_kinds": kinds}
            if 0 < run < last:
                cpu_ms.append(seconds * 1e3)
            elif run == last:
                io_ms.append(fake.io_seconds() * 1e3)
        fake.latency_s, fake.latency_scale = {}, 1.0
        results[str(count)] = {
            "cpu_ms_per_check": summary(cpu_ms, 1),
            "cpu_us_per_item": summary([ms * 1e3 / count for ms in cpu_ms], 1),
            "io_ms_per_check": summary(io_ms, 1),
        }
    return results


# ----------------------------------------------------------------------------- ONNX Runtime threads


def ort_threads(batch: int = 500, repeats: int = 60) -> dict[str, Any]:
    """One model run at `batch` rows with 1 and 2 intra-op threads, interleaved run by run."""
    import numpy as np  # noqa: PLC0415

    from bench.common import MODEL_DIR  # noqa: PLC0415
    from streamscore.scoring.model import load_model  # noqa: PLC0415

    progress("ONNX Runtime threads")
    models = {f"intra_op_{n}": load_model(MODEL_DIR, n, 1) for n in (1, 2)}
    features = [
        [features[name] for name in models["intra_op_1"].feature_names]
        for features in window().features[:batch]
    ]
    matrix = np.array(features, dtype=np.float32)

    def run(model: Any) -> Callable[[int], float]:
        def once(_: int) -> float:
            started = time.perf_counter()
            model.predict(matrix)
            return (time.perf_counter() - started) * 1e3

        return once

    samples = interleaved({name: run(m) for name, m in models.items()}, range(repeats + 1))
    return {name: {"wall_ms": summary(values, 3)} for name, values in samples.items()}
