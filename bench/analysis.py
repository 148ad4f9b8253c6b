"""Parts 4 and 5: capacity per shard and cost per million transactions from the measured figures.

Everything here is derived: the measured CPU and I/O per batch, the counted calls, units and
bytes, the template's configuration and bench/prices.json go through bench/model.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from bench.model import (
    KB,
    MAX_TRANSACTION_ACTIONS,
    STORAGE_OVERHEAD_BYTES,
    TRANSACTIONAL_WRITE_FACTOR,
    DriftProfile,
    FeatureLogUsage,
    FunctionProfile,
    LabelUsage,
    Scenario,
    StoredKind,
    Usage,
    break_even_rate,
    cost_per_million,
    count_items_per_hour,
    cpu_share,
    endpoint_per_million,
    fit_line,
    item_size,
    limit,
    memory_to_sustain,
    per_record_rate,
    price,
    read_units,
    shard_write_limit,
)

RATES_TPS = (10, 100, 1000)
STREAM_MODES = ("ON_DEMAND", "ON_DEMAND_ADVANTAGE", "PROVISIONED")
ENDPOINT_INSTANCES = 2  # two instances in two Availability Zones, as AWS recommends for production
TEMPLATE_SIZES = ("10", "100", "500", "1000")


def _points(section: Mapping[str, Any], figure: Any) -> tuple[tuple[float, float], ...]:
    return tuple((float(size), figure(section[size])) for size in TEMPLATE_SIZES)


INIT_PHASES = ("imports_ms", "model_load_ms", "init_ms")


def init_ms(cold: Mapping[str, Any], function: str) -> float:
    """The INIT phase of one cold start as part 2 measured it (medians): the interpreter's
    start-up, the handler module's imports, its model load and the rest of its body. The
    first batch is the INVOKE phase, billed as any batch."""
    if function not in cold:
        return 0.0
    phases = cold[function]
    startup = cold.get("interpreter_startup_ms", {}).get("median", 0.0)
    return float(startup + sum(phases[p]["median"] for p in INIT_PHASES if p in phases))


def function_profile(
    name: str,
    cpu: Mapping[str, Any],
    values: Mapping[str, str],
    prefix: str,
    stat: str = "median",
    init: float = 0.0,
) -> FunctionProfile:
    """The consumer as configured in the template, with its CPU per batch at `stat` (median,
    min or max over the measured batches) and its INIT phase (ms here, `init`)."""
    return FunctionProfile(
        name=name,
        memory_mb=int(values[f"{prefix}MemorySize"]),
        batch_size=int(values[f"{prefix}BatchSize"]),
        batching_window_s=float(values[f"{prefix}MaximumBatchingWindowInSeconds"]),
        parallelization=int(values[f"{prefix}ParallelizationFactor"]),
        cpu_ms_per_batch=tuple(
            (float(size), cpu[size]["cpu_us_per_record"]["handler"][stat] * int(size) / 1000)
            for size in TEMPLATE_SIZES
        ),
        io_ms_per_batch=_points(cpu["io_path"], lambda row: row["io_ms_per_batch"]["median"]),
        log_bytes_per_batch=_points(cpu, lambda row: row["log_bytes_per_batch"]["median"]),
        init_ms=init,
        traced=values.get("Tracing", "Active") == "Active",
    )


def drift_profile(
    drift: Mapping[str, Any], values: Mapping[str, str], init: float = 0.0
) -> DriftProfile | None:
    """The drift check's fixed and per-item cost, fitted over the measured window sizes; None
    when it was not measured (handler_cpu.drift_cpu skipped it)."""
    if "skipped" in drift:
        return None
    sizes = sorted(drift, key=int)
    cpu_fixed, cpu_per_item = fit_line(
        [(int(n), drift[n]["cpu_ms_per_check"]["median"]) for n in sizes]
    )
    io_fixed, io_per_item = fit_line(
        [(int(n), drift[n]["io_ms_per_check"]["median"]) for n in sizes]
    )
    return DriftProfile(
        memory_mb=int(values["DriftCheckMemorySize"]),
        checks_per_hour=checks_per_hour(values["DriftSchedule"]),
        window_hours=int(values["DriftWindowMinutes"]) / 60,
        cpu_ms_fixed=max(0.0, cpu_fixed),
        cpu_us_per_item=cpu_per_item * 1000,
        io_ms_fixed=max(0.0, io_fixed),
        io_ms_per_item=max(0.0, io_per_item),
        timeout_s=float(values["DriftCheckTimeout"]),
        init_ms=init,
    )


def checks_per_hour(schedule: str) -> float:
    """Runs per hour of a rate(...) expression; cron expressions count as hourly."""
    match = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", schedule)
    if not match:
        return 1.0
    amount, unit = int(match[1]), match[2].rstrip("s")
    return {"minute": 60.0, "hour": 1.0, "day": 1 / 24}[unit] / amount


PER_TRANSACTION_TABLES = (
    "EntityStateTable",
    "FeaturesTable",
    "PredictionsTable",
    "QuarantineTable",
)


def _tables_used(function: Mapping[str, Any]) -> int:
    return len({*function["wru"], *function["rru"]})


def usage(
    calls: Mapping[str, Any],
    template: Mapping[str, Any],
    sizes: Mapping[str, Any] | None = None,
    table: Mapping[str, Any] | None = None,
) -> Usage:
    """Per-transaction and per-chunk use from the calls part (calls.whole_path), and what the
    tables keep (stored_kinds; left out without `table`, whose limits it needs)."""
    per = calls["per_1000_transactions"]
    pre, sco = per["preprocess"], per["score"]
    drift = calls["drift_check_per_check"]
    resources = [r.get("Type") for r in template.get("Resources", {}).values()]
    wru = sum(f["wru"].get(t, 0.0) for f in (pre, sco) for t in PER_TRANSACTION_TABLES)
    rru = sum(f["rru"].get(t, 0.0) for f in (pre, sco) for t in PER_TRANSACTION_TABLES)
    chunks = calls["transaction_chunks"]
    predictions = chunks["score"].get("PredictionsTable", {})
    quarantine = chunks["preprocess"].get("QuarantineTable", {})
    updates = math.ceil(predictions.get("updates_per_transaction", 1.0))
    counts = calls["count_items"].get("PRED", {})
    base = Usage(
        records_per_transaction=calls["records_sent"] / calls["valid_transactions"],
        features_per_transaction=pre["stream_records"] / 1000,
        transaction_record_bytes=calls["transaction_record_bytes"],
        feature_record_bytes=calls["feature_record_bytes"],
        transaction_billed_kb=calls["transaction_billed_kb"],
        feature_billed_kb=calls["feature_billed_kb"],
        wru_per_transaction=wru / 1000,
        rru_per_transaction=rru / 1000,
        prediction_chunk_wru=predictions.get("count_update_wru_per_transaction", 0.0),
        predictions_per_chunk=MAX_TRANSACTION_ACTIONS - updates,
        quarantine_chunk_wru=quarantine.get("count_update_wru_per_transaction", 0.0),
        invalid_share=1 - calls["valid_transactions"] / calls["records_sent"],
        count_item_bytes=counts.get("mean_bytes", 0.0),
        alerts_per_transaction=sco["event_entries"] / 1000,
        drift_wru_per_check=drift["wru"].get("MonitoringTable", 0.0),
        drift_s3_puts_per_check=drift["objects_put"],
        drift_events_per_check=drift["event_entries"],
        custom_metrics=calls["custom_metrics"],
        alarms=resources.count("AWS::CloudWatch::Alarm"),
        dashboards=resources.count("AWS::CloudWatch::Dashboard"),
        kms_keys=resources.count("AWS::KMS::Key"),
        tables_preprocess=_tables_used(pre),
        tables_score=_tables_used(sco),
    )
    if table is None:
        return base
    stored = stored_kinds(base, calls, template, sizes or {}, table)
    predictions = next(k.bytes_per_item for k in stored if k.name == "predictions")
    labels = label_usage(template, sizes or {}, prediction_bytes=predictions)
    if labels is not None:
        stored += label_kinds(template, sizes or {}, labels, table)
    log = feature_log_usage(template, sizes or {}, base.feature_record_bytes)
    return Usage(**{**base.__dict__, "stored": stored, "labels": labels, "feature_log": log})


def feature_log_usage(
    template: Mapping[str, Any], sizes: Mapping[str, Any], feature_bytes: float
) -> FeatureLogUsage | None:
    """What the feature log uses, from the local run (part 7); None when it logged nothing.

    The local run's mapping reads every stream record (the emulator does not filter; on AWS
    the INSERT filter leaves one per transaction), so the handler time is per record read."""
    from embedded.template import parameter_values  # noqa: PLC0415 - local/ is a bench root

    run = sizes.get("feature_log_run") or {}
    mapping = run.get("mapping") or {}
    if not run.get("rows") or not mapping.get("records_read"):
        return None
    values = parameter_values(dict(template))
    return FeatureLogUsage(
        seconds_per_record=mapping["handler_seconds"] / mapping["records_read"],
        memory_mb=int(values["FeatureLogMemorySize"]),
        batch_size=int(values["FeatureLogBatchSize"]),
        window_s=float(values["FeatureLogMaximumBatchingWindowInSeconds"]),
        rru_per_record=read_units(round(feature_bytes), True),
        bytes_per_row=run["bytes"] / run["rows"],
        retention_days=float(values["FeatureLogRetentionDays"]),
    )


def full_quality_item_bytes(sizes: Mapping[str, Any]) -> float:
    """A QUAL count item of a busy hour: every attribute a label can add (core/quality.py) at
    five digits, on the largest QUAL item the local run measured (its keys and some counts):
    the size each label's Update is billed on."""
    from streamscore.core.quality import QUALITY_BINS, REVIEWED_DECLINE  # noqa: PLC0415

    names = [f"{m}{d}{b}" for m in "fl" for d in "ar" for b in range(QUALITY_BINS)]
    names += [f"{m}d_{d}" for m in "fl" for d in ("approve", "review", "decline")]
    names += ["u_fraud", "u_legit", f"f{REVIEWED_DECLINE}", f"l{REVIEWED_DECLINE}"]
    counted = item_size({f"q{name}": {"N": "99999"} for name in names})
    measured = sizes.get("kinds", {}).get("MonitoringTable:COUNT#QUAL", {}).get("max_bytes", 0)
    return float(counted + measured)


