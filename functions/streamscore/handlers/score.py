"""ScoreFunction: Kinesis batch of feature records → one ONNX run → predictions, alerts, histograms.

Settings, clients and the model are loaded once per container (the init phase);
`build` wires the stage to them, and `handler` wraps the wired stage in the
Powertools decorators. Tests and benchmarks call `build` and `handler` with their own
clients and backoff.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from streamscore.aws.clients import Clients
from streamscore.aws.dynamodb import BatchTable
from streamscore.aws.events import EventPublisher
from streamscore.aws.facts import DynamoFactWriter
from streamscore.aws.monitoring_stores import DynamoQuarantineStore
from streamscore.aws.registry import DynamoModelPointer, RegistryModelSource, S3ModelVersions
from streamscore.aws.retry import Backoff
from streamscore.aws.scoring_stores import (
    DynamoPredictionStore,
    EventBridgeAlertPublisher,
    prediction_condition,
)
from streamscore.core.errors import SystemicError
from streamscore.core.lambda_init import freeze_after_init
from streamscore.core.observability import logger, metrics, tracer
from streamscore.core.records import batch_item_failures, parse_kinesis_event
from streamscore.core.settings import load_settings
from streamscore.handlers.metrics import ScoreMetric as M
from streamscore.scoring.batch import ALERT_DETAIL_TYPE, ALERT_SOURCE, ScoreOutcome, Scorer
from streamscore.scoring.model import ScoringModel, load_model
from streamscore.scoring.ports import ScorePorts
from streamscore.scoring.serving import (
    POINTER_UNREADABLE,
    REFUSED,
    REVIEW_ONLY_SWITCHED,
    SWAPPED,
    THRESHOLDS_NOT_APPLIED,
    ModelEvent,
    ModelFollower,
    Served,
    thresholds_policy,
)
from streamscore.scoring.settings import ScoreSettings

# Latencies per batch as metric values; more are summarised as evenly spaced quantiles. Each
# value costs an add_metric call, and Powertools flushes a blob at 100 values of one metric.
MAX_LATENCY_VALUES = 20

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def build(
    settings: ScoreSettings,
    clients: Clients,
    backoff: Backoff,
    model: ScoringModel | None = None,
    io_executor: Executor | None = None,
    step_executor: Executor | None = None,
) -> Scorer:
    """The scoring stage on `clients` (dynamodb, events), retrying with `backoff`.

    `model` defaults to the one in `settings.model_dir`. Two pools: a batch's steps
    (`step_executor`, three) wait on the stores, which fan their calls out on
    `io_executor` (`settings.io_threads`).
    """
    clients.require("dynamodb", "events")

    def load(directory: str | Path) -> ScoringModel:
        return load_model(directory, settings.ort_intra_op_threads, settings.ort_inter_op_threads)

    model = model or load(settings.model_dir)
    try:
        model.check_countable()
    except ValueError as error:
        raise SystemicError(f"model {model.model_version}: {error}") from None
    policy_for = thresholds_policy(
        settings.review_threshold,
        settings.decline_threshold,
        settings.alert_on_review,
        settings.thresholds_model_version or model.model_version,
        settings.reason_count,
        settings.decline_sample_share,
    )
    try:
        policy, note = policy_for(model)
    except ValueError as error:
        raise SystemicError(f"invalid decision thresholds: {error}") from None
    if note:
        logger.warning("thresholds not applied", extra={"reason": note})
    follower = None
    if settings.artifacts_bucket:
        source = RegistryModelSource(
            lambda: S3ModelVersions(
                clients.s3 or Clients.create("s3").s3, settings.artifacts_bucket
            ),
            DynamoModelPointer(clients.dynamodb, settings.monitoring_table),
            load,
            Path(settings.model_dir),
            Path(tempfile.gettempdir()) / "models",
        )
        follower = ModelFollower(
            Served(model, policy, None), source, policy_for, settings.model_refresh_seconds
        )
    io = io_executor or ThreadPoolExecutor(settings.io_threads, thread_name_prefix="io")

    def facts(name: str, key: str, condition: Any = None) -> DynamoFactWriter:
        return DynamoFactWriter(
            clients.dynamodb,
            name,
            key,
            settings.monitoring_table,
            condition,
            backoff,
            io,
            lanes=settings.parallelization_factor,
        )

    ports = ScorePorts(
        predictions=DynamoPredictionStore(
            BatchTable(
                clients.dynamodb,
                settings.predictions_table,
                ("transaction_id",),
                backoff=backoff,
                executor=io,
            ),
            facts(settings.predictions_table, "transaction_id", prediction_condition),
            settings.predictions_ttl_days,
            settings.monitoring_ttl_days,
        ),
        alerts=EventBridgeAlertPublisher(
            EventPublisher(clients.events, settings.event_bus_name, backoff),
            ALERT_SOURCE,
            ALERT_DETAIL_TYPE,
        ),
        quarantine=DynamoQuarantineStore(
            facts(settings.quarantine_table, "record_id"),
            settings.quarantine_ttl_days,
            settings.monitoring_ttl_days,
        ),
    )
    return Scorer(
        model,
        ports,
        policy,
        step_executor=step_executor or ThreadPoolExecutor(3, thread_name_prefix="step"),
        follower=follower,
    )


def handler(stage: Scorer, backoff: Backoff) -> Handler:
    """The Lambda handler of a wired stage; `backoff` is the one `build` was given (its pauses are Retries)."""

    # log_event=False even when POWERTOOLS_LOGGER_LOG_EVENT says true: the records' payloads
    # may hold card numbers (in any field, ignored ones too), and logs must never carry them.
    @logger.inject_lambda_context(clear_state=True, log_event=False)
    @metrics.log_metrics
    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        records = parse_kinesis_event(event)
        pauses_before = backoff.pauses
        outcome = stage.score(records, clock=lambda: datetime.now(UTC))
        logger.append_keys(model_version=outcome.model_version)
        metrics.add_metadata("model_version", outcome.model_version)
        _report_model_events(outcome.model_events)
        # user records (an aggregate holds several), as RecordsIn counts them; a failure is
        # reported per Kinesis record, and fails every user record it holds
        failed_records = sum(1 for r in records if r.sequence_number in outcome.failed)
        count, ms = MetricUnit.Count, MetricUnit.Milliseconds
        metrics.add_metric(M.RECORDS_IN, count, outcome.records_in)
        metrics.add_metric(M.RECORDS_SCORED, count, outcome.scored)
        metrics.add_metric(M.RECORDS_ALREADY_SCORED, count, outcome.already_scored)
        metrics.add_metric(M.RECORDS_DUPLICATE, count, outcome.duplicates)
        metrics.add_metric(M.RECORDS_FAILED, count, failed_records)
        metrics.add_metric(M.RECORDS_QUARANTINED, count, sum(outcome.quarantined.values()))
        for reason, n in outcome.quarantined.items():
            metrics.add_metric(M.QUARANTINED_ + reason, count, n)
        for decision, n in outcome.decisions.items():
            metrics.add_metric(M.DECISION_ + decision, count, n)
        metrics.add_metric(M.ALERTS_PUBLISHED, count, outcome.alerts)
        metrics.add_metric(M.RETRIES, count, backoff.pauses - pauses_before)
        metrics.add_metric(M.BATCH_INFERENCE_MS, ms, outcome.inference_ms)
        if outcome.shadow_version:
            _report_shadow(outcome)
        if outcome.expected_declines is not None and outcome.expected_reviews is not None:
            metrics.add_metric(M.EXPECTED_REVIEWS, count, outcome.expected_reviews)
            metrics.add_metric(M.EXPECTED_DECLINES, count, outcome.expected_declines)
        if outcome.capped:
            metrics.add_metric(M.DECISIONS_CAPPED, count, outcome.capped)
        if outcome.sampled:
            metrics.add_metric(M.DECLINES_SAMPLED, count, outcome.sampled)
        _report_reasons(outcome)
        for value in _latency_values(outcome.latencies_ms):
            metrics.add_metric(M.END_TO_END_LATENCY_MS, ms, value)
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
                "challenger": outcome.shadow_version or None,
                "shard_id": records[0].shard_id if records else None,
                "first_sequence_number": records[0].sequence_number if records else None,
            },
        )
        return batch_item_failures(records, outcome.failed)

    return lambda_handler


MODEL_EVENTS = {
    SWAPPED: (M.MODEL_SWAPPED, logger.info),
    REFUSED: (M.MODEL_REFUSED, logger.error),
    POINTER_UNREADABLE: (M.MODEL_POINTER_UNREADABLE, logger.error),
    THRESHOLDS_NOT_APPLIED: (M.THRESHOLDS_NOT_APPLIED, logger.warning),
    REVIEW_ONLY_SWITCHED: (M.REVIEW_ONLY_SWITCHED, logger.warning),
}


def _report_model_events(events: list[ModelEvent]) -> None:
    """What following the registry did before this batch: a metric and a log line each."""
    for event in events:
        metric, log = MODEL_EVENTS[event.kind]
        metrics.add_metric(metric, MetricUnit.Count, 1)
        log(
            f"model {event.kind}",
            extra={"version": event.version, "role": event.role, "detail": event.detail},
        )


def _report_shadow(outcome: ScoreOutcome) -> None:
    """The challenger's share of the batch: what it scored, its model run, or why it did not."""
    metrics.add_metric(M.SHADOW_SCORED, MetricUnit.Count, outcome.shadow_scored)
    metrics.add_metric(M.SHADOW_INFERENCE_MS, MetricUnit.Milliseconds, outcome.shadow_inference_ms)
    if outcome.shadow_error:
        metrics.add_metric(M.SHADOW_FAILED, MetricUnit.Count, 1)
        logger.error(
            "shadow scoring failed",
            extra={"version": outcome.shadow_version, "detail": outcome.shadow_error},
        )


