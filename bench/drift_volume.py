"""The drift check at volume: a day of 1,000 transactions a second (86.4 million), read and written.

`python -m bench.drift_volume [--quick]` writes bench/results/drift_volume.json and prints a
summary; `make bench` runs it as the part after the drift-check CPU (latest.json
`drift_volume`, docs/PERFORMANCE.md "Drift check at volume").

The scenario: 1,000 transactions/s for 24 hours on the template's defaults (batch sizes,
batching windows, ParallelizationFactor, DriftCheckMemorySize, StreamMode), at score and
preprocess batch sizes 10 and the template's, on 4 shards per stream (what a new on-demand stream
starts with; 16 and 64 as scaling rows), with one invalid record per 100 transactions
quarantined by preprocess and one feature record in 10,000 refused by score, so that both
stages leave quarantine count items in every shard-hour.

Read side, measured. The window's count items are built as the writers leave them at the end of
the day: per hour and shard one PRED item per writer slot (the slots `_chunks` makes of a batch
of B facts: one batch reaching B in the hour is enough to create them all) and one QUAR item per
stage. Their contents are the decisions, bins and card-age strata of simulator traffic scored
with the shipped model (bench/drift_warmup.simulated_items), the hour of day's mix scaled to an
hour of that shard's traffic, each item written by the writer's own Update expression. The real
drift-check handler reads them from a fake AWS whose Query pages stop at 1 MB of items as
DynamoDB sizes them: items read, Query calls, process CPU (the fake's answering taken out), the
time with a call in flight at the stated p50 latencies, tracemalloc's peak and ru_maxrss around
one run, and the cost of a run from bench/prices.json.

The per-batch design it replaced (one HIST and one STATS item per score batch), extrapolated:
its items a day are arithmetic; its CPU and memory per item are measured in the same run on
batch-sized count items (one batch's counts each), CPU as the slope between two window sizes.

Write side: the count Update inside every fact transaction, per 1,000 transactions and on the
busiest item, with the score handler's duration per batch measured on the fake AWS with the
latencies injected (the I/O path as bench/handler_cpu measures it).
"""

from __future__ import annotations

import argparse
import base64
import gc
import math
import resource
import statistics
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.common import (
    NAMES,
    calibration_us,
    interleaved,
    into_sink,
    machine,
    now_iso,
    progress,
    summary,
    write_json,
)
from bench.expressions import apply_update
from bench.fake_aws import FakeAWS
from bench.model import (
    KB,
    MIB,
    TRANSACTIONAL_WRITE_FACTOR,
    cpu_share,
    interpolate,
    item_size,
    limit,
    price,
    query_read_units,
    write_units,
)
from streamscore.aws.dynamodb import deserialize, expires_at
from streamscore.aws.facts import DynamoFactWriter, _chunks
from streamscore.core.items import from_item_value
from streamscore.core.monitoring import (
    MISSING,
    NO_VERSION,
    OUT_OF_RANGE,
    PREDICTIONS,
    QUARANTINE,
    CountKey,
    Counts,
    Fact,
    Tally,
    source_of,
    window_key,
)

RESULTS = ROOT / "bench" / "results" / "drift_volume.json"

RATE_TPS = 1000.0  # valid transactions a second, all day: 86.4 million in 24 hours
# Shards per stream. AWS's own sentence on the write capacity a new on-demand stream starts with
# was not found in the stored AWS pages (the Developer Guide's "Choose the data stream capacity
# mode", https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html, as stored,
# has the scaling rule, not the starting figure); third-party summaries of it say "Default
# capacity: 4 MB/s write and 8 MB/s read (equivalent to about 4 shards)"
# (https://oneuptime.com/blog/post/2026-02-12-kinesis-data-streams-on-demand-mode/view) and
# "Starts with 4 MB/s or 4,000 records/s ingestion" (https://www.lucaraveri.com/blog/24baba6f-88fe-80d7-b2fc-faa733da9858).
# So 4 is ASSUMED, as bench/prices.json's limits.kinesis_on_demand_initial_shards is; 1,000
# transactions/s fits 4 shards at 1,000 records/s each.
SHARDS = 4
SCALING_SHARDS = (16, 64)
SMALL_BATCH = 10  # what a quiet shard's one-second window gathers
# One invalid record per 100 transactions on TransactionsStream, quarantined by preprocess
# (bench/traffic.INVALID_RATE and simulator.inject_invalid mean the same).
INVALID_PER_TRANSACTION = 0.01
# Feature records score refuses (a schema mismatch during a rollout, a foreign producer):
# assumed, so that score's quarantine count items exist every hour too (an upper bound on reads).
SCORE_REFUSED_SHARE = 1e-4
SCORE_REFUSED_REASON = "unknown_feature_schema"
STACK = "streamscore"  # CloudFormation names the streams <stack>-<logical id>-<12 characters>
STREAM_SUFFIX = "Q1w2E3r4T5y6"
TRANSACTIONS_STREAM = f"{STACK}-TransactionsStream-{STREAM_SUFFIX}"
FEATURES_STREAM = f"{STACK}-FeaturesStream-{STREAM_SUFFIX}"
PAGE_BYTES = 1024 * 1024  # a Query page stops at 1 MB of items read
TARGET_SECONDS = 60.0  # the target for the 86.4 M window
TARGET_MB = 512.0
PARTITION_WCU_LIMIT = 1000.0  # per partition and second (DynamoDB Developer Guide, below)
WCU_AIM = 300.0
ITEM_WATCH_BYTES = 64 * KB
ITEM_LIMIT_BYTES = 400 * KB
# The per-batch design before the hourly count items, as measured then (the comparison row).
OLD_DESIGN = {
    "items_per_day_at_defaults": 690_000,
    "deserialized_kb_per_hist_item": 9.5,
    "ms_per_item": 1.9,
    "at_memory_mb": 1024,
}
ITEMS_PER_OLD_BATCH = 2  # one HIST and one STATS item per score batch
PER_BATCH_ARITHMETIC = (
    "items a day = score batches a second x 86,400 x 2 (HIST, STATS); batches a second = "
    "shards x (1,000/shards) / fill, fill = min(B, 1,000/shards x the 1 s batching window): "
    "B = 10 fills in 40 ms on 4 shards, so 1,000/10 = 100 batches/s (17,280,000 items); "
    "B = 500 would take 2 s at 250/s per shard, so the window closes each shard's batch at "
    "250 records: 4 batches/s (691,200 items); at 64 shards 15.6 records/s a shard: 64 "
    "batches/s whatever B above 16"
)
LATENCY_SCALE = 10.0  # as bench/handler_cpu: latencies slept 10x, in-flight time divided by 10
SEED = 7
SIM_DAYS = 3.0  # the simulator's shortest run; its last day is the one used

