"""ScoreFunction: Kinesis batch of feature records → one ONNX run → predictions, alerts, histograms."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import boto3
import numpy as np
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from streamscore.adapters.dynamodb import BatchTable
from streamscore.adapters.events import EventPublisher
from streamscore.adapters.retry import Backoff, client_config
from streamscore.errors import SystemicError
from streamscore.fact_writer import DynamoFactWriter
from streamscore.observability import logger, metrics, tracer
from streamscore.records import batch_item_failures, parse_kinesis_event
from streamscore.score_batch import (
    ALERT_DETAIL_TYPE,
    ALERT_SOURCE,
    ScorePolicy,
    ScorePorts,
    score_batch,
)
from streamscore.scoring import load_model, resolve_thresholds
from streamscore.settings import ScoreSettings, load_settings
from streamscore.stores import (
    DynamoPredictionStore,
    DynamoQuarantineStore,
    EventBridgeAlertPublisher,
    prediction_condition,
)

# Latencies per batch as metric values; more are summarised as evenly spaced quantiles. Each
# value costs an add_metric call, and Powertools flushes a blob at 100 values of one metric.
MAX_LATENCY_VALUES = 20

settings = load_settings(ScoreSettings, os.environ)
model = load_model(settings.model_dir, settings.ort_intra_op_threads, settings.ort_inter_op_threads)
try:
    thresholds = resolve_thresholds(
        model.card.thresholds, settings.review_threshold, settings.decline_threshold
    )
except ValueError as error:
    raise SystemicError(f"invalid decision thresholds: {error}") from None
policy = ScorePolicy(
    thresholds=thresholds,
    alert_on_review=settings.alert_on_review,
    quarantine_ttl_days=settings.quarantine_ttl_days,
)
# Two pools: the batch's steps wait on the stores, which fan their calls out on the other.
io_executor = ThreadPoolExecutor(max_workers=settings.io_threads)
step_executor = ThreadPoolExecutor(max_workers=3)
backoff = Backoff()
config = client_config()  # no client-side parameter validation: see client_config
dynamodb = boto3.client("dynamodb", config=config)
events = boto3.client("events", config=config)


def _table(name: str, *keys: str) -> BatchTable:
    return BatchTable(dynamodb, name, keys, backoff=backoff, executor=io_executor)


def _facts(name: str, key: str, condition: Any = None) -> DynamoFactWriter:
    return DynamoFactWriter(
        dynamodb, name, key, settings.monitoring_table, condition, backoff, io_executor
    )


ports = ScorePorts(
    predictions=DynamoPredictionStore(
        _table(settings.predictions_table, "transaction_id"),
        _facts(settings.predictions_table, "transaction_id", prediction_condition),
        settings.predictions_ttl_days,
        settings.monitoring_ttl_days,
    ),
    alerts=EventBridgeAlertPublisher(
        EventPublisher(events, settings.event_bus_name, backoff), ALERT_SOURCE, ALERT_DETAIL_TYPE
    ),
    quarantine=DynamoQuarantineStore(
        _facts(settings.quarantine_table, "record_id"), settings.monitoring_ttl_days
    ),
)


# log_event=False even when POWERTOOLS_LOGGER_LOG_EVENT says true: the records' payloads
# may hold card numbers (in any field, ignored ones too), and logs must never carry them.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(model_version=model.model_version)
    records = parse_kinesis_event(event)
    pauses_before = backoff.pauses
    outcome = score_batch(
        records,
        model,
        ports,
        policy,
        clock=lambda: datetime.now(UTC),
        executor=step_executor,
    )
    metrics.add_metadata("model_version", model.model_version)
    # user records (an aggregate holds several), as RecordsIn counts them; a failure is
    # reported per Kinesis record, and fails every user record it holds
    failed_records = sum(1 for r in records if r.sequence_number in outcome.failed)
    metrics.add_metric("RecordsIn", MetricUnit.Count, outcome.records_in)
    metrics.add_metric("RecordsScored", MetricUnit.Count, outcome.scored)
    metrics.add_metric("RecordsAlreadyScored", MetricUnit.Count, outcome.already_scored)
    metrics.add_metric("RecordsDuplicate", MetricUnit.Count, outcome.duplicates)
    metrics.add_metric("RecordsFailed", MetricUnit.Count, failed_records)
    metrics.add_metric("RecordsQuarantined", MetricUnit.Count, sum(outcome.quarantined.values()))
    for reason, count in outcome.quarantined.items():
        metrics.add_metric(f"Quarantined_{reason}", MetricUnit.Count, count)
    for decision, count in outcome.decisions.items():
        metrics.add_metric(f"Decision_{decision}", MetricUnit.Count, count)
    metrics.add_metric("AlertsPublished", MetricUnit.Count, outcome.alerts)
    metrics.add_metric("Retries", MetricUnit.Count, backoff.pauses - pauses_before)
    metrics.add_metric("BatchInferenceMs", MetricUnit.Milliseconds, outcome.inference_ms)
    for value in _latency_values(outcome.latencies_ms):
        metrics.add_metric("EndToEndLatencyMs", MetricUnit.Milliseconds, value)
    logger.info(
        "batch scored",
        extra={
            "records_in": outcome.records_in,
            "scored": outcome.scored,
            "already_scored": outcome.already_scored,
            "duplicates": outcome.duplicates,
            "quarantined": dict(outcome.quarantined),
            "decisions": dict(outcome.decisions),
            "alerts": outcome.alerts,
            "failed": failed_records,
            "inference_ms": round(outcome.inference_ms, 2),
            "shard_id": records[0].shard_id if records else None,
            "first_sequence_number": records[0].sequence_number if records else None,
        },
    )
    return batch_item_failures(records, outcome.failed)


def _latency_values(latencies: list[int]) -> list[float]:
    """The batch's latencies, or evenly spaced quantiles of them when there are too many for one blob."""
    if len(latencies) <= MAX_LATENCY_VALUES:
        return [float(v) for v in latencies]
    quantiles = np.quantile(latencies, np.linspace(0, 1, MAX_LATENCY_VALUES))
    return [round(float(v), 1) for v in quantiles]
