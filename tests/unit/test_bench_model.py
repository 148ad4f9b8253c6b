"""The benchmark's capacity and cost arithmetic (bench/model.py), checked against numbers worked by hand.

Nothing is timed here: the figures in, and the expected figures out, are fixed.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

# bench/ is a package at the repository root, next to the import roots pytest is given.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.analysis import checks_per_hour  # noqa: E402
from bench.model import (  # noqa: E402
    DriftProfile,
    FunctionProfile,
    LabelUsage,
    Scenario,
    StoredKind,
    Usage,
    batch_fill,
    break_even_rate,
    cost_per_million,
    cpu_share,
    endpoint_per_million,
    fit_line,
    interpolate,
    item_size,
    labels_cost,
    memory_to_sustain,
    per_record_rate,
    query_read_units,
    read_units,
    shard_write_limit,
    traces_sampled,
    write_units,
)

PRICE_NAMES = (
    "lambda_x86_64_gb_second",
    "lambda_arm64_gb_second",
    "lambda_request",
    "dynamodb_on_demand_write_request_unit",
    "dynamodb_on_demand_read_request_unit",
    "kinesis_on_demand_stream_hour",
    "kinesis_on_demand_ingest_gb",
    "kinesis_on_demand_retrieval_gb",
    "kinesis_provisioned_shard_hour",
    "kinesis_provisioned_put_payload_unit",
    "eventbridge_custom_event",
    "cloudwatch_logs_ingestion_gb",
    "cloudwatch_custom_metric_month",
    "cloudwatch_alarm_month",
    "cloudwatch_dashboard_month",
    "xray_trace_recorded",
    "s3_put_request",
    "kms_key_month",
    "kms_rotation_month",
    "kms_request",
    "dynamodb_storage_gb_month",
    "dynamodb_pitr_gb_month",
    "kinesis_on_demand_advantage_ingest_gb",
    "kinesis_on_demand_advantage_retrieval_gb",
)


def table(limits: dict[str, float] | None = None, **prices: float) -> dict[str, Any]:
    """A price table with every price 0 but the ones given, and round limits (cold starts,
    KMS refreshes and the Advantage commitment 0 unless given)."""
    return {
        "prices": {name: {"usd": prices.get(name, 0.0)} for name in PRICE_NAMES},
        "limits": {
            name: {"value": value}
            for name, value in {
                "lambda_mb_per_vcpu": 1024,
                "lambda_platform_log_bytes_per_invocation": 0,
                "kinesis_shard_write_records_per_s": 1000,
                "kinesis_shard_write_bytes_per_s": 1_048_576,
                "kinesis_on_demand_initial_shards": 4,
                "xray_reservoir_per_second": 1,
                "xray_sampled_share_beyond_reservoir": 0.05,
                "lambda_init_billed": 1,
                "lambda_cold_starts_per_environment_hour": 0,
                "lambda_drift_check_cold_share": 0,
                "kms_rotations_billed": 0,
                "kms_data_key_refreshes_per_hour": 0,
                "kinesis_on_demand_advantage_commitment_mib_s": 0,
                **(limits or {}),
            }.items()
        },
    }


def flat_profile(cpu_ms: float, io_ms: float, memory_mb: int = 1024) -> FunctionProfile:
    return FunctionProfile(
        name="f",
        memory_mb=memory_mb,
        batch_size=500,
        batching_window_s=1.0,
        parallelization=1,
        cpu_ms_per_batch=((1, cpu_ms), (1000, cpu_ms)),
        io_ms_per_batch=((1, io_ms), (1000, io_ms)),
    )


USAGE = Usage(
    records_per_transaction=1.0,
    features_per_transaction=1.0,
    transaction_record_bytes=200,
    feature_record_bytes=800,
    transaction_billed_kb=1,
    feature_billed_kb=1,
    wru_per_transaction=3.0,
    rru_per_transaction=2.0,
    prediction_chunk_wru=0.0,
    predictions_per_chunk=99,
    quarantine_chunk_wru=0.0,
    invalid_share=0.0,
    count_item_bytes=0.0,
    alerts_per_transaction=0.02,
    drift_wru_per_check=0.0,
    drift_s3_puts_per_check=0.0,
    drift_events_per_check=0.0,
    custom_metrics=0,
    alarms=0,
    dashboards=0,
    kms_keys=0,
)
NO_DRIFT = DriftProfile(
    memory_mb=1024,
    checks_per_hour=0.0,
    window_hours=24,
    cpu_ms_fixed=0,
    cpu_us_per_item=0,
    io_ms_fixed=0,
    io_ms_per_item=0,
)


def test_item_size_counts_names_values_and_nesting_as_dynamodb_documents() -> None:
    item = {
        "pk": {"S": "abc"},  # 2 + 3
        "n": {"N": "123.45"},  # 1 + (5 digits -> 3 bytes + 1)
        "flag": {"BOOL": True},  # 4 + 1
        "m": {"M": {"a": {"N": "1"}}},  # 1 + 3 + (1 + 1 + 2)
        "l": {"L": [{"S": "xy"}]},  # 1 + 3 + (1 + 2)
    }
    assert item_size(item) == 5 + 5 + 5 + 8 + 7


def test_numbers_are_sized_by_significant_digits() -> None:
    assert item_size({"x": {"N": "1000"}}) == 1 + 2  # one significant digit
    assert item_size({"x": {"N": "-0.001234"}}) == 1 + 3  # 1234: two bytes + 1


def test_request_units_round_up_per_item() -> None:
    assert [write_units(s) for s in (0, 1024, 1025, 3000)] == [1, 1, 2, 3]
    assert read_units(None, consistent=True) == 1.0  # a missing item still costs the minimum
    assert read_units(5000, consistent=True) == 2.0
    assert read_units(5000, consistent=False) == 1.0
    assert query_read_units([3000, 3000]) == 1.0  # 6,000 B -> 2 x 4 KB, halved (GSI)


def test_cpu_share_is_memory_over_1769_mb_at_most_one_vcpu() -> None:
    assert cpu_share(1024, 1769) == pytest.approx(0.5789, abs=1e-4)
    assert cpu_share(2048, 1769) == 1.0


def test_fit_line_and_interpolation() -> None:
    assert fit_line([(100, 30), (500, 110), (1000, 210)]) == pytest.approx((10.0, 0.2))
    points = ((100, 20.0), (500, 60.0), (1000, 100.0))
    assert interpolate(points, 300) == pytest.approx(40.0)
    assert interpolate(points, 10) == 20.0
    assert interpolate(points, 5000) == 100.0


def test_batch_duration_and_records_per_second() -> None:
    profile = FunctionProfile(
        name="f",
        memory_mb=1769,
        batch_size=500,
        batching_window_s=1.0,
        parallelization=1,
        cpu_ms_per_batch=((100, 30), (500, 110), (1000, 210)),
        io_ms_per_batch=((100, 20), (500, 60), (1000, 100)),
    )
    assert profile.duration_ms(500, 1769) == pytest.approx(170.0)
    # 500 records in 170 ms + 30 ms between batches
    assert profile.records_per_second(1769, 30) == pytest.approx(2500.0)
    half = FunctionProfile(**{**profile.__dict__, "memory_mb": 884.5, "parallelization": 2})
    assert half.duration_ms(500, 1769) == pytest.approx(110 / 0.5 + 60)
    assert half.records_per_second(1769, 20) == pytest.approx(2 * 500 / 0.3)


def test_per_record_consumer_and_shard_limits() -> None:
    assert per_record_rate(1000, 24, 1769, 1769) == pytest.approx(40.0)  # 1 ms CPU + 24 ms calls
    assert shard_write_limit(200, 1000, 1_048_576) == 1000  # records bind
    assert shard_write_limit(2048, 1000, 1_048_576) == 512  # bytes bind


def test_xray_samples_one_a_second_then_five_percent() -> None:
    prices = table()
    assert traces_sampled(0.5, prices) == 0.5
    assert traces_sampled(11, prices) == pytest.approx(1.5)


def test_batches_fill_to_what_one_window_gathers() -> None:
    profile = flat_profile(10, 10)
    assert batch_fill(250, profile) == 250
    assert batch_fill(2000, profile) == 500
    assert batch_fill(0.1, profile) == 1.0


def test_lambda_dynamodb_and_provisioned_kinesis_cost_per_million() -> None:
    prices = table(
        lambda_x86_64_gb_second=0.0000166667,
        lambda_request=0.0000002,
        dynamodb_on_demand_write_request_unit=0.000000625,
        dynamodb_on_demand_read_request_unit=0.000000125,
        kinesis_provisioned_shard_hour=0.015,
        kinesis_provisioned_put_payload_unit=0.000000014,
        eventbridge_custom_event=0.000001,
    )
    # 100 tx/s on one shard per stream, 1 s window: batches of 100, 10,000 invocations a
    # million; 50 ms CPU at a full vCPU (1024 MB, 1024 MB per vCPU here) + 50 ms I/O = 0.1 s
    result = cost_per_million(
        Scenario(100, "x86_64", "PROVISIONED"),
        flat_profile(50, 50),
        flat_profile(50, 50),
        NO_DRIFT,
        USAGE,
        prices,
    )
    parts = result["usd_per_million"]
    assert result["preprocess_batch_fill"] == 100
    assert result["shards"] == {"transactions": 1, "features": 1}
    # 10,000 x 0.1 s x 1 GB x price + 10,000 requests
    assert parts["lambda_preprocess"] == pytest.approx(0.0166667 + 0.002, abs=1e-4)
    # 3 WRU at $0.625/M + 2 RRU at $0.125/M
    assert parts["dynamodb"] == pytest.approx(1.875 + 0.25)
    # 2 shards x $0.015 x 2.78 h a million + 2 PUT payload units per transaction
    assert parts["kinesis"] == pytest.approx(0.03 * 1e6 / 360_000 + 2 * 0.014, abs=1e-4)
    assert parts["eventbridge"] == pytest.approx(0.02)


def test_on_demand_streams_start_with_four_shards_and_bill_per_kb() -> None:
    prices = table(
        kinesis_on_demand_stream_hour=0.04,
        kinesis_on_demand_ingest_gb=0.08,
        kinesis_on_demand_retrieval_gb=0.04,
    )
    result = cost_per_million(
        Scenario(1000, "arm64", "ON_DEMAND"),
        flat_profile(50, 50),
        flat_profile(50, 50),
        NO_DRIFT,
        USAGE,
        prices,
    )
    assert result["shards"] == {"transactions": 4, "features": 4}
    assert result["preprocess_batch_fill"] == 250  # 1,000 tx/s over 4 shards, 1 s window
    # 2 KB a transaction in and out: 2e6 KB = 1.9073 GB x $0.12, + 2 streams x $0.04 x 0.2778 h
    expected = 2e6 / 1024**2 * 0.12 + 0.08 * 1e6 / 3_600_000
    assert result["usd_per_million"]["kinesis"] == pytest.approx(expected, abs=1e-4)


def test_endpoint_cost_and_break_even() -> None:
    assert endpoint_per_million(100, 2, 0.1) == pytest.approx(0.2 / 0.36)
    assert break_even_rate(2, 0.1, 0.02) == pytest.approx(0.2 / (0.02 * 0.0036))


def test_drift_schedule_rates() -> None:
    assert checks_per_hour("rate(1 hour)") == 1.0
    assert checks_per_hour("rate(15 minutes)") == 4.0
    assert checks_per_hour("rate(1 day)") == pytest.approx(1 / 24)


def test_memory_a_consumer_needs_to_keep_up_with_a_full_shard() -> None:
    profile = FunctionProfile(
        name="f",
        memory_mb=1024,
        batch_size=500,
        batching_window_s=1.0,
        parallelization=1,
        cpu_ms_per_batch=((100, 30), (500, 110), (1000, 210)),
        io_ms_per_batch=((100, 20), (500, 60), (1000, 100)),
    )
    # 500 records in 500 ms: 500 - 60 ms I/O - 20 ms gap leaves 420 ms for 110 ms of CPU
    assert memory_to_sustain(profile, 1000, 1769, 20) == pytest.approx(110 / 420 * 1769)
    heavy = FunctionProfile(**{**profile.__dict__, "cpu_ms_per_batch": ((1, 500), (1000, 500))})
    assert memory_to_sustain(heavy, 1000, 1769, 20) is None  # 500 ms of CPU in a 420 ms budget


# ----------------------------------------------------------------------------- transactions


def test_transactional_writes_cost_twice_per_kb_as_prices_json_says() -> None:
    from bench.model import TRANSACTIONAL_WRITE_FACTOR, load_table  # noqa: PLC0415

    prices = load_table(ROOT / "bench" / "prices.json")
    assert prices["limits"]["dynamodb_transactional_write_factor"]["value"] == 2
    assert TRANSACTIONAL_WRITE_FACTOR == 2
    assert [write_units(s, TRANSACTIONAL_WRITE_FACTOR) for s in (200, 1024, 1025)] == [2, 2, 4]


def test_conditions_as_the_handlers_write_them() -> None:
    from bench.expressions import condition_holds  # noqa: PLC0415

    stored = {"transaction_id": {"S": "t1"}, "model_version": {"S": "v1"}}
    new_or_other = "attribute_not_exists(transaction_id) OR model_version <> :version"
    assert condition_holds(new_or_other, None, values={":version": {"S": "v1"}})
    assert not condition_holds(new_or_other, stored, values={":version": {"S": "v1"}})
    assert condition_holds(new_or_other, stored, values={":version": {"S": "v2"}})
    assert condition_holds(
        "NOT contains(sent, :id) AND (attribute_not_exists(#s) OR n < :n)",
        {"sent": {"SS": ["a"]}, "s": {"S": "x"}, "n": {"N": "2"}},
        {"#s": "s"},
        {":id": {"S": "b"}, ":n": {"N": "10"}},
    )


def test_count_updates_add_numbers_and_set_attributes() -> None:
    from bench.expressions import apply_update  # noqa: PLC0415

    key = {"pk": {"S": "COUNT#PRED#v1#2026-03-04T19#s#0"}, "sk": {"S": "COUNT"}}
    expression = "ADD #a0 :a0, #a1 :a1 SET kind = :kind, #hour = :hour"
    names = {"#a0": "n", "#a1": "d_approve", "#hour": "hour"}
    values = {
        ":a0": {"N": "3"},
        ":a1": {"N": "2"},
        ":kind": {"S": "PRED"},
        ":hour": {"S": "2026-03-04T19"},
    }
    once = apply_update(None, key, expression, names, values)
    twice = apply_update(once, key, expression, names, values)
    assert twice["n"] == {"N": "6"} and twice["d_approve"] == {"N": "4"}
    assert twice["kind"] == {"S": "PRED"} and twice["pk"] == key["pk"]


def test_fake_aws_cancels_a_transaction_whose_put_exists_as_dynamodb_does() -> None:
    import boto3  # noqa: PLC0415
    from botocore.exceptions import ClientError  # noqa: PLC0415

    from bench.fake_aws import FakeAWS  # noqa: PLC0415

    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    fake = FakeAWS({"facts": ("id",), "counts": ("pk", "sk")}).attach(client)

    def create(fact_id: str) -> None:
        client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": "facts",
                        "Item": {"id": {"S": fact_id}},
                        "ConditionExpression": "attribute_not_exists(id)",
                    }
                },
                {
                    "Update": {
                        "TableName": "counts",
                        "Key": {"pk": {"S": "h"}, "sk": {"S": "COUNT"}},
                        "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
            ]
        )

    create("a")
    with pytest.raises(ClientError) as raised:
        create("a")
    response = raised.value.response
    assert response["Error"]["Code"] == "TransactionCanceledException"
    reasons = response["CancellationReasons"]  # type: ignore[typeddict-item]
    assert [r["Code"] for r in reasons] == ["ConditionalCheckFailed", "None"]
    create("b")
    assert fake.items["counts"][("h", "COUNT")]["n"] == {"N": "2"}  # nothing of the cancelled one
    assert fake.cancelled == 1


def test_score_batches_write_a_transaction_per_99_predictions_and_its_count_updates() -> None:
    from bench.model import batches_with_invalid, count_items_per_hour, prediction_chunks  # noqa: PLC0415

    assert [prediction_chunks(n, 99) for n in (1, 99, 100, 500)] == [1, 1, 2, 6]
    assert batches_with_invalid(1, 0.01) == pytest.approx(0.01)
    assert batches_with_invalid(500, 0.01) == pytest.approx(1 - 0.99**500)
    usage = Usage(**{**USAGE.__dict__, "invalid_share": 0.01})
    # 4 feature shards x 6 slots, and 4 transaction shards that each saw a bad record
    assert count_items_per_hour(4, 500, 4, 1e6, usage) == pytest.approx(28.0)


def test_dynamodb_cost_adds_the_count_updates_of_every_transaction() -> None:
    prices = table(dynamodb_on_demand_write_request_unit=0.000001)
    usage = Usage(
        **{
            **USAGE.__dict__,
            "wru_per_transaction": 0.0,
            "rru_per_transaction": 0.0,
            "prediction_chunk_wru": 2.0,
            "quarantine_chunk_wru": 2.0,
            "invalid_share": 0.0,
        }
    )
    # 1,000 tx/s over 4 on-demand shards, 1 s window: score batches of 250, 4,000 a million,
    # each 3 transactions of up to 99 predictions, each transaction's count Update 2 WRU
    result = cost_per_million(
        Scenario(1000, "x86_64", "ON_DEMAND"),
        flat_profile(1, 1),
        flat_profile(1, 1),
        None,
        usage,
        prices,
    )
    assert result["score_batch_fill"] == 250
    assert result["count_update_wru_per_million"] == pytest.approx(4000 * 3 * 2)
    assert result["usd_per_million"]["dynamodb"] == pytest.approx(4000 * 3 * 2 * 0.000001)
    assert "drift_check" not in result["usd_per_million"]  # not measured: left out, not zero
    assert result["drift_window_items"] == 24 * 4 * 3  # the count items a day's window holds


def test_meter_charges_committed_transactions_twice_per_kb_updates_by_the_larger_item() -> None:
    import boto3  # noqa: PLC0415
    from botocore.exceptions import ClientError  # noqa: PLC0415

    from bench.calls import Meter, Shadow  # noqa: PLC0415
    from bench.common import NAMES  # noqa: PLC0415
    from bench.fake_aws import FakeAWS  # noqa: PLC0415

    facts, counts = NAMES["PredictionsTable"], NAMES["MonitoringTable"]
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    FakeAWS({facts: ("transaction_id",), counts: ("pk", "sk")}).attach(client)
    meter = Meter(Shadow({facts: ("transaction_id",), counts: ("pk", "sk")}))
    meter.attach(client)
    big = {f"b{i}": {"N": "1"} for i in range(200)}  # 200 x (2-3 + 2) bytes: over 1 KB

    def create(fact_id: str) -> None:
        client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": facts,
                        "Item": {"transaction_id": {"S": fact_id}},
                        "ConditionExpression": "attribute_not_exists(transaction_id)",
                    }
                },
                {
                    "Update": {
                        "TableName": counts,
                        "Key": {"pk": {"S": "h"}, "sk": {"S": "COUNT"}},
                        "UpdateExpression": "ADD " + ", ".join(f"{n} :one" for n in big),
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
            ]
        )

    create("a")
    with pytest.raises(ClientError):
        create("a")
    row = meter.transactions["PredictionsTable"]
    assert (row.calls, row.puts, row.updates, row.cancelled) == (1, 1, 1, 1)
    assert meter.wru["PredictionsTable"] == 2  # a small item, in a transaction
    assert meter.wru["MonitoringTable"] == 4  # the count item after the Update is over 1 KB
    assert meter.calls["dynamodb.TransactWriteItems"] == 2


# ----------------------------------------------------------------------------- prices.json


def test_every_price_has_a_source_an_as_of_date_and_how_it_was_checked() -> None:
    from datetime import date  # noqa: PLC0415

    from bench.model import load_table  # noqa: PLC0415

    prices = load_table(ROOT / "bench" / "prices.json")["prices"]
    assert set(PRICE_NAMES) <= set(prices), "the model uses a price prices.json lacks"
    for name, spec in prices.items():
        assert spec["source"].startswith("https://"), name
        assert date.fromisoformat(spec["as_of"]) <= date.today(), name  # known, not foreseen
        assert spec["checked"] in ("verified", "secondary", "unverified"), name
        assert spec["check"].strip(), f"{name}: say what the check found"


def test_storage_overhead_agrees_with_prices_json() -> None:
    from bench.model import STORAGE_OVERHEAD_BYTES, load_table  # noqa: PLC0415

    prices = load_table(ROOT / "bench" / "prices.json")
    assert prices["limits"]["dynamodb_item_storage_overhead_bytes"]["value"] == 100
    assert STORAGE_OVERHEAD_BYTES == 100


# ----------------------------------------------------------------------------- new rows


def stored(**fields: Any) -> StoredKind:
    return StoredKind(**{"name": "k", "bytes_per_item": 924.0, "retention_days": 30.0, **fields})


def storage_result(kinds: tuple[StoredKind, ...], **prices: float) -> dict[str, Any]:
    usage = Usage(**{**USAGE.__dict__, "stored": kinds})
    return cost_per_million(
        Scenario(100, "x86_64", "PROVISIONED"),
        flat_profile(1, 1),
        flat_profile(1, 1),
        None,
        usage,
        table(**prices),
    )


def test_storage_is_item_bytes_plus_overhead_times_retention_at_the_gb_month_price() -> None:
    # a million items of 924 + 100 bytes kept 30 days: 1e6 x 1024 B / 2^30 = 0.9537 GB for
    # 30 days = 0.9537 x 30 / 30.4167 GB-months, at $0.25 and again $0.20 for PITR
    result = storage_result(
        (stored(per_transaction=1.0),), dynamodb_storage_gb_month=0.25, dynamodb_pitr_gb_month=0.2
    )
    gb_months = 1e6 * 1024 / 1024**3 * 30 / (730 / 24)
    assert result["usd_per_million"]["dynamodb_storage"] == pytest.approx(
        0.25 * gb_months, abs=1e-4
    )
    assert result["usd_per_million"]["dynamodb_pitr"] == pytest.approx(0.2 * gb_months, abs=1e-4)


def test_storage_scales_with_item_size_and_retention_and_indexes_add_a_copy() -> None:
    def storage(**fields: Any) -> float:
        result = storage_result(
            (stored(per_transaction=1.0, **fields),), dynamodb_storage_gb_month=1
        )
        return float(result["usd_per_million"]["dynamodb_storage"])

    base = storage()
    assert base > 0
    assert storage(bytes_per_item=2 * 1024 - 100) == pytest.approx(2 * base, rel=1e-3)
    assert storage(retention_days=90.0) == pytest.approx(3 * base, rel=1e-3)
    assert storage(indexed_share=1.0) == pytest.approx(2 * base, rel=1e-3)  # ALL projection
    no_pitr = storage_result((stored(per_transaction=1.0, pitr=False),), dynamodb_pitr_gb_month=1)
    assert no_pitr["usd_per_million"]["dynamodb_pitr"] == 0


def test_count_item_storage_follows_the_hours_a_million_takes_and_the_writer_slots() -> None:
    # count items are per hour and writer slot, not per transaction. One shard a stream: at
    # 10 tx/s batches of 10 fill one slot, 1 item an hour, for the 27.8 h a million takes; at
    # 1,000 tx/s batches of 500 fill 6 slots, 6 items an hour, for 0.278 h
    item = stored(count_items=True, bytes_per_item=10**7 - 100)  # 10 MB: visible at 4 decimals
    usage = Usage(**{**USAGE.__dict__, "stored": (item,)})
    prices = table(dynamodb_storage_gb_month=1)

    def at(rate: float) -> float:
        result = cost_per_million(
            Scenario(rate, "x86_64", "PROVISIONED"),
            flat_profile(1, 1),
            flat_profile(1, 1),
            None,
            usage,
            prices,
        )
        return float(result["usd_per_million"]["dynamodb_storage"])

    def expected(items_per_hour: float, rate: float) -> float:
        hours = 1e6 / (rate * 3600)
        return items_per_hour * hours * 30 * 10**7 / 1024**3 / (730 / 24)

    assert at(1000) == pytest.approx(expected(6, 1000), abs=1e-4)
    assert at(10) == pytest.approx(expected(1, 10), abs=1e-4)


def init_result(cold_per_hour: float, init_ms: float = 600.0) -> dict[str, Any]:
    profile = FunctionProfile(**{**flat_profile(1, 1).__dict__, "init_ms": init_ms})
    return cost_per_million(
        Scenario(100, "x86_64", "PROVISIONED"),
        profile,
        profile,
        None,
        USAGE,
        table(
            {"lambda_cold_starts_per_environment_hour": cold_per_hour},
            lambda_x86_64_gb_second=0.0000166667,
        ),
    )


def test_init_billing_adds_cost_proportional_to_the_cold_start_rate() -> None:
    # 100 tx/s: a million takes 2.78 h; one shard per stream, two functions: at 0.5 cold
    # starts an environment-hour, 2.78 cold starts; each 0.6 s at 1 GB (1024 MB here is a vCPU)
    half = init_result(0.5)
    assert half["cold_starts_per_million"] == pytest.approx(2 * 0.5 * 1e6 / 360_000, abs=0.1)
    expected = 2 * 0.5 * 1e6 / 360_000 * 0.6 * 1.0 * 0.0000166667
    assert half["usd_per_million"]["lambda_init"] == pytest.approx(expected, abs=1e-4)
    assert init_result(1.0)["usd_per_million"]["lambda_init"] == pytest.approx(
        2 * half["usd_per_million"]["lambda_init"], abs=1e-4
    )
    assert init_result(0.0)["usd_per_million"]["lambda_init"] == 0


def test_init_is_billed_longer_on_a_smaller_cpu_share() -> None:
    profile = FunctionProfile(**{**flat_profile(1, 1).__dict__, "init_ms": 600.0, "memory_mb": 512})
    assert profile.init_duration_ms(1024) == pytest.approx(1200.0)


def test_kms_key_rotations_are_capped_and_requests_follow_the_callers() -> None:
    usage = Usage(**{**USAGE.__dict__, "kms_keys": 1, "tables_preprocess": 4, "tables_score": 3})
    limits = {"kms_rotations_billed": 2, "kms_data_key_refreshes_per_hour": 12}
    result = cost_per_million(
        Scenario(1000, "x86_64", "ON_DEMAND"),
        flat_profile(1, 1),
        flat_profile(1, 1),
        None,
        usage,
        table(limits, kms_key_month=1.0, kms_rotation_month=1.0, kms_request=0.000003),
    )
    # 4 shards a stream: Kinesis callers 1 producer + 4 readers + 4 writers + 4 readers, DynamoDB
    # 4 preprocess environments x 4 tables + 4 score environments x 3; 12 refreshes an hour
    per_hour = 12 * (13 + 28)
    hours = 1e6 / 3_600_000
    assert result["kms_requests_per_million"] == round(per_hour * hours)
    key = 3.0 / 730 * hours  # the key and two billed rotations, $3 a month
    assert result["usd_per_million"]["kms"] == pytest.approx(
        key + per_hour * hours * 0.000003, abs=1e-4
    )


def test_on_demand_advantage_has_no_stream_hours_and_bills_the_unused_commitment() -> None:
    prices = table(
        {"kinesis_on_demand_advantage_commitment_mib_s": 1},
        kinesis_on_demand_stream_hour=0.04,
        kinesis_on_demand_advantage_ingest_gb=0.032,
        kinesis_on_demand_advantage_retrieval_gb=0.016,
    )
    result = cost_per_million(
        Scenario(100, "x86_64", "ON_DEMAND_ADVANTAGE"),
        flat_profile(1, 1),
        flat_profile(1, 1),
        None,
        USAGE,
        prices,
    )
    parts = result["usd_per_million"]
    used_gb = 2e6 / 1024**2  # 2 KB a transaction, each once in and once out
    assert parts["kinesis"] == pytest.approx(used_gb * 0.048, abs=1e-4)  # no stream-hours
    committed_gb = 1 * 3600 / 1024 * 1e6 / 360_000  # 1 MiB/s for the 2.78 h a million takes
    assert parts["kinesis_advantage_commitment"] == pytest.approx(
        (committed_gb - used_gb) * 0.032, abs=1e-4
    )
    assert result["shards"] == {"transactions": 4, "features": 4}  # on-demand streams


def test_x_ray_is_charged_only_for_functions_traced() -> None:
    def xray(traced: bool) -> float:
        profile = FunctionProfile(**{**flat_profile(1, 1).__dict__, "traced": traced})
        result = cost_per_million(
            Scenario(10, "x86_64", "PROVISIONED"),
            profile,
            profile,
            None,
            USAGE,
            table(xray_trace_recorded=0.000005),
        )
        return float(result["usd_per_million"]["xray"])

    # 10 tx/s, one shard, a batch a second per function: every invocation within the
    # reservoir of 1 a second is sampled, 1e5 invocations a function per million
    assert xray(True) == pytest.approx(2 * 1e5 * 0.000005, rel=0.01)
    assert xray(False) == 0


LABELS = LabelUsage(
    per_transaction=0.01,
    record_billed_kb=1.0,
    wru_per_label=8.0,
    rru_per_label=2.0,
    seconds_per_label=0.002,
    memory_mb=512,
    batch_size=100,
    window_s=5.0,
)


def test_labels_cost_their_stream_function_and_reads_and_writes() -> None:
    prices = table(
        kinesis_on_demand_stream_hour=0.04,
        kinesis_on_demand_ingest_gb=0.08,
        kinesis_on_demand_retrieval_gb=0.04,
        kinesis_provisioned_shard_hour=0.015,
        kinesis_provisioned_put_payload_unit=1.4e-8,
        lambda_x86_64_gb_second=1.66667e-5,
        lambda_request=2e-7,
        dynamodb_on_demand_write_request_unit=6.25e-7,
        dynamodb_on_demand_read_request_unit=1.25e-7,
    )
    p = {name: spec["usd"] for name, spec in prices["prices"].items()}

    # 10 tx/s: 0.1 labels a second, half a label per 5 s window: batches of 1
    slow = labels_cost(Scenario(10, "x86_64", "ON_DEMAND"), LABELS, 1e6 / 36_000, p)
    # 1,000 tx/s on 2 shards: 5 labels a second each, 25 per window: batches of 25
    busy = labels_cost(Scenario(1000, "x86_64", "PROVISIONED"), LABELS, 1e6 / 3_600_000, p, 2)

    labels = 10_000  # a million transactions
    assert slow["labels_stream"] == pytest.approx(
        labels * 1024 / 1024**3 * 0.12 + 0.04 * 1e6 / 36_000
    )
    # 10,000 invocations of 1 label: 2 ms at 0.5 GB, plus the request
    assert slow["labels_lambda"] == pytest.approx(labels * (0.002 * 0.5 * 1.66667e-5 + 2e-7))
    # 400 invocations of 25 labels: 50 ms each
    assert busy["labels_lambda"] == pytest.approx(400 * (0.05 * 0.5 * 1.66667e-5 + 2e-7))
    assert busy["labels_stream"] == pytest.approx(labels * 1.4e-8 + 2 * 0.015 * 1e6 / 3_600_000)
    assert busy["labels_dynamodb"] == pytest.approx(labels * (8 * 6.25e-7 + 2 * 1.25e-7))
    assert slow["labels_dynamodb"] == busy["labels_dynamodb"]


def test_the_cost_per_million_adds_the_labels_when_they_are_modelled() -> None:
    scenario = Scenario(1000, "arm64", "ON_DEMAND")
    without = cost_per_million(
        scenario, flat_profile(50, 50), flat_profile(50, 50), NO_DRIFT, USAGE, table()
    )
    labelled = Usage(**{**USAGE.__dict__, "labels": LABELS})
    with_labels = cost_per_million(
        scenario, flat_profile(50, 50), flat_profile(50, 50), NO_DRIFT, labelled, table()
    )

    assert "labels_stream" not in without["usd_per_million"]
    assert {"labels_stream", "labels_lambda", "labels_dynamodb"} <= set(
        with_labels["usd_per_million"]
    )


def test_label_usage_from_the_local_run_and_the_busiest_quality_item() -> None:
    from bench.analysis import full_quality_item_bytes, label_kinds, label_usage  # noqa: PLC0415
    from embedded.template import load_template  # noqa: PLC0415

    template = load_template(ROOT / "template.yaml")
    sizes = {
        "transactions": 2000,
        "kinds": {
            "LabelsTable": {"items": 26, "mean_bytes": 480.0, "max_bytes": 530, "indexed_items": 0},
            "MonitoringTable:COUNT#QUAL": {"items": 5, "max_bytes": 400, "mean_bytes": 300.0},
        },
        "labels_run": {"labels_sent": 26, "mapping": {"records_read": 26, "handler_seconds": 0.13}},
    }

    usage = label_usage(template, sizes, prediction_bytes=900)

    assert usage is not None
    assert usage.per_transaction == pytest.approx(0.013)
    assert usage.seconds_per_label == pytest.approx(0.005)
    quality = full_quality_item_bytes(sizes)
    assert quality > 400 + 262 * 6  # every attribute: a name of 3-7 bytes and a number
    assert usage.wru_per_label == 2 * (1 + math.ceil(quality / 1024))
    assert usage.rru_per_label == 2  # the prediction and the label, 4 KB each, consistent
    assert (usage.batch_size, usage.window_s, usage.memory_mb) == (100, 5.0, 512)
    lag = table({"dynamodb_ttl_deletion_lag_days": 2})
    kinds = {k.name: k for k in label_kinds(template, sizes, usage, lag)}
    assert kinds["labels"].retention_days == 402 and kinds["labels"].per_transaction == 0.013
    assert kinds["quality count items"].per_hour == 1.0
    assert label_usage(template, {"kinds": {}}, prediction_bytes=900) is None