SOURCES = {
    "kinesis_on_demand_initial_capacity": (
        "assumed: AWS's sentence not found in the stored AWS pages; third-party summaries: "
        "'Default capacity: 4 MB/s write and 8 MB/s read (equivalent to about 4 shards)' "
        "(https://oneuptime.com/blog/post/2026-02-12-kinesis-data-streams-on-demand-mode/view), "
        "'Starts with 4 MB/s or 4,000 records/s ingestion' "
        "(https://www.lucaraveri.com/blog/24baba6f-88fe-80d7-b2fc-faa733da9858); the Developer "
        "Guide page it belongs to: https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html"
    ),
    "dynamodb_transactional_writes": (
        "'Transactional write requests require 2 write units to perform one write for items up "
        "to 1 KB.' https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
        "read-write-operations.html#write-operation-consumption"
    ),
    "dynamodb_update_item_size": (
        "'DynamoDB considers the size of the item as it appears before and after the update. "
        "The provisioned throughput consumed reflects the larger of these item sizes.' and "
        "'Item sizes for writes are rounded up to the next 1 KB multiple.' "
        "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
        "read-write-operations.html#write-operation-consumption"
    ),
    "dynamodb_query_units": (
        "'All items returned are treated as a single read operation, where DynamoDB computes the "
        "total size of all items. DynamoDB then rounds up the size to the next 4 KB boundary.' "
        "(an eventually consistent read, as on a GSI: half a unit per 4 KB) "
        "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html"
    ),
    "dynamodb_partition_limit": (
        "'Every partition in a DynamoDB table is designed to deliver a maximum capacity of 3,000 "
        "read units per second and 1,000 write units per second.' "
        "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html"
    ),
    "lambda_kinesis_concurrency": (
        "'Configure the ParallelizationFactor setting to process one shard of a Kinesis or "
        "DynamoDB data stream with more than one Lambda invocation simultaneously. You can "
        "specify the number of concurrent batches that Lambda polls from a shard via a "
        "parallelization factor from 1 (default) to 10.' "
        "https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html"
    ),
    "gsi_writes": (
        "assumed: each Update of a count item also writes its WindowIndex copy (projection ALL) "
        "at 1 WRU per KB, not doubled by the transaction; a table write is throttled when its "
        "index cannot take the write "
        "(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations)"
    ),
}


# ----------------------------------------------------------------------------- arithmetic


def batch_fill(rate_per_shard: float, batch_size: int, window_s: float) -> float:
    """Records a shard's consumer gets per invocation: a full batch, or what one batching
    window gathers at the shard's rate (at least one record)."""
    return max(1.0, min(float(batch_size), rate_per_shard * window_s))


def chunk_sizes(records: int) -> list[int]:
    """Facts per transaction when a batch of `records` facts of one hour is written: the chunks
    functions/streamscore/aws/facts._chunks cuts, each adding to its own writer slot."""
    key = CountKey(PREDICTIONS, "v", "2026-01-01T00", "stream/shard")
    facts = [Fact({}, str(i), key, Tally()) for i in range(records)]
    return [len(chunk) for chunk in _chunks(facts)]


def window_items(hours: int, shards: int, prediction_slots: int, quarantine_stages: int) -> int:
    """Count items a window reads: per hour and shard, one per writer slot and one per stage
    that quarantined something."""
    return hours * shards * (prediction_slots + quarantine_stages)


def per_batch_items(
    rate_tps: float,
    shards: int,
    batch_size: int,
    window_s: float,
    hours: float,
    items_per_batch: int = ITEMS_PER_OLD_BATCH,
) -> float:
    """Items the per-batch design leaves in `hours`: every score batch wrote `items_per_batch`
    items, and each shard's consumer takes a full batch or one batching window's records."""
    rate_per_shard = rate_tps / shards
    batches_per_s = shards * rate_per_shard / batch_fill(rate_per_shard, batch_size, window_s)
    return batches_per_s * 3600 * hours * items_per_batch


def prediction_updates_per_1000(fill: float) -> float:
    """Count-item Updates of the prediction transactions per 1,000 transactions: one per chunk
    of each score batch (its facts all of one hour)."""
    return 1000 / fill * len(chunk_sizes(max(1, round(fill))))


def quarantine_updates_per_1000(records_per_1000: float, bad_share: float, fill: float) -> float:
    """Count-item Updates of quarantine transactions per 1,000 transactions: one for every batch
    of `fill` records holding at least one bad record (a share `bad_share` of the records)."""
    return records_per_1000 / fill * (1 - (1 - bad_share) ** fill)


def transactional_wru_per_1000(updates_per_1000: float, item_bytes: int) -> float:
    """Write units of `updates_per_1000` count Updates inside transactions: 2 per KB of the
    item, the larger of before and after (here: the item at the end of its hour)."""
    return updates_per_1000 * write_units(item_bytes, TRANSACTIONAL_WRITE_FACTOR)


def updates_per_second_per_item(rate_per_shard: float, fill: float, batch_seconds: float) -> float:
    """Updates one slot item takes a second: one per batch of its shard, and with
    ParallelizationFactor 1 a shard's batches run one at a time."""
    return min(rate_per_shard / fill, 1 / batch_seconds)


def lambda_usd(
    duration_s: float, memory_mb: float, gb_second_usd: float, request_usd: float
) -> float:
    return duration_s * memory_mb / 1024 * gb_second_usd + request_usd


def nearest(measured: Sequence[int], fill: float) -> int:
    """The measured batch fill closest to `fill` (by ratio)."""
    return min(measured, key=lambda m: abs(math.log(fill / m)))


# ----------------------------------------------------------------------------- items