def label_usage(
    template: Mapping[str, Any], sizes: Mapping[str, Any], prediction_bytes: float
) -> LabelUsage | None:
    """What labels use, from the local run (part 7); None when it fed no labels."""
    from embedded.template import parameter_values  # noqa: PLC0415 - local/ is a bench root

    run = sizes.get("labels_run") or {}
    mapping = run.get("mapping") or {}
    stored = sizes.get("kinds", {}).get("LabelsTable", {})
    if not run.get("labels_sent") or not mapping.get("records_read") or not stored:
        return None
    values = parameter_values(dict(template))
    label_kb = math.ceil(stored["max_bytes"] / KB)
    quality_kb = math.ceil(full_quality_item_bytes(sizes) / KB)
    return LabelUsage(
        per_transaction=run["labels_sent"] / sizes["transactions"],
        record_billed_kb=1.0,  # a label record is ~150 bytes; on-demand bills each record's KB
        wru_per_label=TRANSACTIONAL_WRITE_FACTOR * (label_kb + quality_kb),
        rru_per_label=read_units(round(prediction_bytes), True) + read_units(None, True),
        seconds_per_label=mapping["handler_seconds"] / mapping["records_read"],
        memory_mb=int(values["LabelsMemorySize"]),
        batch_size=int(values["LabelsBatchSize"]),
        window_s=float(values["LabelsMaximumBatchingWindowInSeconds"]),
    )