def _report_reasons(outcome: ScoreOutcome) -> None:
    """Reasons of the batch's reviews and declines: how many and how long, or why none."""
    if outcome.explained:
        metrics.add_metric(M.REASONS_EXPLAINED, MetricUnit.Count, outcome.explained)
        metrics.add_metric(M.EXPLAIN_MS, MetricUnit.Milliseconds, outcome.explain_ms)
    if outcome.reasons_missing:
        metrics.add_metric(M.REASONS_MISSING, MetricUnit.Count, outcome.reasons_missing)
        logger.warning(
            "reviews and declines without reasons",
            extra={"count": outcome.reasons_missing, "detail": outcome.reasons_error},
        )


def _latency_values(latencies: list[int]) -> list[float]:
    """The batch's latencies, or evenly spaced quantiles of them when there are too many for one blob."""
    if len(latencies) <= MAX_LATENCY_VALUES:
        return [float(v) for v in latencies]
    quantiles = np.quantile(latencies, np.linspace(0, 1, MAX_LATENCY_VALUES))
    return [round(float(v), 1) for v in quantiles]


# The container's wiring, once, at init (the model loads here: INIT is not billed the same).
settings = load_settings(ScoreSettings, os.environ)
backoff = Backoff()
clients = Clients.create("dynamodb", "events")
stage = build(settings, clients, backoff)
lambda_handler = handler(stage, backoff)
freeze_after_init()  # init's objects out of every later collection (see its docstring)