def scaled(counts: Counts, n: int) -> Counts:
    """`counts` scaled to `n` facts; every count that was there stays (at least 1)."""
    factor = n / counts.n

    def scale[K](values: Counter[K]) -> Counter[K]:
        return Counter({k: max(1, round(v * factor)) for k, v in values.items()})

    return Counts(
        n=n,
        decisions=scale(counts.decisions),
        reasons=scale(counts.reasons),
        bins=scale(counts.bins),
        history=scale(counts.history),
    )


_WRITER = DynamoFactWriter(None, "facts", "key", NAMES["MonitoringTable"])


def count_item(key: CountKey, counts: Counts, expires: int) -> dict[str, Any]:
    """The count item (wire format) after the writer's Update of `counts` on no item."""
    update = _WRITER._count_update(key, counts, expires)
    return apply_update(
        None,
        update["Key"],
        update["UpdateExpression"],
        update["ExpressionAttributeNames"],
        update["ExpressionAttributeValues"],
    )


def relabel(base: Mapping[str, Any], key: CountKey) -> dict[str, Any]:
    """A copy of a count item under another key (values shared: they are never changed)."""
    item = dict(base)
    item["pk"] = {"S": key.pk}
    item["shard_id"] = {"S": key.shard_id}
    item["hour"] = {"S": key.hour}
    item["window_key"] = {"S": window_key(key.hour)}
    item["recorded_at"] = {"S": f"{key.hour}:00:00.000+00:00"}
    return item


def shard_source(stream: str, shard: int) -> str:
    return source_of(stream, f"shardId-{shard:012d}")


@dataclass
class Traffic:
    """Scored simulator traffic: an hour of day's prediction counts, and one batch's counts."""

    cards: int
    transactions: int
    hourly: dict[int, Counts]
    batches: dict[int, list[Counts]]
    reasons: Counter[str] = field(default_factory=Counter)  # preprocess quarantine reasons

    def day(self) -> Counts:
        """The whole day's counts (for an hour the simulated day left empty)."""
        total = Counts()
        for counts in self.hourly.values():
            total.add(counts)
        return total


def simulated_traffic(cards: int, fills: Sequence[int]) -> Traffic:
    """The last of SIM_DAYS days of simulator traffic scored with the shipped model, counted
    per batch of each fill (bench/drift_warmup.simulated_items, batch by batch) and per hour."""
    from bench import drift_warmup  # noqa: PLC0415 - the simulator and the model, when measuring

    transactions, start = drift_warmup.simulation(SEED, cards, SIM_DAYS)
    day = (start + timedelta(days=SIM_DAYS - 1), start + timedelta(days=SIM_DAYS))
    batches: dict[int, list[Counts]] = {}
    hourly: dict[int, Counts] = defaultdict(Counts)
    scored = 0
    saved = drift_warmup.BATCH
    try:
        for fill in fills:
            drift_warmup.BATCH = fill  # one item per batch of `fill` (split at an hour's end)
            items, scored = drift_warmup.simulated_items(transactions, *day)
            batches[fill] = [Counts.from_item(i) for i in items]
            if not hourly:
                for item, counts in zip(items, batches[fill], strict=True):
                    hourly[int(item["hour"][-2:])].add(counts)
    finally:
        drift_warmup.BATCH = saved
    return Traffic(cards, scored, dict(hourly), batches, quarantine_reasons(2000))


def quarantine_reasons(count: int) -> Counter[str]:
    """Why preprocess quarantines the simulator's invalid records (its own decoding)."""
    import numpy as np  # noqa: PLC0415

    from simulator import invalid_payloads  # noqa: PLC0415
    from streamscore.core.errors import InvalidRecordError  # noqa: PLC0415
    from streamscore.core.ids import SequenceNumber  # noqa: PLC0415
    from streamscore.core.records import StreamRecord  # noqa: PLC0415
    from streamscore.preprocess.batch import decode_transaction  # noqa: PLC0415

    reasons: Counter[str] = Counter()
    for index, (payload, _) in enumerate(invalid_payloads(np.random.default_rng(SEED), count)):
        data = base64.b64encode(payload).decode()
        record = StreamRecord(
            TRANSACTIONS_STREAM, "shardId-000000000000", SequenceNumber(str(index)), "k", data, 0.0
        )
        try:
            decode_transaction(record)
        except InvalidRecordError as error:
            reasons[error.reason] += 1
    return reasons


@dataclass
class Window:
    shards: int
    batch_size: int
    slots: list[int]  # facts per chunk of a batch of batch_size: one PRED item each
    items: list[dict[str, Any]]


def build_window(
    end: datetime, shards: int, batch_size: int, traffic: Traffic, version: str, ttl_days: int
) -> Window:
    """The window's count items at the end of the day (see the module docstring)."""
    per_shard_hour = RATE_TPS * 3600 / shards
    slots = chunk_sizes(batch_size)
    reasons = traffic.reasons
    items: list[dict[str, Any]] = []
    for back in range(24, 0, -1):
        moment = end - timedelta(hours=back)
        hour = moment.strftime("%Y-%m-%dT%H")
        expires = expires_at(moment, ttl_days)
        mix = traffic.hourly.get(moment.hour) or traffic.day()
        kinds: list[tuple[CountKey, Counts, str]] = [
            (
                CountKey(PREDICTIONS, version, hour, shard_source(FEATURES_STREAM, 0), slot),
                scaled(mix, round(per_shard_hour * size / batch_size)),
                FEATURES_STREAM,
            )
            for slot, size in enumerate(slots)
        ]
        bad = round(per_shard_hour * INVALID_PER_TRANSACTION)
        bad_mix = Counts(
            n=sum(reasons.values()),
            reasons=Counter({f"preprocess/{r}": c for r, c in reasons.items()}),
        )
        kinds.append(
            (
                CountKey(QUARANTINE, NO_VERSION, hour, shard_source(TRANSACTIONS_STREAM, 0)),
                scaled(bad_mix, bad),
                TRANSACTIONS_STREAM,
            )
        )
        refused = max(1, round(per_shard_hour * SCORE_REFUSED_SHARE))
        kinds.append(
            (
                CountKey(QUARANTINE, NO_VERSION, hour, shard_source(FEATURES_STREAM, 0)),
                Counts(n=refused, reasons=Counter({f"score/{SCORE_REFUSED_REASON}": refused})),
                FEATURES_STREAM,
            )
        )
        for key, counts, stream in kinds:
            base = count_item(key, counts, expires)
            for shard in range(shards):
                source = shard_source(stream, shard)
                items.append(
                    relabel(base, CountKey(key.kind, key.model_version, hour, source, key.slot))
                )
    return Window(shards, batch_size, slots, items)