def label_kinds(
    template: Mapping[str, Any],
    sizes: Mapping[str, Any],
    labels: LabelUsage,
    table: Mapping[str, Any],
) -> tuple[StoredKind, ...]:
    """LabelsTable's labels (LabelsTtlDays) and the QUAL count items (one per event hour and
    labels shard, as long as the longer of LabelsTtlDays and MonitoringTtlDays)."""
    from embedded.template import parameter_values  # noqa: PLC0415

    values = parameter_values(dict(template))
    lag = limit(table, "dynamodb_ttl_deletion_lag_days")
    labels_days = int(values["LabelsTtlDays"]) + lag
    counts_days = max(int(values["LabelsTtlDays"]), int(values["MonitoringTtlDays"])) + lag
    labels_pitr, _ = _table_setup(template, "LabelsTable")
    monitoring_pitr, _ = _table_setup(template, "MonitoringTable")
    return (
        StoredKind(
            name="labels",
            bytes_per_item=sizes["kinds"]["LabelsTable"]["mean_bytes"],
            retention_days=labels_days,
            per_transaction=labels.per_transaction,
            pitr=labels_pitr,
        ),
        StoredKind(
            name="quality count items",
            bytes_per_item=full_quality_item_bytes(sizes),
            retention_days=counts_days,
            per_hour=1.0,
            pitr=monitoring_pitr,
        ),
    )


