"""The capacity and cost model: pure arithmetic on measured figures and the price/latency table.

Nothing here measures or calls AWS; tests/unit/test_bench_model.py checks it by hand.

Duration of one batch of n records in Lambda = CPU measured here / CPU share + time with an AWS
call in flight (measured with the stated p50 latencies injected). The CPU share is
memory / 1,769 MB, at most one vCPU: the handlers are Python (one thread holds the GIL) and run
ONNX Runtime on one thread. CPU speed of a Lambda vCPU is taken as that of this machine's core.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
KB = 1024
GB = 1024**3  # AWS bills "GB" of data and memory as 2^30 bytes
MIB = 1024**2
# Storage is billed on each item's size plus a fixed overhead, in the table and again in every
# index holding a copy. DynamoDB Developer Guide, "DynamoDB item sizes and formats": "All items
# in DynamoDB require 100 bytes of storage overhead for indexing."; "Global secondary indexes"
# (storage considerations): the space an index item uses is the base table's primary key, the
# index key attribute, the projected attributes and "100 bytes of overhead per index item".
# bench/prices.json carries the figure with its source (limits.dynamodb_item_storage_overhead_bytes).
STORAGE_OVERHEAD_BYTES = 100
# TransactWriteItems bills every action (Put, Update, Delete) at twice a plain write's units:
# 2 WRU per KB of each item (the DynamoDB Developer Guide, "Capacity unit consumption for write
# operations" and "Capacity management for transactions"). bench/prices.json carries the same
# figure with its source (limits.dynamodb_transactional_write_factor); a unit test checks both.
TRANSACTIONAL_WRITE_FACTOR = 2
MAX_TRANSACTION_ACTIONS = 100  # TransactWriteItems' limit


def load_table(path: Path) -> dict[str, Any]:
    table: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return table


def price(table: Mapping[str, Any], name: str) -> float:
    return float(table["prices"][name]["usd"])


def limit(table: Mapping[str, Any], name: str) -> float:
    return float(table["limits"][name]["value"])


def latencies_s(table: Mapping[str, Any]) -> dict[str, float]:
    return {op: spec["ms"] / 1000 for op, spec in table["latency_ms_p50"].items()}


# ----------------------------------------------------------------------------- DynamoDB units


def _number_size(text: str) -> int:
    mantissa = text.lower().split("e")[0].lstrip("+-").replace(".", "")
    digits = mantissa.strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def attribute_size(value: Mapping[str, Any]) -> int:  # noqa: PLR0911 - a return per type
    """Bytes of one attribute value in DynamoDB's accounting (names are counted by the caller).

    Strings and binary: their bytes; numbers: 1 byte per two significant digits + 1; booleans
    and null: 1; lists and maps: 3 bytes + 1 per element + the elements (and a map's keys).
    """
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner) if isinstance(inner, (bytes, bytearray)) else len(inner.encode())
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_size(v) for k, v in inner.items())
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(_number_size(s) for s in inner)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes of a wire-format item as DynamoDB counts them: names plus values."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def write_units(size: int, factor: int = 1) -> int:
    """WRUs of writing one item of `size` bytes (standard table class); `factor` 2 inside a
    transaction (TRANSACTIONAL_WRITE_FACTOR). A write replacing or updating an item is billed by
    the larger of the item before and after: the caller passes that one."""
    return factor * max(1, math.ceil(size / KB))


def read_units(size: int | None, consistent: bool) -> float:
    """RRUs of reading one item by key; None = not found (still the minimum charge)."""
    units = max(1, math.ceil((size or 0) / (4 * KB)))
    return float(units) if consistent else units / 2


def query_read_units(sizes: Sequence[int]) -> float:
    """RRUs of one Query page on a global secondary index (always eventually consistent)."""
    return max(1, math.ceil(sum(sizes) / (4 * KB))) / 2


def kinesis_billed_kb(size: int) -> int:
    """On-demand ingest and retrieval round each record up to a whole KB."""
    return max(1, math.ceil(size / KB))


# ----------------------------------------------------------------------------- capacity


def cpu_share(memory_mb: float, mb_per_vcpu: float) -> float:
    return min(1.0, memory_mb / mb_per_vcpu)


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y = a + b x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0
    return mean_y - slope * mean_x, slope


def interpolate(points: Sequence[tuple[float, float]], x: float) -> float:
    """Piecewise-linear through `points` (sorted by x), flat beyond both ends."""
    xs = [p[0] for p in points]
    if x <= xs[0]:
        return points[0][1]
    if x >= xs[-1]:
        return points[-1][1]
    i = bisect.bisect_right(xs, x)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


@dataclass(frozen=True)
class FunctionProfile:
    """One stream consumer: its configuration and what it was measured to cost per batch."""

    name: str
    memory_mb: int
    batch_size: int
    batching_window_s: float
    parallelization: int
    cpu_ms_per_batch: tuple[tuple[float, float], ...]  # (records, CPU ms here)
    io_ms_per_batch: tuple[tuple[float, float], ...]  # (records, ms with a call in flight)
    log_bytes_per_batch: tuple[tuple[float, float], ...] = ((1, 0.0),)
    init_ms: float = 0.0  # INIT phase here (imports, model load, module body), one vCPU
    traced: bool = True  # the template's Tracing is Active: X-Ray records sampled invocations

    def init_duration_ms(self, mb_per_vcpu: float) -> float:
        """Billed INIT duration of one cold start at the function's CPU share."""
        return self.init_ms / cpu_share(self.memory_mb, mb_per_vcpu)

    def cpu_ms(self, records: float) -> float:
        """CPU of a batch, piecewise-linear between the measured sizes, flat outside them
        (a batch smaller than the smallest measured one costs as much as that one)."""
        return interpolate(self.cpu_ms_per_batch, records)

    def io_ms(self, records: float) -> float:
        return interpolate(self.io_ms_per_batch, records)

    def duration_ms(self, records: float, mb_per_vcpu: float) -> float:
        """Billed duration of one invocation of `records` records."""
        share = cpu_share(self.memory_mb, mb_per_vcpu)
        return self.cpu_ms(records) / share + self.io_ms(records)

    def records_per_second(
        self, mb_per_vcpu: float, overhead_ms: float, records: float | None = None
    ) -> float:
        """Records/s one shard's consumer sustains with full batches (x the parallelization)."""
        n = records or self.batch_size
        return n / ((self.duration_ms(n, mb_per_vcpu) + overhead_ms) / 1000) * self.parallelization


def memory_to_sustain(
    profile: FunctionProfile, records_per_s: float, mb_per_vcpu: float, overhead_ms: float
) -> float | None:
    """Least memory (MB) at which one shard's consumer keeps up with `records_per_s` in full
    batches; None when even a whole vCPU does not."""
    n = profile.batch_size
    budget_ms = n / records_per_s * 1000 * profile.parallelization - profile.io_ms(n) - overhead_ms
    if budget_ms <= 0:
        return None
    share = profile.cpu_ms(n) / budget_ms
    return None if share > 1 else share * mb_per_vcpu


def per_record_rate(
    cpu_us_per_record: float,
    latency_ms_per_record: float,
    memory_mb: float,
    mb_per_vcpu: float,
) -> float:
    """Records/s of a record-at-a-time consumer: its calls one after the other."""
    per_record_ms = cpu_us_per_record / 1000 / cpu_share(memory_mb, mb_per_vcpu)
    return 1000 / (per_record_ms + latency_ms_per_record)


def shard_write_limit(record_bytes: float, records_per_s: float, bytes_per_s: float) -> float:
    """Records/s one shard accepts: 1,000 records/s or 1 MiB/s, whichever binds first."""
    return min(records_per_s, bytes_per_s / record_bytes)


# ----------------------------------------------------------------------------- cost


@dataclass(frozen=True)
class Usage:
    """What the pipeline uses per transaction and per batch (counted against moto)."""

    records_per_transaction: float  # TransactionsStream records (valid + invalid)
    features_per_transaction: float  # FeaturesStream records
    transaction_record_bytes: float
    feature_record_bytes: float
    transaction_billed_kb: float  # on-demand KB per transaction record (rounded up per record)
    feature_billed_kb: float
    # card states, feature records, predictions (transactional Puts and alert re-writes),
    # quarantine items (transactional Puts): everything written per transaction
    wru_per_transaction: float
    rru_per_transaction: float  # card states, the ledger, the stored-prediction lookup
    prediction_chunk_wru: float  # count-item Updates of one prediction transaction (chunk)
    predictions_per_chunk: int  # predictions one transaction holds (100 actions less its Updates)
    quarantine_chunk_wru: float  # count-item Updates of one preprocess quarantine transaction
    invalid_share: float  # share of TransactionsStream records that are quarantined
    count_item_bytes: float  # a prediction count item, as the drift check reads it
    alerts_per_transaction: float
    drift_wru_per_check: float
    drift_s3_puts_per_check: float
    drift_events_per_check: float
    custom_metrics: int
    alarms: int
    dashboards: int
    kms_keys: int = 1
    # what each table keeps (bench/storage.py measured the sizes); empty: storage not modelled
    stored: tuple[StoredKind, ...] = ()
    # tables each function's execution environments read or write (one KMS table key each)
    tables_preprocess: int = 0
    tables_score: int = 0
    labels: LabelUsage | None = None  # None: labels not modelled
    feature_log: FeatureLogUsage | None = None  # None: the feature log not modelled


@dataclass(frozen=True)
class LabelUsage:
    """What labels use: LabelsStream, LabelsFunction, and per label a read of its prediction and
    stored label and one transaction (the label Put and its quality count Update), measured on
    the embedded local run (bench/storage.py)."""

    per_transaction: float  # labels production sends per transaction (reviews, chargebacks)
    record_billed_kb: float  # on-demand KB per LabelsStream record (a label is under 1 KB)
    wru_per_label: float  # transactional: 2 x (the label item's KB + the QUAL item's KB)
    rru_per_label: float  # strongly consistent: the prediction's and the label's 4 KB units
    seconds_per_label: (
        float  # LabelsFunction's handler time per label, against moto (an upper bound)
    )
    memory_mb: int
    batch_size: int
    window_s: float  # LabelsMaximumBatchingWindowInSeconds: how long labels wait for a batch


@dataclass(frozen=True)
class FeatureLogUsage:
    """What the feature log uses: FeatureLogFunction on PredictionsTable's stream (INSERTs only:
    one record per transaction), a strongly consistent FeaturesTable read per record, an S3 PUT
    per batch, and the objects kept FeatureLogRetentionDays; measured on the local run."""

    seconds_per_record: float  # handler time per stream record, against moto (an upper bound)
    memory_mb: int
    batch_size: int
    window_s: float  # FeatureLogMaximumBatchingWindowInSeconds
    rru_per_record: float  # the feature record's 4 KB units, strongly consistent
    bytes_per_row: float  # gzip JSON lines, as stored
    retention_days: float


@dataclass(frozen=True)
class StoredKind:
    """One kind of item a table keeps until its TTL deletes it; storage is billed per GB-month.

    The item-days a million transactions leave are the items written times the days each is
    kept: per valid transaction (`per_transaction`), per hour whatever the traffic
    (`per_hour`, the drift reports), or per hourly count item (`count_items`: their number
    per hour depends on the shards and the batch fill, so the scenario supplies it)."""

    name: str
    bytes_per_item: float  # names + values as DynamoDB sizes them (measured)
    retention_days: float  # how long an item is billed: TTL (replay-safe) + the deletion lag
    per_transaction: float = 0.0
    per_hour: float = 0.0
    count_items: bool = False
    indexed_share: float = 0.0  # share of the items a GSI holds a copy of (projection ALL)
    pitr: bool = True  # point-in-time recovery on its table


def item_days(kind: StoredKind, million_hours: float, count_items_per_hour: float) -> float:
    """Item-days of storage a million transactions leave behind."""
    per_hour = kind.per_hour + (count_items_per_hour if kind.count_items else 0.0)
    return (1e6 * kind.per_transaction + million_hours * per_hour) * kind.retention_days


def storage_gb_months(
    kind: StoredKind, days: float, overhead: float = STORAGE_OVERHEAD_BYTES
) -> tuple[float, float]:
    """(table, index) GB-months of `days` item-days: each item's bytes plus the per-item
    overhead, in the table and, for the indexed share, once more in the index."""
    per_item = (kind.bytes_per_item + overhead) / GB
    table = days * per_item / DAYS_PER_MONTH
    return table, table * kind.indexed_share


def prediction_chunks(fill: float, per_chunk: int) -> int:
    """Transactions (each with its count Updates) a score batch of `fill` records writes."""
    return max(1, math.ceil(fill / per_chunk))


def batches_with_invalid(fill: float, invalid_share: float) -> float:
    """Share of preprocess batches of `fill` records with at least one record to quarantine:
    each of them writes one quarantine transaction with its count Updates."""
    return 1.0 - (1.0 - invalid_share) ** fill


def count_items_per_hour(
    feature_shards: int,
    score_fill: float,
    transaction_shards: int,
    records_per_shard_hour: float,
    usage: Usage,
) -> float:
    """Hourly count items one hour leaves: per FeaturesStream shard one per writer slot (the
    transactions of a batch), per TransactionsStream shard one when it saw a bad record."""
    predictions = feature_shards * prediction_chunks(score_fill, usage.predictions_per_chunk)
    quarantine = transaction_shards * (1.0 - (1.0 - usage.invalid_share) ** records_per_shard_hour)
    return predictions + quarantine


@dataclass(frozen=True)
class DriftProfile:
    memory_mb: int
    checks_per_hour: float
    window_hours: float
    cpu_ms_fixed: float
    cpu_us_per_item: float
    io_ms_fixed: float
    io_ms_per_item: float
    timeout_s: float = 900.0
    init_ms: float = 0.0  # INIT phase here, one vCPU


@dataclass(frozen=True)
class Scenario:
    rate_tps: float  # valid transactions per second, sustained
    architecture: str  # "x86_64" or "arm64"
    stream_mode: str  # "ON_DEMAND", "ON_DEMAND_ADVANTAGE" or "PROVISIONED"


def shards_needed(rate_records: float, record_bytes: float, table: Mapping[str, Any]) -> int:
    per_shard = shard_write_limit(
        record_bytes,
        limit(table, "kinesis_shard_write_records_per_s"),
        limit(table, "kinesis_shard_write_bytes_per_s"),
    )
    return max(1, math.ceil(rate_records / per_shard))


def traces_sampled(invocations_per_s: float, table: Mapping[str, Any]) -> float:
    """Traces/s X-Ray records of one function: the reservoir each second, a share of the rest."""
    reservoir = limit(table, "xray_reservoir_per_second")
    share = limit(table, "xray_sampled_share_beyond_reservoir")
    return min(invocations_per_s, reservoir) + share * max(0.0, invocations_per_s - reservoir)


def batch_fill(rate_per_shard: float, profile: FunctionProfile) -> float:
    """Records per invocation: a full batch, or what one batching window gathers."""
    return window_fill(rate_per_shard, profile.batch_size, profile.batching_window_s)


def kinesis_cost(
    scenario: Scenario,
    usage: Usage,
    shards: int,
    million_hours: float,
    p: Mapping[str, float],
    table: Mapping[str, Any],
) -> dict[str, float]:
    """USD per million transactions of both streams, by part, in the scenario's mode.

    On-demand Advantage is an account-level mode: no per-stream hours, lower per-GB prices,
    and a minimum throughput commitment (billed here as ingest at the Advantage price when the
    traffic stays below it); `commitment` is that shortfall, charged wholly to this pipeline."""
    billed_gb = (
        1e6
        * (
            usage.records_per_transaction * usage.transaction_billed_kb
            + usage.features_per_transaction * usage.feature_billed_kb
        )
        * KB
        / GB
    )
    if scenario.stream_mode == "PROVISIONED":
        units = 1e6 * (usage.records_per_transaction + usage.features_per_transaction)
        return {
            "kinesis": units * p["kinesis_provisioned_put_payload_unit"]
            + shards * p["kinesis_provisioned_shard_hour"] * million_hours
        }
    if scenario.stream_mode == "ON_DEMAND":
        return {
            "kinesis": billed_gb
            * (p["kinesis_on_demand_ingest_gb"] + p["kinesis_on_demand_retrieval_gb"])
            + 2 * p["kinesis_on_demand_stream_hour"] * million_hours
        }
    if scenario.stream_mode != "ON_DEMAND_ADVANTAGE":
        raise ValueError(f"unknown stream mode {scenario.stream_mode}")
    ingest = p["kinesis_on_demand_advantage_ingest_gb"]
    committed_gb = (
        limit(table, "kinesis_on_demand_advantage_commitment_mib_s") * MIB * 3600 / GB
    ) * million_hours
    return {
        "kinesis": billed_gb * (ingest + p["kinesis_on_demand_advantage_retrieval_gb"]),
        "kinesis_advantage_commitment": max(0.0, committed_gb - billed_gb) * ingest,
    }


def storage_cost(
    usage: Usage, million_hours: float, count_items_per_hour: float, p: Mapping[str, float]
) -> dict[str, float]:
    """USD per million transactions of what the tables keep: storage (tables and indexes) and
    point-in-time recovery (the tables that have it; priced on the table, not its indexes)."""
    storage = pitr = 0.0
    for kind in usage.stored:
        table_gbm, index_gbm = storage_gb_months(
            kind, item_days(kind, million_hours, count_items_per_hour)
        )
        storage += (table_gbm + index_gbm) * p["dynamodb_storage_gb_month"]
        pitr += table_gbm * p["dynamodb_pitr_gb_month"] if kind.pitr else 0.0
    return {"dynamodb_storage": storage, "dynamodb_pitr": pitr}


def cold_starts_per_hour(profile: FunctionProfile, shards: int, table: Mapping[str, Any]) -> float:
    """Cold starts an hour of a stream consumer: its environments (one per shard and
    parallelization slot while records flow) times how often one is replaced (assumed)."""
    per_environment = limit(table, "lambda_cold_starts_per_environment_hour")
    return shards * profile.parallelization * per_environment


def kms_requests_per_hour(
    preprocess: FunctionProfile,
    score: FunctionProfile,
    shards: tuple[int, int],
    usage: Usage,
    cold_starts: float,
    table: Mapping[str, Any],
) -> float:
    """KMS requests an hour made on the stack's key (modelled callers, assumed refresh rate).

    Kinesis asks KMS for a data key per credential about every five minutes (see
    limits.kms_data_key_refreshes_per_hour); DynamoDB's table keys are taken to be cached the
    same way, per table and caller. Callers: the producer (one credential), each shard's
    reader (the event source mapping), each preprocess environment writing FeaturesStream and
    each environment's tables; plus one Decrypt of the environment variables per cold start."""
    tx_shards, feature_shards = shards
    pre_environments = tx_shards * preprocess.parallelization
    score_environments = feature_shards * score.parallelization
    kinesis_callers = 1 + tx_shards + pre_environments + feature_shards
    dynamodb_callers = (
        pre_environments * usage.tables_preprocess + score_environments * usage.tables_score
    )
    refreshes = limit(table, "kms_data_key_refreshes_per_hour")
    return refreshes * (kinesis_callers + dynamodb_callers) + cold_starts


def window_fill(rate_per_shard: float, batch_size: int, window_s: float) -> float:
    """Records per invocation of a stream consumer: what one batching window gathers, at least
    one record, at most the batch size."""
    return max(1.0, min(float(batch_size), rate_per_shard * window_s))


def invocation_seconds(seconds_per_record: float, fill: float) -> float:
    """A batch's billed duration: its records' handler time, rounded up to the millisecond."""
    return math.ceil(seconds_per_record * fill * 1000) / 1000


def labels_cost(
    scenario: Scenario,
    labels: LabelUsage,
    million_hours: float,
    p: Mapping[str, float],
    shards: int = 1,
) -> dict[str, float]:
    """USD per million transactions of their labels: LabelsStream (its own stream: stream hours
    on demand; provisioned, `shards` shards: the template gives it TransactionsStream's
    ShardCount), LabelsFunction (labels spread over `shards`, each batch what one window
    gathers), and the labels' reads and writes."""
    count = 1e6 * labels.per_transaction
    rate = scenario.rate_tps * labels.per_transaction / shards  # labels a second per shard
    fill = window_fill(rate, labels.batch_size, labels.window_s)
    invocations = count / fill
    seconds = invocation_seconds(labels.seconds_per_label, fill)
    gb_second = p[f"lambda_{scenario.architecture}_gb_second"]
    billed_gb = count * labels.record_billed_kb * KB / GB
    if scenario.stream_mode == "PROVISIONED":
        stream = (
            count * p["kinesis_provisioned_put_payload_unit"]
            + shards * p["kinesis_provisioned_shard_hour"] * million_hours
        )
    elif scenario.stream_mode == "ON_DEMAND":
        stream = (
            billed_gb * (p["kinesis_on_demand_ingest_gb"] + p["kinesis_on_demand_retrieval_gb"])
            + p["kinesis_on_demand_stream_hour"] * million_hours
        )
    else:  # On-demand Advantage: per GB only (its commitment is the pipeline's, above)
        stream = billed_gb * (
            p["kinesis_on_demand_advantage_ingest_gb"]
            + p["kinesis_on_demand_advantage_retrieval_gb"]
        )
    return {
        "labels_stream": stream,
        "labels_lambda": invocations
        * (seconds * labels.memory_mb / 1024 * gb_second + p["lambda_request"]),
        "labels_dynamodb": count
        * (
            labels.wru_per_label * p["dynamodb_on_demand_write_request_unit"]
            + labels.rru_per_label * p["dynamodb_on_demand_read_request_unit"]
        ),
    }


def feature_log_cost(
    scenario: Scenario,
    log: FeatureLogUsage,
    million_hours: float,
    p: Mapping[str, float],
    stream_shards: int = 1,
) -> dict[str, float]:
    """USD per million transactions of the feature log: FeatureLogFunction (a batch per window or
    batch size, per stream shard; the stream's reads by Lambda are not charged:
    prices.dynamodb_streams_lambda_read), its FeaturesTable reads, a PUT per batch (one scored
    date), and storage for the retention (a million rows' bytes, kept that many months)."""
    rate = scenario.rate_tps / stream_shards  # records a second per stream shard
    fill = window_fill(rate, log.batch_size, log.window_s)
    invocations = 1e6 / fill
    seconds = invocation_seconds(log.seconds_per_record, fill)
    gb_second = p[f"lambda_{scenario.architecture}_gb_second"]
    months = log.retention_days / (HOURS_PER_MONTH / 24)
    return {
        "feature_log_lambda": invocations
        * (seconds * log.memory_mb / 1024 * gb_second + p["lambda_request"]),
        "feature_log_reads": 1e6 * log.rru_per_record * p["dynamodb_on_demand_read_request_unit"]
        + 1e6 * p["dynamodb_streams_lambda_read"],
        "feature_log_s3": invocations * p["s3_put_request"]
        + 1e6 * log.bytes_per_row / GB * months * p["s3_standard_gb_month"],
    }


def cost_per_million(
    scenario: Scenario,
    preprocess: FunctionProfile,
    score: FunctionProfile,
    drift: DriftProfile | None,
    usage: Usage,
    table: Mapping[str, Any],
) -> dict[str, Any]:
    """USD per million transactions at a sustained rate, by component, with the batch fill.

    `drift` None: the drift check was not measured (its component is left out, not zero)."""
    p = {name: float(spec["usd"]) for name, spec in table["prices"].items()}
    mb_per_vcpu = limit(table, "lambda_mb_per_vcpu")
    gb_second = p[f"lambda_{scenario.architecture}_gb_second"]
    rate = scenario.rate_tps
    million_hours = 1e6 / (rate * 3600)  # hours it takes to see a million transactions

    tx_shards = shards_needed(
        rate * usage.records_per_transaction, usage.transaction_record_bytes, table
    )
    feature_shards = shards_needed(
        rate * usage.features_per_transaction, usage.feature_record_bytes, table
    )
    if scenario.stream_mode != "PROVISIONED":  # both on-demand modes
        initial = int(limit(table, "kinesis_on_demand_initial_shards"))
        tx_shards, feature_shards = max(initial, tx_shards), max(initial, feature_shards)

    def lambda_part(
        profile: FunctionProfile, records_per_tx: float, shards: int
    ) -> dict[str, float]:
        fill = batch_fill(rate * records_per_tx / shards, profile)
        invocations = 1e6 * records_per_tx / fill
        seconds = math.ceil(profile.duration_ms(fill, mb_per_vcpu)) / 1000
        log_bytes = interpolate(profile.log_bytes_per_batch, fill) + limit(
            table, "lambda_platform_log_bytes_per_invocation"
        )
        cold_starts = cold_starts_per_hour(profile, shards, table) * million_hours
        init_seconds = math.ceil(profile.init_duration_ms(mb_per_vcpu)) / 1000
        return {
            "fill": fill,
            "invocations": invocations,
            "compute": invocations * seconds * profile.memory_mb / 1024 * gb_second,
            "requests": invocations * p["lambda_request"],
            "logs": invocations * log_bytes / GB * p["cloudwatch_logs_ingestion_gb"],
            "traces": profile.traced
            * traces_sampled(invocations / (million_hours * 3600), table)
            * million_hours
            * 3600
            * p["xray_trace_recorded"],
            "cold_starts": cold_starts,
            "init": cold_starts
            * init_seconds
            * profile.memory_mb
            / 1024
            * gb_second
            * limit(table, "lambda_init_billed"),
        }

    pre = lambda_part(preprocess, usage.records_per_transaction, tx_shards)
    sco = lambda_part(score, usage.features_per_transaction, feature_shards)

    # the drift check reads the hourly count items of its window, one Query per hour
    items_per_hour = count_items_per_hour(
        feature_shards,
        sco["fill"],
        tx_shards,
        rate * usage.records_per_transaction / tx_shards * 3600,
        usage,
    )
    items = items_per_hour * (drift.window_hours if drift else 24.0)
    drift_seconds: float | None = None
    drift_per_hour: float | None = None
    drift_init = drift_cold = 0.0
    if drift is not None:
        drift_seconds = (
            (drift.cpu_ms_fixed + drift.cpu_us_per_item * items / 1000)
            / cpu_share(drift.memory_mb, mb_per_vcpu)
            + drift.io_ms_fixed
            + drift.io_ms_per_item * items
        ) / 1000
        query_rru = drift.window_hours * query_read_units(
            [round(items_per_hour * usage.count_item_bytes)]
        )
        drift_per_hour = drift.checks_per_hour * (
            drift_seconds * drift.memory_mb / 1024 * gb_second
            + p["lambda_request"]
            + query_rru * p["dynamodb_on_demand_read_request_unit"]
            + usage.drift_wru_per_check * p["dynamodb_on_demand_write_request_unit"]
            + usage.drift_s3_puts_per_check * p["s3_put_request"]
            + usage.drift_events_per_check * p["eventbridge_custom_event"]
        )
        drift_cold = (
            drift.checks_per_hour * limit(table, "lambda_drift_check_cold_share") * million_hours
        )
        drift_init = (
            drift_cold
            * math.ceil(drift.init_ms / cpu_share(drift.memory_mb, mb_per_vcpu))
            / 1000
            * drift.memory_mb
            / 1024
            * gb_second
            * limit(table, "lambda_init_billed")
        )

    kinesis = kinesis_cost(scenario, usage, tx_shards + feature_shards, million_hours, p, table)
    monthly_fixed = (
        usage.custom_metrics * p["cloudwatch_custom_metric_month"]
        + usage.alarms * p["cloudwatch_alarm_month"]
        + usage.dashboards * p["cloudwatch_dashboard_month"]
    )
    kms_monthly = usage.kms_keys * (
        p["kms_key_month"] + limit(table, "kms_rotations_billed") * p["kms_rotation_month"]
    )
    cold_starts = (pre["cold_starts"] + sco["cold_starts"] + drift_cold) / million_hours
    kms_requests = (
        kms_requests_per_hour(
            preprocess, score, (tx_shards, feature_shards), usage, cold_starts, table
        )
        * million_hours
        if usage.kms_keys
        else 0.0
    )
    # per transaction, then the count-item Updates: one set per transaction (chunk) written
    count_wru = (
        sco["invocations"]
        * prediction_chunks(sco["fill"], usage.predictions_per_chunk)
        * usage.prediction_chunk_wru
        + pre["invocations"]
        * batches_with_invalid(pre["fill"], usage.invalid_share)
        * usage.quarantine_chunk_wru
    )
    dynamodb = (
        1e6 * usage.wru_per_transaction * p["dynamodb_on_demand_write_request_unit"]
        + 1e6 * usage.rru_per_transaction * p["dynamodb_on_demand_read_request_unit"]
        + count_wru * p["dynamodb_on_demand_write_request_unit"]
    )
    parts = {
        "lambda_preprocess": pre["compute"] + pre["requests"],
        "lambda_score": sco["compute"] + sco["requests"],
        "lambda_init": pre["init"] + sco["init"] + drift_init,
        "dynamodb": dynamodb,
        **storage_cost(usage, million_hours, items_per_hour, p),
        **kinesis,
        "eventbridge": 1e6 * usage.alerts_per_transaction * p["eventbridge_custom_event"],
        "cloudwatch_logs": pre["logs"] + sco["logs"],
        "xray": pre["traces"] + sco["traces"],
        "kms": kms_monthly / HOURS_PER_MONTH * million_hours + kms_requests * p["kms_request"],
        "monthly_fixed": monthly_fixed / HOURS_PER_MONTH * million_hours,
    }
    if drift_per_hour is not None:
        parts["drift_check"] = drift_per_hour * million_hours
    if usage.labels is not None:
        parts |= labels_cost(scenario, usage.labels, million_hours, p, tx_shards)
    if usage.feature_log is not None:
        parts |= feature_log_cost(scenario, usage.feature_log, million_hours, p, feature_shards)
    return {
        "usd_per_million": {k: round(v, 4) for k, v in parts.items()},
        "total_usd_per_million": round(sum(parts.values()), 4),
        "preprocess_batch_fill": round(pre["fill"], 1),
        "score_batch_fill": round(sco["fill"], 1),
        "shards": {"transactions": tx_shards, "features": feature_shards},
        "count_update_wru_per_million": round(count_wru, 1),
        "count_items_per_hour": round(items_per_hour, 2),
        "cold_starts_per_million": round(pre["cold_starts"] + sco["cold_starts"] + drift_cold, 1),
        "kms_requests_per_million": round(kms_requests),
        "drift_check_modelled": drift is not None,
        "drift_window_items": round(items),
        "drift_check_seconds": None if drift_seconds is None else round(drift_seconds, 2),
        "drift_check_times_out": drift is not None
        and drift_seconds is not None
        and drift_seconds > drift.timeout_s,
    }


def endpoint_per_million(rate_tps: float, instances: int, hourly_usd: float) -> float:
    """USD per million transactions of an always-on endpoint at a sustained rate."""
    return instances * hourly_usd / (rate_tps * 3600 / 1e6)


def break_even_rate(instances: int, hourly_usd: float, lambda_usd_per_million: float) -> float:
    """Transactions/s above which the endpoint's hours cost less than the Lambda's per-use bill."""
    return instances * hourly_usd / (lambda_usd_per_million * 3600 / 1e6)