def batch_items(
    end: datetime, counts: Sequence[Counts], count: int, version: str, ttl_days: int
) -> list[dict[str, Any]]:
    """`count` count items of one batch each (the per-batch design's items, in today's format),
    spread over the window's 24 hours, each under its own key."""
    expires = expires_at(end, ttl_days)
    source = shard_source(FEATURES_STREAM, 0)
    bases = [
        count_item(CountKey(PREDICTIONS, version, "2000-01-01T00", source, i), c, expires)
        for i, c in enumerate(counts[:count])
    ]
    items = []
    for index in range(count):
        hour = (end - timedelta(hours=1 + index % 24)).strftime("%Y-%m-%dT%H")
        key = CountKey(PREDICTIONS, version, hour, source, index)
        items.append(relabel(bases[index % len(bases)], key))
    return items


def largest_possible_item(version: str, baseline: Any, ttl_days: int) -> dict[str, Any]:
    """A PRED count item with every attribute the model's bins allow (each bin, missing, out of
    range, every decision and card-age stratum) at 9,999,999 (more than an hour at 1,000/s)."""
    from streamscore.core.artifacts import SCORE  # noqa: PLC0415
    from streamscore.scoring.model import DECISIONS  # noqa: PLC0415

    top = 9_999_999
    names = [*baseline.features, SCORE]
    bins: Counter[tuple[int, int]] = Counter()
    for variable, name in enumerate(names):
        for index in (*range(len(baseline.variables[name].proportions)), MISSING, OUT_OF_RANGE):
            bins[variable, index] = top
    strata = len(baseline.history.bounds_s) if baseline.history is not None else 0
    counts = Counts(
        n=top,
        decisions=Counter(dict.fromkeys(DECISIONS, top)),
        bins=bins,
        history=Counter(dict.fromkeys(range(strata), top)),
    )
    key = CountKey(PREDICTIONS, version, "2026-12-31T23", shard_source(FEATURES_STREAM, 99), 99)
    return count_item(key, counts, expires_at(datetime(2026, 12, 31, tzinfo=UTC), ttl_days))


# ----------------------------------------------------------------------------- the fake index