def _table_setup(template: Mapping[str, Any], name: str) -> tuple[bool, bool]:
    """(point-in-time recovery on, a GSI projecting ALL) of one table in the template."""
    properties = template["Resources"][name]["Properties"]
    pitr = properties.get("PointInTimeRecoverySpecification", {})
    indexes = properties.get("GlobalSecondaryIndexes", [])
    projects_all = any(i.get("Projection", {}).get("ProjectionType") == "ALL" for i in indexes)
    if indexes and not projects_all:
        raise ValueError(f"{name}: only ALL projections are sized (an index item = the item)")
    return str(pitr.get("PointInTimeRecoveryEnabled", "false")).lower() == "true", projects_all


def stored_kinds(
    pipeline: Usage,
    calls: Mapping[str, Any],
    template: Mapping[str, Any],
    sizes: Mapping[str, Any],
    table: Mapping[str, Any],
) -> tuple[StoredKind, ...]:
    """What each table keeps, for how long, at what size.

    Sizes: the embedded local run's tables (part 7, `sizes`), but for two kinds it distorts
    by streaming weeks of simulated traffic in a minute: card states (each carries the pending
    feature records of its card's last batch, several there, one in a deployment) and count
    items (each covers minutes of predictions there, a busy hour in a deployment). Those two
    come from part 3, which seeds steady-state cards and writes one busy hour. Without part 7
    every size comes from part 3.

    Retention: each TTL of the template (the replay-safe ones raised to the stream retention
    plus a day, as the functions do: streamscore.core.settings.replay_safe_days) plus the deletion
    lag; card states are kept while the card transacts and state_ttl_days after."""
    from embedded.template import parameter_values  # noqa: PLC0415 - local/ is a bench root
    from streamscore.core.settings import replay_safe_days  # noqa: PLC0415
    from streamscore.preprocess.settings import PreprocessSettings  # noqa: PLC0415

    values = parameter_values(dict(template))
    kinds = sizes.get("kinds", {})
    moto = calls.get("item_bytes", {})
    retention_hours = int(values["StreamRetentionHours"])
    lag = limit(table, "dynamodb_ttl_deletion_lag_days")

    def measured(kind: str, table_name: str) -> tuple[float, float]:
        """(mean bytes, indexed share) from part 7, else part 3's mean (no index copy)."""
        row = kinds.get(kind)
        if row and row["items"]:
            return row["mean_bytes"], row["indexed_items"] / row["items"]
        return moto.get(table_name, {}).get("mean", 0.0), 0.0

    def replay_safe(parameter: str) -> float:
        return replay_safe_days(int(values[parameter]), retention_hours) + lag

    def kind(name: str, table_name: str, **fields: Any) -> StoredKind:
        pitr, indexed = _table_setup(template, table_name)
        share = fields.pop("indexed_share", 0.0)
        return StoredKind(name=name, pitr=pitr, indexed_share=share if indexed else 0.0, **fields)

    features_bytes, _ = measured("FeaturesTable", "FeaturesTable")
    prediction_bytes, _ = measured("PredictionsTable", "PredictionsTable")
    quarantine_bytes, _ = measured("QuarantineTable", "QuarantineTable")
    report_bytes, report_share = measured("MonitoringTable:REPORT", "")
    _, count_share = measured("MonitoringTable:COUNT#PRED", "")
    state_ttl = float(PreprocessSettings.model_fields["state_ttl_days"].default)
    active = limit(table, "card_active_days")
    per_day = limit(table, "card_transactions_per_day")
    monitoring_days = int(values["MonitoringTtlDays"]) + lag
    found = [
        kind(
            "feature records",
            "FeaturesTable",
            bytes_per_item=features_bytes,
            retention_days=replay_safe("FeaturesTtlDays"),
            per_transaction=pipeline.features_per_transaction,
        ),
        kind(
            "predictions",
            "PredictionsTable",
            bytes_per_item=prediction_bytes,
            retention_days=replay_safe("PredictionsTtlDays"),
            per_transaction=pipeline.features_per_transaction,
        ),
        kind(
            "quarantine items",
            "QuarantineTable",
            bytes_per_item=quarantine_bytes,
            retention_days=replay_safe("QuarantineTtlDays"),
            per_transaction=pipeline.records_per_transaction * pipeline.invalid_share,
        ),
        kind(
            # one item per card: per transaction, the days until the card's next one, plus
            # its share of the TTL the card's item waits out once the card goes quiet
            "card states",
            "EntityStateTable",
            bytes_per_item=moto.get("EntityStateTable", {}).get("mean", 0.0),
            retention_days=(active + state_ttl + lag) / (active * per_day),
            per_transaction=1.0,
        ),
        kind(
            "count items",
            "MonitoringTable",
            bytes_per_item=pipeline.count_item_bytes,
            retention_days=monitoring_days,
            count_items=True,
            indexed_share=count_share if kinds else 1.0,
        ),
    ]
    if report_bytes:
        found.append(
            kind(
                "drift reports",
                "MonitoringTable",
                bytes_per_item=report_bytes,
                retention_days=monitoring_days,
                per_hour=checks_per_hour(values["DriftSchedule"]),
                indexed_share=report_share,
            )
        )
    return tuple(found)


