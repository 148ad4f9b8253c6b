"""Parts 4 and 5: capacity per shard and cost per million transactions from the measured figures.

Everything here is derived: the measured CPU and I/O per batch, the counted calls, units and
bytes, the template's configuration and bench/prices.json go through bench/model.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from bench.model import (
    MAX_TRANSACTION_ACTIONS,
    DriftProfile,
    FunctionProfile,
    Scenario,
    Usage,
    break_even_rate,
    cost_per_million,
    count_items_per_hour,
    cpu_share,
    endpoint_per_million,
    fit_line,
    limit,
    memory_to_sustain,
    per_record_rate,
    price,
    shard_write_limit,
)

RATES_TPS = (10, 100, 1000)
ENDPOINT_INSTANCES = 2  # two instances in two Availability Zones, as AWS recommends for production
TEMPLATE_SIZES = ("10", "100", "500", "1000")


def _points(section: Mapping[str, Any], figure: Any) -> tuple[tuple[float, float], ...]:
    return tuple((float(size), figure(section[size])) for size in TEMPLATE_SIZES)


def function_profile(
    name: str, cpu: Mapping[str, Any], values: Mapping[str, str], prefix: str, stat: str = "median"
) -> FunctionProfile:
    """The consumer as configured in the template, with its CPU per batch at `stat` (median,
    min or max over the measured batches)."""
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
    )


def drift_profile(drift: Mapping[str, Any], values: Mapping[str, str]) -> DriftProfile | None:
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


def usage(calls: Mapping[str, Any], template: Mapping[str, Any]) -> Usage:
    """Per-transaction and per-chunk use from the calls part (calls.whole_path)."""
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
    return Usage(
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
    )


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
    for mode in ("ON_DEMAND", "PROVISIONED"):
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
    return {
        "scenarios": scenarios,
        "endpoint": endpoints,
        "usage": pipeline_usage.__dict__,
        "notes": [
            *drift_note,
            "DynamoDB: per transaction (card state with its pending feature record, the ledger "
            "reads, feature record, prediction created in a transaction at 2 WRU per KB, alert "
            "re-writes, quarantine items) plus the count-item Updates of every transaction "
            "(chunk): one set per score batch of up to 99 predictions, one per preprocess batch "
            "with a bad record",
            "arm64 is priced at the x86_64 durations: its CPU speed was not measured",
            "rates are sustained valid transactions per second; on-demand streams start with "
            "4 shards, so batches fill to rate / 4 x the batching window",
            "the endpoint replaces only the model run: something must still consume "
            "FeaturesStream and write predictions (the score function without ONNX, or similar)",
            "not modelled: DynamoDB and S3 storage, data transfer, KMS requests, free tiers",
        ],
    }
