"""FeatureLogFunction: PredictionsTable stream (first writes) → feature log rows in S3.

Settings and clients are read once per container (the init phase); `build` wires the
stage to them, and `handler` wraps the wired stage in the Powertools decorators.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from streamscore.aws.clients import Clients
from streamscore.aws.dynamodb import BatchTable
from streamscore.aws.featurelog_stores import DynamoFeatureReader, S3LogWriter, parse_stream_event
from streamscore.aws.retry import Backoff
from streamscore.core.lambda_init import freeze_after_init
from streamscore.core.observability import logger, metrics, tracer
from streamscore.core.settings import load_settings
from streamscore.featurelog.batch import LogOutcome, log_batch
from streamscore.featurelog.ports import FeatureLogPorts
from streamscore.featurelog.settings import FeatureLogSettings
from streamscore.handlers.metrics import FeatureLogMetric as M

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


@dataclass(frozen=True)
class FeatureLogger:
    """The feature-log stage wired: one call per batch."""

    ports: FeatureLogPorts

    def log(self, event: dict[str, Any]) -> LogOutcome:
        return log_batch(parse_stream_event(event), self.ports)


def build(
    settings: FeatureLogSettings,
    clients: Clients,
    backoff: Backoff,
    io_executor: Executor | None = None,
) -> FeatureLogger:
    """The stage on `clients` (dynamodb, s3), retrying unprocessed reads with `backoff`."""
    clients.require("dynamodb", "s3")
    table = BatchTable(
        clients.dynamodb, settings.features_table, ("transaction_id",), backoff, io_executor
    )
    return FeatureLogger(
        FeatureLogPorts(
            features=DynamoFeatureReader(table),
            log=S3LogWriter(clients.s3, settings.artifacts_bucket),
        )
    )


def handler(stage: FeatureLogger, backoff: Backoff) -> Handler:
    """The Lambda handler of a wired stage; `backoff` is the one `build` was given."""

    @logger.inject_lambda_context(clear_state=True, log_event=False)
    @metrics.log_metrics
    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        pauses_before = backoff.pauses
        outcome = stage.log(event)
        count = MetricUnit.Count
        metrics.add_metric(M.RECORDS_IN, count, outcome.records_in)
        metrics.add_metric(M.ROWS_LOGGED, count, outcome.rows_logged)
        metrics.add_metric(M.ROWS_ALREADY_LOGGED, count, outcome.rows_already_logged)
        metrics.add_metric(M.FEATURES_MISSING, count, outcome.features_missing)
        metrics.add_metric(M.RECORDS_FAILED, count, outcome.failed_records)
        metrics.add_metric(M.RETRIES, count, backoff.pauses - pauses_before)
        logger.info(
            "batch logged",
            extra={
                "records_in": outcome.records_in,
                "inserts": outcome.inserts,
                "rows_logged": outcome.rows_logged,
                "rows_already_logged": outcome.rows_already_logged,
                "objects_written": outcome.objects_written,
                "features_missing": outcome.features_missing,
                "failed": outcome.failed_records,
                "problems": outcome.problems,
            },
        )
        if outcome.failed_from is None:
            return {"batchItemFailures": []}
        return {"batchItemFailures": [{"itemIdentifier": outcome.failed_from}]}

    return lambda_handler


# The container's wiring, once, at init.
settings = load_settings(FeatureLogSettings, os.environ)
backoff = Backoff()
clients = Clients.create("dynamodb", "s3")
stage = build(settings, clients, backoff)
lambda_handler = handler(stage, backoff)
freeze_after_init()  # init's objects out of every later collection (see its docstring)