def storage_rows(
    pipeline: Usage, rate_tps: float, count_items_per_hour: float
) -> list[dict[str, Any]]:
    """Per stored kind: size, retention and GB held at a sustained rate (for the report)."""
    from bench.model import item_days, storage_gb_months  # noqa: PLC0415

    million_hours = 1e6 / (rate_tps * 3600)
    rows = []
    for kind in pipeline.stored:
        days = item_days(kind, million_hours, count_items_per_hour)
        table_gbm, index_gbm = storage_gb_months(kind, days)
        months = million_hours / (730.0)  # GB-months a million leaves / months it takes = GB held
        rows.append(
            {
                "kind": kind.name,
                "bytes_per_item": round(kind.bytes_per_item, 1),
                "billed_bytes_per_item": round(kind.bytes_per_item + STORAGE_OVERHEAD_BYTES, 1),
                "retention_days": round(kind.retention_days, 2),
                "indexed_share": round(kind.indexed_share, 3),
                "pitr": kind.pitr,
                "gb_held": round((table_gbm + index_gbm) / months, 4),
            }
        )
    return rows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value)


def capacity(
    preprocess: FunctionProfile,
    score: FunctionProfile,
    drift: DriftProfile | None,
    pipeline_usage: Usage,
    cpu: Mapping[str, Mapping[str, Any]],
    values: Mapping[str, str],
    table: Mapping[str, Any],
) -> dict[str, Any]:
    mb_per_vcpu = limit(table, "lambda_mb_per_vcpu")
    overhead = limit(table, "lambda_invoke_overhead_ms")
    latency = {op: spec["ms"] for op, spec in table["latency_ms_p50"].items()}
    records_limit = limit(table, "kinesis_shard_write_records_per_s")
    bytes_limit = limit(table, "kinesis_shard_write_bytes_per_s")
    u = pipeline_usage

    functions: dict[str, Any] = {}
    for profile, prefix, records_per_tx, per_record_latency in (
        (
            preprocess,
            "Preprocess",
            u.records_per_transaction,
            latency["GetItem"] + latency["PutItem"] + latency["PutRecord"] + latency["PutItem"],
        ),
        (
            score,
            "Score",
            u.features_per_transaction,
            latency["PutItem"] + u.alerts_per_transaction * latency["PutEvents"],
        ),
    ):
        n = profile.batch_size
        by_size = {
            size: round(profile.records_per_second(mb_per_vcpu, overhead, float(size)), 1)
            for size in TEMPLATE_SIZES
        }
        rate = profile.records_per_second(mb_per_vcpu, overhead)
        spread = [
            function_profile(profile.name, cpu[profile.name], values, prefix, stat)
            for stat in ("max", "min")  # most CPU gives the fewest records/s
        ]
        per_record_cpu = cpu[profile.name][str(n) if str(n) in cpu[profile.name] else "500"]
        functions[profile.name] = {
            "memory_mb": profile.memory_mb,
            "batch_size": n,
            "parallelization": profile.parallelization,
            "cpu_share_vcpu": round(cpu_share(profile.memory_mb, mb_per_vcpu), 3),
            "cpu_ms_per_batch_here": round(profile.cpu_ms(n), 1),
            "io_ms_per_batch": round(profile.io_ms(n), 1),
            "duration_ms_per_batch": round(profile.duration_ms(n, mb_per_vcpu), 1),
            "records_per_second": round(rate, 1),
            "records_per_second_range": [
                round(p.records_per_second(mb_per_vcpu, overhead), 1) for p in spread
            ],
            "transactions_per_second": round(rate / records_per_tx, 1),
            "records_per_second_by_batch_size": by_size,
            "per_record_version_records_per_second": round(
                per_record_rate(
                    per_record_cpu["cpu_us_per_record"]["per_record"]["median"],
                    per_record_latency,
                    profile.memory_mb,
                    mb_per_vcpu,
                ),
                1,
            ),
            "per_record_version_latency_ms_per_record": round(per_record_latency, 2),
            "memory_mb_to_sustain_shard_limit": _rounded(
                memory_to_sustain(profile, records_limit, mb_per_vcpu, overhead)
            ),
        }
    shard_limits = {
        "transactions_stream_records_per_second": round(
            shard_write_limit(u.transaction_record_bytes, records_limit, bytes_limit), 1
        ),
        "features_stream_records_per_second": round(
            shard_write_limit(u.feature_record_bytes, records_limit, bytes_limit), 1
        ),
    }
    in_transactions = {
        "TransactionsStream shard write limit": shard_limits[
            "transactions_stream_records_per_second"
        ]
        / u.records_per_transaction,
        "FeaturesStream shard write limit": shard_limits["features_stream_records_per_second"]
        / u.features_per_transaction,
        "PreprocessFunction": functions["preprocess"]["transactions_per_second"],
        "ScoreFunction": functions["score"]["transactions_per_second"],
    }
    bottleneck = min(in_transactions, key=lambda k: in_transactions[k])

    on_demand_shards = int(limit(table, "kinesis_on_demand_initial_shards"))
    full = preprocess.batch_size  # a busy shard: full batches
    per_hour_busy = count_items_per_hour(
        on_demand_shards, score.batch_size, on_demand_shards, full * 3600, u
    )
    drift_check: dict[str, Any] = {
        "window_hours": drift.window_hours if drift else int(values["DriftWindowMinutes"]) / 60,
        "count_items_per_hour_4_busy_shards": round(per_hour_busy, 1),
        "predictions_per_chunk": u.predictions_per_chunk,
    }
    if drift is None:
        drift_check["skipped"] = "the drift check was not measured (see cpu.drift_check)"
    else:
        timeout_ms = int(values["DriftCheckTimeout"]) * 1000
        share = cpu_share(drift.memory_mb, mb_per_vcpu)
        per_item_ms = drift.cpu_us_per_item / 1000 / share + drift.io_ms_per_item
        max_items = max(
            0.0, (timeout_ms - drift.cpu_ms_fixed / share - drift.io_ms_fixed) / per_item_ms
        )
        drift_check |= {
            "memory_mb": drift.memory_mb,
            "timeout_s": timeout_ms / 1000,
            "ms_per_window_item": round(per_item_ms, 3),
            "max_window_items_within_timeout": round(max_items),
            "seconds_at_4_busy_shards": round(
                (
                    drift.cpu_ms_fixed / share
                    + drift.io_ms_fixed
                    + per_item_ms * per_hour_busy * drift.window_hours
                )
                / 1000,
                1,
            ),
        }
    return {
        "functions": functions,
        "shard_limits": shard_limits,
        "transactions_per_second_per_shard": {k: round(v, 1) for k, v in in_transactions.items()},
        "bottleneck": bottleneck,
        "sustained_transactions_per_second_per_shard": round(in_transactions[bottleneck], 1),
        "drift_check": drift_check,
        "assumptions": [
            "duration = CPU measured here / min(1, memory / 1,769 MB) + time with an AWS call in "
            "flight (stated p50 latencies injected); no overlap of CPU and I/O is assumed "
            "(conservative), a Lambda vCPU is taken as fast as this machine's core",
            f"{overhead:.0f} ms between one batch's end and the next invocation of the shard (assumed)",
            "one batch in flight per shard (ParallelizationFactor from the template); records/s "
            "scale with it when partition keys spread",
        ],
    }


