"""DriftCheckFunction: a window's histograms against the champion's baseline (every other version
and each challenger against its own) → report, metrics, retraining trigger."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from streamscore.aws.clients import Clients
from streamscore.aws.drift_stores import (
    DynamoRetrainingCooldown,
    DynamoWindowReader,
    RegistryBaselines,
    S3ReportStore,
)
from streamscore.aws.events import EventPublisher
from streamscore.aws.monitoring_stores import DynamoMonitoringStore
from streamscore.aws.registry import DynamoModelPointer, S3ModelVersions
from streamscore.aws.retry import Backoff, client_config
from streamscore.core.errors import SystemicError
from streamscore.core.lambda_init import freeze_after_init
from streamscore.core.observability import logger, metrics, tracer
from streamscore.core.settings import load_settings
from streamscore.drift.baseline import DriftBaseline, load_baseline
from streamscore.drift.check import DriftChecker, DriftCheckPolicy
from streamscore.drift.plot import draw_report
from streamscore.drift.ports import DriftCheckPorts
from streamscore.drift.quality import QUALITY
from streamscore.drift.quality_plot import draw_quality
from streamscore.drift.report import RETRAINING_REQUESTED, DriftReport
from streamscore.drift.settings import DriftCheckSettings
from streamscore.drift.stats import DriftThresholds
from streamscore.drift.window import DriftWindow
from streamscore.handlers.metrics import DriftMetric as M
from streamscore.promotion.check import (
    PROMOTION,
    PromotionChecker,
    PromotionOutcome,
    PromotionPorts,
)
from streamscore.promotion.policy import PromotionPolicy

# matplotlib keeps its font cache under MPLCONFIGDIR; in Lambda only /tmp is writable.
os.environ.setdefault("MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), "matplotlib"))

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def build(
    settings: DriftCheckSettings,
    clients: Clients,
    backoff: Backoff,
    baseline: DriftBaseline | None = None,
    io_executor: Executor | None = None,
    draw: Callable[[DriftReport], bytes] | None = draw_report,
) -> DriftChecker:
    """The drift check on `clients` (dynamodb, s3, events); `baseline` defaults to the shipped one."""
    clients.require("dynamodb", "s3", "events")
    io = io_executor or ThreadPoolExecutor(settings.io_threads, thread_name_prefix="io")
    table = settings.monitoring_table
    ports = DriftCheckPorts(
        reader=DynamoWindowReader(clients.dynamodb, table, executor=io),
        reports=S3ReportStore(clients.s3, settings.artifacts_bucket),
        monitoring=DynamoMonitoringStore(clients.dynamodb, table, settings.monitoring_ttl_days),
        cooldown=DynamoRetrainingCooldown(clients.dynamodb, table),
        events=EventPublisher(clients.events, settings.event_bus_name, backoff),
    )
    policy = DriftCheckPolicy(
        thresholds=DriftThresholds(
            psi_warn=settings.psi_warn_threshold,
            psi_drift=settings.psi_drift_threshold,
            js_drift=settings.js_drift_threshold,
            min_samples=settings.min_sample_size,
        ),
        cooldown_hours=settings.retrain_cooldown_hours,
    )
    return DriftChecker(
        baseline or load_baseline(settings.model_dir),
        ports,
        policy,
        window_minutes=settings.drift_window_minutes,
        draw=draw,
        registry=RegistryBaselines(
            S3ModelVersions(clients.s3, settings.artifacts_bucket),
            DynamoModelPointer(clients.dynamodb, table),
        ),
        quality=settings.quality_policy(),
        # pictures of both checks, or of neither (a caller passing draw=None)
        draw_quality=draw_quality if draw is not None else None,
    )


def build_promotion(
    settings: DriftCheckSettings, stage: DriftChecker, clients: Clients
) -> PromotionChecker:
    """The promotion check on the drift check's reader and events, and the registry's pointer."""
    return PromotionChecker(
        PromotionPorts(
            pointer=DynamoModelPointer(clients.dynamodb, settings.monitoring_table),
            reader=stage.ports.reader,
            events=stage.ports.events,
            cards=stage.registry if isinstance(stage.registry, RegistryBaselines) else None,
        ),
        PromotionPolicy(
            min_hours=settings.promotion_min_hours,
            min_labelled=settings.promotion_min_labelled,
            min_frauds=settings.promotion_min_frauds,
            max_days=settings.promotion_max_days,
            recall_tolerance=settings.promotion_recall_tolerance,
            decline_rate_tolerance=settings.promotion_decline_rate_tolerance,
        ),
        settings.promotion_mode,
        shipped_version=stage.baseline.model_version,
    )


def handler(
    stage: DriftChecker,
    clock: Callable[[], datetime] | None = None,
    promotion: PromotionChecker | None = None,
) -> Handler:
    """The Lambda handler of a wired drift check; `clock` (default: now, UTC) places scheduled
    windows. An event `{"check": "quality"}` (QualityCheckSchedule's) runs the stage's quality
    check instead (drift/quality.py), `{"check": "promotion"}` (PromotionCheckSchedule's) its
    promotion check (promotion/check.py)."""
    now_of = clock or (lambda: datetime.now(UTC))

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        now = now_of()
        if event.get("check") == PROMOTION:
            if promotion is None:
                raise SystemicError("a promotion check was asked for, and none is configured")
            return _promotion_check(promotion.check(now))
        if event.get("check") == QUALITY:
            # a window named in the event ({"check": "quality", "window": {...}}) replaces the
            # matured one
            window = stage.window(event, now) if "window" in event else None
            return _quality_check(stage, now, window)
        window = stage.window(event, now)
        logger.append_keys(window_id=window.window_id)
        outcome = stage.check(window, now)
        report = outcome.report
        logger.append_keys(model_version=report.model_version)
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

    return lambda_handler


def _quality_check(
    stage: DriftChecker, now: datetime, window: DriftWindow | None
) -> dict[str, Any]:
    outcome = stage.check_quality(now, window)
    report = outcome.report
    logger.append_keys(window_id=report["window_id"], model_version=report["champion"])
    figures = report["versions"].get(report["champion"])
    if figures is not None:
        metrics.add_metadata("model_version", report["champion"])
        for name, value in (
            # what the alarms watch: only with the frauds a verdict needs (QualityMinFrauds)
            (M.RECALL_AT_DECLINE, _judged(report, figures)),
            (M.REALIZED_RECALL_AT_REVIEW, figures["realized"]["recall_at_review"]),
            (M.ESTIMATED_RECALL_AT_REVIEW, figures["estimated"]["recall_at_review"]),
            (M.REALIZED_PRECISION_AT_REVIEW, figures["realized"]["precision_at_review"]),
            (M.ESTIMATED_PRECISION_AT_REVIEW, figures["estimated"]["precision_at_review"]),
            (M.PR_AUC, figures["realized"]["pr_auc"]),
        ):
            if value is not None:
                metrics.add_metric(name, MetricUnit.NoUnit, value)
        metrics.add_metric(M.FRAUDS_SEEN, MetricUnit.Count, figures["realized"]["frauds_seen"])
    early = outcome.early["versions"].get(report["champion"]) if outcome.early else None
    if outcome.early is not None and early is not None:
        value = _judged(outcome.early, early)
        if value is not None:
            metrics.add_metric(M.EARLY_RECALL_AT_DECLINE, MetricUnit.NoUnit, value)
        metrics.add_metric(M.EARLY_FRAUDS_SEEN, MetricUnit.Count, early["realized"]["frauds_seen"])
    sent = RETRAINING_REQUESTED in outcome.sent
    metrics.add_metric(M.QUALITY_RETRAINING_REQUESTED, MetricUnit.Count, int(sent))
    logger.info(
        "quality checked",
        extra={
            "status": report["status"],
            "retraining": outcome.trigger,
            "events_sent": list(outcome.sent),
            "items_read": outcome.items_read,
            "report_uri": outcome.report_uri,
            "early_status": outcome.early["status"] if outcome.early else None,
        },
    )
    result = {
        "check": QUALITY,
        "window_id": report["window_id"],
        "status": report["status"],
        "retraining": outcome.trigger,
        "report_uri": outcome.report_uri,
        "plot_uri": outcome.plot_uri,
    }
    if outcome.early is not None:
        result |= {
            "early_window_id": outcome.early["window_id"],
            "early_status": outcome.early["status"],
            "early_report_uri": outcome.early_uri,
        }
    return result


def _promotion_check(outcome: PromotionOutcome) -> dict[str, Any]:
    decided = outcome.judgement.as_dict() if outcome.judgement else (outcome.decision or {})
    result = {
        "check": PROMOTION,
        "status": outcome.status,
        "verdict": decided.get("verdict"),
        "why": decided.get("why"),
        "figures": decided.get("figures"),
        "decision_id": (outcome.decision or {}).get("decision_id"),
        "events_sent": list(outcome.events_sent),
    }
    metrics.add_metric(M.PROMOTION_DECIDED, MetricUnit.Count, int(outcome.status == "decided"))
    logger.info(
        "promotion checked",
        extra={k: v for k, v in result.items() if k != "figures"}
        | {"items_read": outcome.items_read},
    )
    return result


def _judged(report: dict[str, Any], figures: dict[str, Any]) -> float | None:
    """Recall at decline when the report could judge it (enough frauds seen), else None."""
    if report["status"] not in ("ok", "low_recall"):
        return None
    value = figures["realized"]["recall_at_decline"]
    return None if value is None else float(value)


def _emit_metrics(report: DriftReport, retraining_requested: bool) -> None:
    """PSI per feature (feature dimension, one EMF blob each), then the run's own metrics."""
    metrics.add_metadata("model_version", report.model_version)
    metrics.add_metadata("report_id", report.report_id)
    for name, variable in report.features.items():
        if variable.status == "insufficient_data":
            continue
        with single_metric(
            name=M.PSI,
            unit=MetricUnit.NoUnit,
            value=variable.stats.psi,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="feature", value=name)
    worst = report.max_psi
    if worst is not None:
        metrics.add_metric(M.MAX_PSI, MetricUnit.NoUnit, worst[1])
    if report.prediction.status != "insufficient_data":
        metrics.add_metric(M.PREDICTION_PSI, MetricUnit.NoUnit, report.prediction.stats.psi)
        metrics.add_metric(
            M.PREDICTION_JS_DISTANCE, MetricUnit.NoUnit, report.prediction.stats.js_distance
        )
    metrics.add_metric(M.DRIFT_DETECTED, MetricUnit.Count, int(report.status == "drift"))
    metrics.add_metric(M.RETRAINING_REQUESTED, MetricUnit.Count, int(retraining_requested))
    metrics.add_metric(M.WINDOW_SAMPLES, MetricUnit.Count, report.sample()["n"])


# The container's wiring, once, at init.
settings = load_settings(DriftCheckSettings, os.environ)
clients = Clients.create(
    "dynamodb", "s3", "events", configs={"s3": client_config(read_timeout=30.0)}
)
drift_stage = build(settings, clients, Backoff())
promotion_stage = build_promotion(settings, drift_stage, clients)
lambda_handler = handler(drift_stage, promotion=promotion_stage)
freeze_after_init()  # init's objects out of every later collection (see its docstring)
