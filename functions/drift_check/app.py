"""DriftCheckFunction: a window's histograms against the shipped baseline → report, metrics, retraining trigger."""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from streamscore.adapters.events import EventPublisher
from streamscore.adapters.retry import Backoff, client_config
from streamscore.drift import DriftThresholds
from streamscore.drift_plot import draw_report
from streamscore.drift_report import (
    RETRAINING_REQUESTED,
    DriftCheckPolicy,
    DriftCheckPorts,
    DriftReport,
    check_drift,
    load_baseline,
    resolve_window,
)
from streamscore.observability import logger, metrics, tracer
from streamscore.settings import DriftCheckSettings, load_settings
from streamscore.stores import (
    DynamoMonitoringStore,
    DynamoRetrainingCooldown,
    DynamoWindowReader,
    S3ReportStore,
)

# matplotlib keeps its font cache under MPLCONFIGDIR; in Lambda only /tmp is writable.
os.environ.setdefault("MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), "matplotlib"))

settings = load_settings(DriftCheckSettings, os.environ)
baseline = load_baseline(settings.model_dir)
policy = DriftCheckPolicy(
    thresholds=DriftThresholds(
        psi_warn=settings.psi_warn_threshold,
        psi_drift=settings.psi_drift_threshold,
        js_drift=settings.js_drift_threshold,
        min_samples=settings.min_sample_size,
    ),
    cooldown_hours=settings.retrain_cooldown_hours,
    monitoring_ttl_days=settings.monitoring_ttl_days,
)
io_executor = ThreadPoolExecutor(max_workers=settings.io_threads, thread_name_prefix="io")
dynamodb = boto3.client("dynamodb", config=client_config())
s3 = boto3.client("s3", config=client_config(read_timeout=30.0))
events = boto3.client("events", config=client_config())
ports = DriftCheckPorts(
    reader=DynamoWindowReader(dynamodb, settings.monitoring_table, executor=io_executor),
    reports=S3ReportStore(s3, settings.artifacts_bucket),
    monitoring=DynamoMonitoringStore(dynamodb, settings.monitoring_table),
    cooldown=DynamoRetrainingCooldown(dynamodb, settings.monitoring_table),
    events=EventPublisher(events, settings.event_bus_name, Backoff()),
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = datetime.now(UTC)
    window = resolve_window(event, now, settings.drift_window_minutes)
    logger.append_keys(model_version=baseline.model_version, window_id=window.window_id)
    outcome = check_drift(window, baseline, ports, policy, now, draw=draw_report)
    report = outcome.report
    # RetrainingRequested counts the events this run put, not a re-run's "sent"
    _emit_metrics(report, retraining_requested=RETRAINING_REQUESTED in outcome.sent)
    headline = report.headline()
    logger.info(
        "drift checked",
        extra={
            "status": report.status,
            "retraining": outcome.trigger,
            "events_sent": list(outcome.sent),
            "max_psi": headline["max_psi"],
            "max_psi_feature": headline["max_psi_feature"],
            "prediction_psi": headline["prediction_psi"],
            "drifted": [d["name"] for d in headline["drifted"]],
            "sample": headline["sample"],
            "items_read": outcome.items_read,
            "report_uri": outcome.report_uri,
        },
    )
    return {
        "report_id": report.report_id,
        "status": report.status,
        "retraining": outcome.trigger,
        "report_uri": outcome.report_uri,
        "plot_uri": outcome.plot_uri,
    }


def _emit_metrics(report: DriftReport, retraining_requested: bool) -> None:
    """PSI per feature (feature dimension, one EMF blob each), then the run's own metrics."""
    metrics.add_metadata("model_version", report.model_version)
    metrics.add_metadata("report_id", report.report_id)
    for name, variable in report.features.items():
        if variable.status == "insufficient_data":
            continue
        with single_metric(
            name="PSI",
            unit=MetricUnit.NoUnit,
            value=variable.stats.psi,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="feature", value=name)
    worst = report.max_psi
    if worst is not None:
        metrics.add_metric("MaxPSI", MetricUnit.NoUnit, worst[1])
    if report.prediction.status != "insufficient_data":
        metrics.add_metric("PredictionPSI", MetricUnit.NoUnit, report.prediction.stats.psi)
        metrics.add_metric(
            "PredictionJSDistance", MetricUnit.NoUnit, report.prediction.stats.js_distance
        )
    metrics.add_metric("DriftDetected", MetricUnit.Count, int(report.status == "drift"))
    metrics.add_metric("RetrainingRequested", MetricUnit.Count, int(retraining_requested))
    metrics.add_metric("WindowSamples", MetricUnit.Count, report.sample()["n"])