class WindowIndex(FakeAWS):
    """FakeAWS whose WindowIndex Query cuts pages at 1 MB of items as DynamoDB sizes them
    (bench.model.item_size), the items of each hour bucket indexed at reset; each page's size
    is kept for its read units, and the items handed out are counted."""

    def __init__(self, table_keys: Mapping[str, Sequence[str]]) -> None:
        super().__init__(table_keys)
        self.page_bytes: list[int] = []
        self.returned = 0
        self._buckets: dict[str, list[tuple[str, str, int, dict[str, Any]]]] = {}
        self._indexes: dict[tuple[int, ...], tuple[tuple[Sequence[dict[str, Any]], ...], Any]] = {}

    def reset(self, items: Mapping[str, Sequence[dict[str, Any]]]) -> None:
        super().reset(items)
        sources = tuple(items.values())
        key = tuple(id(rows) for rows in sources)
        held = self._indexes.get(key)
        if held is None or any(a is not b for a, b in zip(held[0], sources, strict=True)):
            buckets: dict[str, list[tuple[str, str, int, dict[str, Any]]]] = defaultdict(list)
            for table_items in sources:
                for item in table_items:
                    if "window_key" in item:
                        row = (item["recorded_at"]["S"], item["pk"]["S"], item_size(item), item)
                        buckets[item["window_key"]["S"]].append(row)
            for bucket in buckets.values():
                bucket.sort(key=lambda row: (row[0], row[1]))
            # index (and size) a window's items once, not once per run; the windows are held,
            # so their ids stay theirs while they are in this cache
            held = (sources, dict(buckets))
            self._indexes = dict(list(self._indexes.items())[-3:]) | {key: held}
        self._buckets = held[1]
        with self._lock:
            self.page_bytes = []
            self.returned = 0

    def Query(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        values = body["ExpressionAttributeValues"]
        key, start, end = (values[name]["S"] for name in (":key", ":start", ":end"))
        self.queried[key] += 1
        rows = [row for row in self._buckets.get(key, []) if start <= row[0] <= end]
        offset = int(body["ExclusiveStartKey"]["offset"]["N"]) if "ExclusiveStartKey" in body else 0
        page: list[dict[str, Any]] = []
        size = 0
        for _, _, bytes_, item in rows[offset:]:
            page.append(item)
            size += bytes_
            if size >= PAGE_BYTES:
                break
        self.page_bytes.append(size)
        self.returned += len(page)
        answer: dict[str, Any] = {"Items": page, "Count": len(page), "ScannedCount": len(page)}
        if offset + len(page) < len(rows):
            answer["LastEvaluatedKey"] = {"offset": {"N": str(offset + len(page))}}
        return answer


# ----------------------------------------------------------------------------- measuring


@dataclass
class DriftRig:
    app: Any
    fake: WindowIndex
    event: dict[str, Any]
    context: Any
    end: datetime
    latency: dict[str, float]

    def run(self, items: Sequence[dict[str, Any]]) -> tuple[float, dict[str, Any]]:
        """CPU seconds of one drift check over `items` (the fake's answering taken out)."""
        from bench.handler_cpu import _timed  # noqa: PLC0415

        self.fake.reset({NAMES["MonitoringTable"]: items})
        self.fake.reset_timing()
        out: dict[str, Any] = {}
        with into_sink():
            seconds = _timed(
                lambda: out.update(self.app.lambda_handler(self.event, self.context)), self.fake
            )
        return seconds, out

    def io_seconds(self, items: Sequence[dict[str, Any]]) -> float:
        """Time with a call in flight during one check, the stated p50 latencies injected."""
        self.fake.latency_s, self.fake.latency_scale = dict(self.latency), LATENCY_SCALE
        try:
            self.run(items)
            return self.fake.io_seconds()
        finally:
            self.fake.latency_s, self.fake.latency_scale = {}, 1.0

    def memory(self, items: Sequence[dict[str, Any]]) -> dict[str, float]:
        """tracemalloc's peak during one check, and the process's max RSS before and after."""
        gc.collect()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        try:
            self.run(items)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {
            "tracemalloc_peak_mb": round(peak / MIB, 1),
            "ru_maxrss_before_mb": round(before / 1024, 1),  # Linux: KB
            "ru_maxrss_after_mb": round(after / 1024, 1),
        }


def drift_rig(
    template: Mapping[str, Any], latency: Mapping[str, float], memory_mb: int
) -> DriftRig:
    from bench.common import LambdaContext, load_app  # noqa: PLC0415
    from bench.handler_cpu import _table_keys  # noqa: PLC0415
    from embedded.lambda_events import scheduled_event  # noqa: PLC0415

    app = load_app("drift_check")
    fake = WindowIndex(_table_keys(template))
    fake.attach(app.dynamodb, app.s3, app.events)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    event = scheduled_event(end.isoformat().replace("+00:00", "Z"))
    return DriftRig(app, fake, event, LambdaContext("drift_check", memory_mb), end, dict(latency))


def peak_rss_mb() -> float:
    """This process's peak RSS: /proc's VmHWM, which belongs to the address space exec made.
    (ru_maxrss is not used here: a child started by a large parent reports the parent's.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fresh_process_rss_mb() -> float | None:
    """Max RSS of a fresh process that built the drift check as its Lambda init does and ran it
    once over an empty window (imports, baseline, matplotlib): what a run adds comes on top."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    done = subprocess.run(
        [sys.executable, "-m", "bench.drift_volume", "--child-rss"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        return float(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        progress(f"drift volume: the fresh process gave no RSS: {done.stderr[-500:]}")
        return None


def read_side(
    rig: DriftRig,
    window: Window,
    runs: int,
    table: Mapping[str, Any],
    values: Mapping[str, str],
    base_rss_mb: float | None,
) -> dict[str, Any]:
    """One window measured: runs interleaved with the calibration, then one run with the
    latencies injected and one under tracemalloc."""
    items = window.items
    queries_before = rig.fake.calls["Query"]
    samples = interleaved(
        {"check": lambda _: rig.run(items)[0], "calibration": calibration_us}, range(runs + 1)
    )
    outcome = rig.run(items)[1]
    fake = rig.fake
    queries = (fake.calls["Query"] - queries_before) // (runs + 2)
    read_units = sum(query_read_units([size]) for size in fake.page_bytes)
    report_items = [
        i
        for i in fake.items[NAMES["MonitoringTable"]].values()
        if i["pk"]["S"].startswith("REPORT#")
    ]
    report_wru = sum(write_units(item_size(i)) for i in report_items)
    s3_puts = len(fake.objects)
    returned, pages = fake.returned, len(fake.page_bytes)
    io = rig.io_seconds(items)
    memory = rig.memory(items)
    if base_rss_mb is not None:  # the function's own process: its init, then this run's peak
        memory["fresh_process_rss_mb"] = round(base_rss_mb, 1)
        memory["estimated_lambda_mb"] = round(base_rss_mb + memory["tracemalloc_peak_mb"], 1)
    estimated_mb = memory.get("estimated_lambda_mb", memory["tracemalloc_peak_mb"])
    memory_mb = int(values["DriftCheckMemorySize"])
    share = cpu_share(memory_mb, limit(table, "lambda_mb_per_vcpu"))
    cpu = statistics.median(samples["check"])
    duration = cpu / share + io
    events = 0
    if outcome.get("retraining") == "sent":
        from streamscore.drift.report import TRIGGER_EVENTS  # noqa: PLC0415

        events = len(TRIGGER_EVENTS)
    arch = values["Architecture"]
    lambda_part = lambda_usd(
        duration,
        memory_mb,
        price(table, f"lambda_{arch}_gb_second"),
        price(table, "lambda_request"),
    )
    cost = {
        "lambda": lambda_part,
        "dynamodb_query": read_units * price(table, "dynamodb_on_demand_read_request_unit"),
        "dynamodb_report_put": report_wru * price(table, "dynamodb_on_demand_write_request_unit"),
        "s3_puts": s3_puts * price(table, "s3_put_request"),
        "eventbridge": events * price(table, "eventbridge_custom_event"),
    }
    sizes = [item_size(i) for i in items]
    per_pred = [item_size(i) for i in items if i["kind"]["S"] == PREDICTIONS]
    return {
        "shards": window.shards,
        "batch_size": window.batch_size,
        "slots_per_batch": len(window.slots),
        "facts_per_slot": window.slots,
        "items_in_window": len(items),
        "items_read": returned,
        "query_calls": queries,
        "query_pages": pages,
        "item_bytes": {"mean": round(statistics.fmean(sizes)), "max": max(sizes)},
        "prediction_item_bytes_max": max(per_pred),
        "verdict": outcome.get("status"),
        "cpu_s": summary(samples["check"], 3),
        "calibration_us": summary(samples["calibration"]),
        "io_s": round(io, 3),
        "modelled_duration_s": round(duration, 3),
        "memory": memory,
        "read_units": read_units,
        "s3_puts": s3_puts,
        "events": events,
        "cost_usd_per_run": {k: round(v, 9) for k, v in cost.items()},
        "cost_usd_per_run_total": round(sum(cost.values()), 9),
        "cost_usd_per_day_hourly": round(sum(cost.values()) * 24, 6),
        "meets_target": duration <= TARGET_SECONDS and estimated_mb <= TARGET_MB,
    }


def deserialized_bytes(items: Sequence[dict[str, Any]]) -> float:
    """Python bytes per item of `items` deserialized as the window reader does."""
    gc.collect()
    tracemalloc.start()
    try:
        held = [from_item_value(deserialize(raw)) for raw in items]
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del held
    return current / len(items)


def per_item(
    rig: DriftRig,
    traffic: Traffic,
    fill: int,
    sizes: tuple[int, int],
    runs: int,
    version: str,
    ttl: int,
) -> dict[str, Any]:
    """CPU per window item of one-batch count items (the slope between two window sizes, run
    side by side), their size and their deserialized memory."""
    small, large = sizes
    items = batch_items(rig.end, traffic.batches[fill], large, version, ttl)
    first = items[:small]
    samples = interleaved(
        {
            "small": lambda _: rig.run(first)[0],
            "large": lambda _: rig.run(items)[0],
            "calibration": calibration_us,
        },
        range(runs + 1),
    )
    slopes = [
        (b - a) / (large - small) for a, b in zip(samples["small"], samples["large"], strict=True)
    ]
    fixed = [a - s * small for a, s in zip(samples["small"], slopes, strict=True)]
    sized = [item_size(i) for i in items]
    return {
        "fill": fill,
        "window_items": list(sizes),
        "cpu_ms_per_item": summary([s * 1e3 for s in slopes], 4),
        "cpu_s_fixed": summary(fixed, 3),
        "cpu_s": {"small": summary(samples["small"], 3), "large": summary(samples["large"], 3)},
        "item_bytes_mean": round(statistics.fmean(sized)),
        "deserialized_bytes_per_item": round(deserialized_bytes(items)),
        "calibration_us": summary(samples["calibration"]),
    }


def score_durations(
    template: Mapping[str, Any],
    latency: Mapping[str, float],
    sizes: Sequence[int],
    batches: int,
    memory_mb: int,
    mb_per_vcpu: float,
) -> dict[str, Any]:
    """The score handler's duration per batch: process CPU at its memory's CPU share plus the
    time with a call in flight, the p50 latencies injected; sizes interleaved batch by batch."""
    from bench.handler_cpu import _check, _Score, _timed  # noqa: PLC0415

    bench = _Score(template)
    fake = bench.handler_fake
    events = {size: bench.events(size, batches + 1) for size in sizes}
    cpu: dict[int, list[float]] = {s: [] for s in sizes}
    io: dict[int, list[float]] = {s: [] for s in sizes}

    def variant(size: int) -> Callable[[int], float]:
        def once(index: int) -> float:
            fake.reset({})  # every batch a first delivery: each prediction is created
            fake.reset_timing()
            event = events[size][index]
            with into_sink():
                seconds = _timed(
                    lambda: _check(bench.app.lambda_handler(event, bench.context)), fake
                )
            cpu[size].append(seconds)
            io[size].append(fake.io_seconds())
            return seconds

        return once

    fake.latency_s, fake.latency_scale = dict(latency), LATENCY_SCALE
    try:
        interleaved({str(s): variant(s) for s in sizes}, range(batches + 1), warmup=0)
    finally:
        fake.latency_s, fake.latency_scale = {}, 1.0
    share = cpu_share(memory_mb, mb_per_vcpu)
    out: dict[str, Any] = {"memory_mb": memory_mb}
    for size in sizes:
        durations = [c / share + i for c, i in zip(cpu[size][1:], io[size][1:], strict=True)]
        out[str(size)] = {
            "cpu_ms": summary([c * 1e3 for c in cpu[size][1:]], 1),
            "io_ms": summary([i * 1e3 for i in io[size][1:]], 1),
            "duration_ms": summary([d * 1e3 for d in durations], 1),
        }
    return out


# ----------------------------------------------------------------------------- the parts


def _comparison(
    values: Mapping[str, str],
    table: Mapping[str, Any],
    measured: Mapping[int, Mapping[str, Any]],
    shard_counts: Sequence[int],
    batch_sizes: Sequence[int],
    ahead: int,
) -> list[dict[str, Any]]:
    window_s = float(values["ScoreMaximumBatchingWindowInSeconds"])
    memory_mb = int(values["DriftCheckMemorySize"])
    timeout_s = float(values["DriftCheckTimeout"])
    share = cpu_share(memory_mb, limit(table, "lambda_mb_per_vcpu"))
    query_s = float(table["latency_ms_p50"]["Query"]["ms"]) / 1000
    rows = []
    for batch_size in batch_sizes:
        for shards in shard_counts:
            fill = batch_fill(RATE_TPS / shards, batch_size, window_s)
            items = per_batch_items(RATE_TPS, shards, batch_size, window_s, 24)
            per_hour = items / 24
            m = measured[nearest(list(measured), fill)]
            cpu_s = m["cpu_s_fixed"]["median"] + items * m["cpu_ms_per_item"]["median"] / 1e3
            pages_per_hour = math.ceil(per_hour * m["item_bytes_mean"] / PAGE_BYTES)
            io_s = math.ceil(24 / ahead) * pages_per_hour * query_s
            duration = cpu_s / share + io_s
            streamed_mb = per_hour * ahead * m["deserialized_bytes_per_item"] / MIB
            whole_mb = items * m["deserialized_bytes_per_item"] / MIB
            old_s = items * OLD_DESIGN["ms_per_item"] / 1e3 * OLD_DESIGN["at_memory_mb"] / memory_mb
            old_mb = items * OLD_DESIGN["deserialized_kb_per_hist_item"] * KB / MIB
            rows.append(
                {
                    "batch_size": batch_size,
                    "shards": shards,
                    "batch_fill": round(fill, 1),
                    "batches_per_s": round(RATE_TPS / fill, 2),
                    "items_per_day": round(items),
                    "per_item_measured_at_fill": m["fill"],
                    "cpu_s": round(cpu_s, 1),
                    "io_s": round(io_s, 1),
                    "modelled_duration_s": round(duration, 1),
                    "memory_mb_streamed": round(streamed_mb),
                    "memory_mb_whole_window": round(whole_mb),
                    "fits_timeout": duration <= timeout_s,
                    "fits_memory_streamed": streamed_mb <= memory_mb,
                    "old_figures_duration_s": round(old_s),
                    "old_figures_memory_mb_whole_window": round(old_mb),
                }
            )
    return rows


def write_side(
    values: Mapping[str, str],
    windows: Mapping[tuple[int, int], Window],
    durations: Mapping[str, Any],
    largest_possible: int,
    overhead_s: float,
) -> dict[str, Any]:
    """Count Updates per 1,000 transactions and on the busiest items, from each window's shard-0
    items (their sizes at the end of the hour) and the score handler's measured durations;
    `overhead_s`: the event source mapping's gap between a shard's batches (assumed)."""
    score_window = float(values["ScoreMaximumBatchingWindowInSeconds"])
    pre_window = float(values["PreprocessMaximumBatchingWindowInSeconds"])
    points = tuple(
        (float(size), durations[size]["duration_ms"]["median"] / 1e3)
        for size in sorted((k for k in durations if k.isdigit()), key=int)
    )
    rows = []
    for (batch_size, shards), window in sorted(windows.items()):
        rate = RATE_TPS / shards
        fill = batch_fill(rate, batch_size, score_window)
        pre_fill = batch_fill(rate * (1 + INVALID_PER_TRANSACTION), batch_size, pre_window)
        pred_bytes = max(item_size(i) for i in window.items if i["kind"]["S"] == PREDICTIONS)
        quar_bytes = max(item_size(i) for i in window.items if i["kind"]["S"] == QUARANTINE)
        pred = prediction_updates_per_1000(fill)
        bad_share = INVALID_PER_TRANSACTION / (1 + INVALID_PER_TRANSACTION)
        quar_pre = quarantine_updates_per_1000(
            1000 * (1 + INVALID_PER_TRANSACTION), bad_share, pre_fill
        )
        quar_score = quarantine_updates_per_1000(1000, SCORE_REFUSED_SHARE, fill)
        wru = transactional_wru_per_1000(pred, pred_bytes) + transactional_wru_per_1000(
            quar_pre + quar_score, quar_bytes
        )
        steady_s = interpolate(points, fill)
        full_s = interpolate(points, batch_size)
        steady = updates_per_second_per_item(rate, fill, steady_s)
        catch_up = 1 / full_s
        units = write_units(pred_bytes, TRANSACTIONAL_WRITE_FACTOR)
        updates_per_s = (pred + quar_pre + quar_score) * RATE_TPS / 1000
        index_wcu = pred * RATE_TPS / 1000 * write_units(pred_bytes) + (
            quar_pre + quar_score
        ) * RATE_TPS / 1000 * write_units(quar_bytes)
        rows.append(
            {
                "batch_size": batch_size,
                "shards": shards,
                "score_batch_fill": round(fill, 1),
                "preprocess_batch_fill": round(pre_fill, 1),
                "slots_at_fill": len(chunk_sizes(max(1, round(fill)))),
                "updates_per_1000": {
                    "prediction": round(pred, 2),
                    "quarantine_preprocess": round(quar_pre, 2),
                    "quarantine_score": round(quar_score, 3),
                },
                "item_bytes": {"prediction": pred_bytes, "quarantine": quar_bytes},
                "wru_per_1000": round(wru, 1),
                "score_duration_s": {
                    "at_fill": round(steady_s, 4),
                    "at_batch_size": round(full_s, 4),
                },
                # records/s one shard's score consumer sustains at this fill (gap included)
                "score_records_per_s_per_shard": round(fill / (steady_s + overhead_s)),
                "shard_keeps_up": fill / (steady_s + overhead_s) >= rate,
                "busiest_item": {
                    "updates_per_s": round(steady, 2),
                    "wcu_per_s": round(steady * units, 1),
                    "catch_up_updates_per_s": round(catch_up, 2),
                    "catch_up_wcu_per_s": round(catch_up * units, 1),
                },
                "busiest_item_within_aim": max(steady, catch_up) * units <= WCU_AIM,
                "window_index_partition_wcu_per_s": round(index_wcu, 1),
                "window_index_within_aim": index_wcu <= WCU_AIM,
                "count_updates_per_s_all_items": round(updates_per_s, 1),
            }
        )
    largest = max(max(item_size(i) for i in w.items) for w in windows.values())
    return {
        "rows": rows,
        "largest_item_bytes": largest,
        "largest_possible_item_bytes": largest_possible,
        "item_watch_bytes": ITEM_WATCH_BYTES,
        "item_limit_bytes": ITEM_LIMIT_BYTES,
        "partition_wcu_limit": PARTITION_WCU_LIMIT,
        "wcu_aim": WCU_AIM,
        "score_durations": durations,
    }


def measure(
    template: Mapping[str, Any],
    table: Mapping[str, Any],
    quick: bool = False,
    runs: int | None = None,
) -> dict[str, Any]:
    """Every figure of the module docstring; `quick`: 4 shards only, fewer runs and samples;
    `runs`: measured drift-check runs per window (default 5, quick 1)."""
    from bench.model import latencies_s  # noqa: PLC0415
    from embedded.template import parameter_values  # noqa: PLC0415

    values = parameter_values(dict(template))
    latency = latencies_s(table)
    runs = runs or (1 if quick else 5)
    shard_counts = (SHARDS,) if quick else (SHARDS, *SCALING_SHARDS)
    batch_sizes = tuple(dict.fromkeys((SMALL_BATCH, int(values["ScoreBatchSize"]))))
    window_s = float(values["ScoreMaximumBatchingWindowInSeconds"])
    fills = sorted({round(batch_fill(RATE_TPS / SHARDS, b, window_s)) for b in batch_sizes})
    ttl = int(values["MonitoringTtlDays"])
    drift_memory = int(values["DriftCheckMemorySize"])
    mb_per_vcpu = limit(table, "lambda_mb_per_vcpu")

    progress(f"drift volume: simulated traffic scored with the shipped model (fills {fills})")
    traffic = simulated_traffic(2000 if quick else 20000, fills)
    progress("drift volume: a fresh drift-check process, its memory after init and one run")
    base_rss = fresh_process_rss_mb()
    rig = drift_rig(template, latency, drift_memory)
    version = rig.app.stage.baseline.model_version
    ahead = rig.app.stage.ports.reader.ahead

    windows: dict[tuple[int, int], Window] = {}
    reads = []
    for batch_size in batch_sizes:
        for shards in shard_counts:
            window = build_window(rig.end, shards, batch_size, traffic, version, ttl)
            progress(
                f"drift volume: read side, batch {batch_size}, {shards} shards, "
                f"{len(window.items):,} window items"
            )
            rig.run(window.items)  # warm (the first run imports matplotlib)
            reads.append(read_side(rig, window, runs, table, values, base_rss))
            firsts = {shard_source(TRANSACTIONS_STREAM, 0), shard_source(FEATURES_STREAM, 0)}
            window.items = [i for i in window.items if i["shard_id"]["S"] in firsts]
            windows[batch_size, shards] = window  # shard 0's items: all the write side needs

    progress("drift volume: per-batch design, CPU and memory per one-batch item")
    sizes = (300, 900) if quick else (1000, 4000)
    measured = {
        fill: per_item(rig, traffic, fill, sizes, 1 if quick else 3, version, ttl) for fill in fills
    }
    comparison = _comparison(values, table, measured, shard_counts, batch_sizes, ahead)

    progress("drift volume: score handler duration per batch, latencies injected")
    durations = score_durations(
        template,
        latency,
        batch_sizes,
        2 if quick else 5,
        int(values["ScoreMemorySize"]),
        mb_per_vcpu,
    )
    largest_possible = item_size(largest_possible_item(version, rig.app.stage.baseline, ttl))
    return {
        "date": now_iso(),
        "machine": machine(),
        "quick": quick,
        "how": __doc__,
        "scenario": {
            "transactions_per_s": RATE_TPS,
            "hours": 24,
            "transactions": int(RATE_TPS * 3600 * 24),
            "shards_per_stream": SHARDS,
            "scaling_shards": list(SCALING_SHARDS) if not quick else [],
            "batch_sizes": list(batch_sizes),
            "invalid_per_transaction": INVALID_PER_TRANSACTION,
            "score_refused_share": SCORE_REFUSED_SHARE,
            "quarantine_reasons": dict(traffic.reasons),
            "simulated_cards": traffic.cards,
            "simulated_transactions_scored": traffic.transactions,
            "model_version": version,
            "reader_hours_in_flight": ahead,
            "template": {
                k: values[k]
                for k in (
                    "StreamMode",
                    "ScoreBatchSize",
                    "PreprocessBatchSize",
                    "ScoreMaximumBatchingWindowInSeconds",
                    "PreprocessMaximumBatchingWindowInSeconds",
                    "ScoreParallelizationFactor",
                    "PreprocessParallelizationFactor",
                    "DriftCheckMemorySize",
                    "DriftCheckTimeout",
                    "ScoreMemorySize",
                    "Architecture",
                    "DriftWindowMinutes",
                )
            },
        },
        "targets": {"seconds": TARGET_SECONDS, "memory_mb": TARGET_MB},
        "read_side": reads,
        "per_batch_design": {
            "arithmetic": PER_BATCH_ARITHMETIC,
            "old_design": OLD_DESIGN,
            "items_per_batch": ITEMS_PER_OLD_BATCH,
            "measured_per_item": {str(k): v for k, v in measured.items()},
            "rows": comparison,
        },
        "write_side": write_side(
            values,
            windows,
            durations,
            largest_possible,
            limit(table, "lambda_invoke_overhead_ms") / 1000,
        ),
        "sources": SOURCES,
    }


# ----------------------------------------------------------------------------- output


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    """A readable summary of `results` (printed by main)."""
    lines = [
        f"Drift check at volume: {results['scenario']['transactions']:,} transactions in 24 h "
        f"({'quick' if results['quick'] else 'full'} run, {results['date']})",
        "",
        "read side (measured): batch shards | items read  Query calls | CPU s median [min-max] | "
        "tracemalloc MB | modelled s | USD/run | verdict",
    ]
    for r in results["read_side"]:
        cpu = r["cpu_s"]
        lines.append(
            f"  {r['batch_size']:>5} {r['shards']:>3} | {r['items_read']:>7,} {r['query_calls']:>6} | "
            f"{cpu['median']:.3f} [{cpu['min']:.3f}-{cpu['max']:.3f}] | "
            f"{r['memory']['tracemalloc_peak_mb']:.1f} | {r['modelled_duration_s']:.2f} | "
            f"{r['cost_usd_per_run_total']:.7f} | {r['verdict']}"
            + ("" if r["meets_target"] else "  ** misses the target **")
        )
    lines += ["", "per-batch design (extrapolated): batch shards | items/day | s | MB streamed"]
    for r in results["per_batch_design"]["rows"]:
        lines.append(
            f"  {r['batch_size']:>5} {r['shards']:>3} | {r['items_per_day']:>12,} | "
            f"{r['modelled_duration_s']:>8,.0f} {'' if r['fits_timeout'] else '(times out)'} | "
            f"{r['memory_mb_streamed']:,}"
        )
    w = results["write_side"]
    lines += [
        "",
        "write side: batch shards | Updates/1000 | WRU/1000 | item B | busiest item WCU/s (catch-up) | index WCU/s",
    ]
    for r in w["rows"]:
        u = r["updates_per_1000"]
        b = r["busiest_item"]
        lines.append(
            f"  {r['batch_size']:>5} {r['shards']:>3} | {u['prediction']:.1f}+"
            f"{u['quarantine_preprocess']:.1f}+{u['quarantine_score']:.2f} | {r['wru_per_1000']:.0f} | "
            f"{r['item_bytes']['prediction']:,} | {b['wcu_per_s']:.0f} ({b['catch_up_wcu_per_s']:.0f}) | "
            f"{r['window_index_partition_wcu_per_s']:.0f}"
        )
    lines.append(
        f"  largest item {w['largest_item_bytes']:,} B, largest possible {w['largest_possible_item_bytes']:,} B "
        f"(watch {ITEM_WATCH_BYTES:,}, limit {ITEM_LIMIT_BYTES:,})"
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.drift_volume", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="4 shards only, fewer runs (a smoke run)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results")
    parser.add_argument("--child-rss", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from bench.common import TEMPLATE_PATH, prepare_process  # noqa: PLC0415

    prepare_process()
    from bench.model import latencies_s, load_table  # noqa: PLC0415
    from embedded.template import load_template, parameter_values  # noqa: PLC0415

    if args.child_rss:  # the fresh process of fresh_process_rss_mb
        template = load_template(TEMPLATE_PATH)
        table = load_table(ROOT / "bench" / "prices.json")
        memory = int(parameter_values(template)["DriftCheckMemorySize"])
        drift_rig(template, latencies_s(table), memory).run([])
        print(peak_rss_mb())
        return 0

    results = measure(
        load_template(TEMPLATE_PATH), load_table(ROOT / "bench" / "prices.json"), args.quick
    )
    write_json(args.out, results)
    print("\n".join(summary_lines(results)))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