def cost(
    preprocess: FunctionProfile,
    score: FunctionProfile,
    drift: DriftProfile | None,
    pipeline_usage: Usage,
    table: Mapping[str, Any],
) -> dict[str, Any]:
    scenarios: dict[str, Any] = {}
    for mode in STREAM_MODES:
        for architecture in ("x86_64", "arm64"):
            for rate in RATES_TPS:
                key = f"{mode.lower()}/{architecture}/{rate}tps"
                scenarios[key] = cost_per_million(
                    Scenario(rate, architecture, mode),
                    preprocess,
                    score,
                    drift,
                    pipeline_usage,
                    table,
                )
    endpoints: dict[str, Any] = {}
    reference = scenarios["on_demand/x86_64/1000tps"]["usd_per_million"]["lambda_score"]
    for instance in ("ml_c5_large", "ml_m5_large"):
        hourly = price(table, f"sagemaker_{instance}_hour")
        endpoints[instance] = {
            "instances": ENDPOINT_INSTANCES,
            "usd_per_hour": round(ENDPOINT_INSTANCES * hourly, 3),
            "usd_per_month": round(ENDPOINT_INSTANCES * hourly * 730, 2),
            "usd_per_million": {
                f"{rate}tps": round(endpoint_per_million(rate, ENDPOINT_INSTANCES, hourly), 4)
                for rate in RATES_TPS
            },
            "break_even_tps_vs_score_function": round(
                break_even_rate(ENDPOINT_INSTANCES, hourly, reference), 1
            ),
        }
    drift_note = (
        [
            "the drift check is left out of the totals: it was not measured (it does not read "
            "the hourly count items yet); its window items are the count items it will read"
        ]
        if drift is None
        else []
    )
    busy = scenarios["on_demand/x86_64/1000tps"]
    return {
        "scenarios": scenarios,
        "endpoint": endpoints,
        "usage": asdict(pipeline_usage),
        "storage_at_1000tps": storage_rows(pipeline_usage, 1000, busy["count_items_per_hour"]),
        "init_ms": {
            "preprocess": round(preprocess.init_ms, 1),
            "score": round(score.init_ms, 1),
            "drift_check": None if drift is None else round(drift.init_ms, 1),
        },
        "notes": [
            *drift_note,
            "labels_*: the labels production sends back (reviews and chargebacks; the local "
            "run's share of its transactions): LabelsStream, its own stream (stream-hours on "
            "demand, one shard provisioned); LabelsFunction at the handler time per label the "
            "local run measured against moto (an upper bound: moto answers slower than "
            "DynamoDB), batches filled within LabelsMaximumBatchingWindowInSeconds; per label "
            "2 strongly consistent reads (prediction, stored label) and one transaction: the "
            "label Put and its quality count item's Update at that item's size when every "
            "attribute is counted (2 WRU per KB each); storage: labels for LabelsTtlDays, one "
            "quality count item per hour for the longer of LabelsTtlDays and MonitoringTtlDays",
            "DynamoDB: per transaction (card state with its pending feature record, the ledger "
            "reads, feature record, prediction created in a transaction at 2 WRU per KB, alert "
            "re-writes, quarantine items) plus the count-item Updates of every transaction "
            "(chunk): one set per score batch of up to 99 predictions, one per preprocess batch "
            "with a bad record",
            "dynamodb_storage: what the tables keep (Standard class, $0.25 per GB-month): each "
            "item's measured size + 100 bytes, for its TTL (replay-safe TTLs at least the "
            "stream retention + 1 day) + an assumed 2-day deletion lag, and again in WindowIndex "
            "for the items it projects (count items, drift reports); card states per card "
            "(1 transaction a day for 3 years, then the 400-day TTL: assumed). Storage per "
            "million does not depend on the rate, except the count items (per hour and shard)",
            "dynamodb_pitr: continuous backups on every table (template.yaml) priced on the "
            "tables' size without their index",
            "lambda_init: INIT billed since 1 August 2025 at the duration price; the INIT "
            "measured in part 2 (interpreter start-up, imports, model load, module body) per "
            "cold start; cold starts assumed: a stream consumer's environment (per shard) "
            "replaced every 2 hours, every hourly drift check cold",
            "kms: the key ($1 a month) and its yearly rotations ($1 a month each, capped at 2: "
            "the price from the third year on), plus requests at $0.03 per 10,000: Kinesis "
            "data keys per credential every ~5 minutes (documented), DynamoDB table keys per "
            "table and environment alike (assumed), one environment-variable Decrypt per cold "
            "start (assumed); SQS, S3 (bucket key) and CloudWatch Logs requests not modelled",
            "on_demand_advantage: the account-level On-demand Advantage mode: no stream-hours, "
            "ingest at $0.032 and retrieval at $0.016 per GB (the guide: 'at least 60% lower'), "
            "and a 25 MiB/s minimum throughput commitment (unverified) billed as ingest: "
            "kinesis_advantage_commitment is what the pipeline's traffic leaves unused, all of "
            "it charged here (an account whose other streams fill the commitment pays none)",
            "arm64 is priced at the x86_64 durations: its CPU speed was not measured",
            "rates are sustained valid transactions per second; on-demand streams start with "
            "4 shards, so batches fill to rate / 4 x the batching window",
            "the endpoint replaces only the model run: something must still consume "
            "FeaturesStream and write predictions (the score function without ONNX, or similar)",
            "not modelled: S3 storage, data transfer, extra DynamoDB overhead of transactions "
            "(undocumented), free tiers",
        ],
    }
