"""PreprocessFunction: Kinesis batch of transactions → quarantine, card state, features table and stream.

Settings and clients are read once per container (the init phase); `build` wires the
stage to them, and `handler` wraps the wired stage in the Powertools decorators.
Tests and benchmarks call `build` and `handler` with their own clients and backoff.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from streamscore.aws.clients import Clients
from streamscore.aws.dynamodb import BatchTable
from streamscore.aws.facts import DynamoFactWriter
from streamscore.aws.kinesis import StreamWriter
from streamscore.aws.monitoring_stores import DynamoQuarantineStore
from streamscore.aws.preprocess_stores import (
    DynamoFeatureStore,
    DynamoStateStore,
    KinesisFeatureForwarder,
)
from streamscore.aws.retry import Backoff
from streamscore.core.feature_record import encode_feature_record
from streamscore.core.lambda_init import freeze_after_init
from streamscore.core.observability import logger, metrics, tracer
from streamscore.core.records import batch_item_failures, parse_kinesis_event
from streamscore.core.settings import load_settings
from streamscore.handlers.metrics import PreprocessMetric as M
from streamscore.preprocess.batch import Preprocessor
from streamscore.preprocess.ports import PreprocessPorts
from streamscore.preprocess.settings import PreprocessSettings

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def build(
    settings: PreprocessSettings,
    clients: Clients,
    backoff: Backoff,
    io_executor: Executor | None = None,
    step_executor: Executor | None = None,
) -> Preprocessor:
    """The preprocess stage on `clients` (dynamodb, kinesis), retrying with `backoff`.

    Two pools: a batch's independent steps (`step_executor`, three) wait on the
    adapters' calls (`io_executor`, `settings.io_threads`), never on their own pool.
    """
    clients.require("dynamodb", "kinesis")
    io = io_executor or ThreadPoolExecutor(settings.io_threads, thread_name_prefix="io")

    def table(name: str, *keys: str) -> BatchTable:
        return BatchTable(clients.dynamodb, name, keys, backoff=backoff, executor=io)

    ports = PreprocessPorts(
        states=DynamoStateStore(
            table(settings.entity_state_table, "card_id"), settings.state_ttl_days
        ),
        features=DynamoFeatureStore(
            table(settings.features_table, "transaction_id"), settings.features_ttl_days
        ),
        forwarder=KinesisFeatureForwarder(
            StreamWriter(clients.kinesis, settings.features_stream_name, backoff),
            encode_feature_record,
        ),
        quarantine=DynamoQuarantineStore(
            DynamoFactWriter(
                clients.dynamodb,
                settings.quarantine_table,
                "record_id",
                settings.monitoring_table,
                backoff=backoff,
                executor=io,
                lanes=settings.parallelization_factor,
            ),
            settings.quarantine_ttl_days,
            settings.monitoring_ttl_days,
        ),
    )
    return Preprocessor(
        ports,
        # past the stream's retention (and a day), no retry or re-drive delivers a record again
        pending_horizon=timedelta(hours=settings.stream_retention_hours, days=1),
        step_executor=step_executor or ThreadPoolExecutor(3, thread_name_prefix="step"),
    )


def handler(stage: Preprocessor, backoff: Backoff) -> Handler:
    """The Lambda handler of a wired stage; `backoff` is the one `build` was given (its pauses are Retries)."""

    # log_event=False even when POWERTOOLS_LOGGER_LOG_EVENT says true: the records' payloads
    # may hold card numbers (in any field, ignored ones too), and logs must never carry them.
    @logger.inject_lambda_context(clear_state=True, log_event=False)
    @metrics.log_metrics
    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        records = parse_kinesis_event(event)
        pauses_before = backoff.pauses
        outcome = stage.process(records, now=datetime.now(UTC))
        # user records (an aggregate holds several), as RecordsIn counts them; a failure is
        # reported per Kinesis record, and fails every user record it holds
        failed_records = sum(1 for r in records if r.sequence_number in outcome.failed)
        count = MetricUnit.Count
        metrics.add_metric(M.RECORDS_IN, count, outcome.records_in)
        metrics.add_metric(M.TRANSACTIONS_APPLIED, count, outcome.applied)
        metrics.add_metric(M.FEATURES_WRITTEN, count, outcome.features_written)
        metrics.add_metric(M.RECORDS_FORWARDED, count, outcome.forwarded)
        metrics.add_metric(M.RECORDS_REPLAYED, count, outcome.replayed)
        metrics.add_metric(M.RECORDS_REPEATED, count, outcome.repeats)
        metrics.add_metric(M.RECORDS_FAILED, count, failed_records)
        metrics.add_metric(M.STATE_READS, count, outcome.cards_read)
        metrics.add_metric(M.RETRIES, count, backoff.pauses - pauses_before)
        metrics.add_metric(M.RECORDS_QUARANTINED, count, sum(outcome.quarantined.values()))
        for reason, n in outcome.quarantined.items():
            metrics.add_metric(M.QUARANTINED_ + reason, count, n)
        logger.info(
            "batch preprocessed",
            extra={
                "records_in": outcome.records_in,
                "applied": outcome.applied,
                "forwarded": outcome.forwarded,
                "replayed": outcome.replayed,
                "repeats": outcome.repeats,
                "quarantined": dict(outcome.quarantined),
                "failed": failed_records,
                "shard_id": records[0].shard_id if records else None,
                "first_sequence_number": records[0].sequence_number if records else None,
            },
        )
        return batch_item_failures(records, outcome.failed)

    return lambda_handler


# The container's wiring, once, at init.
settings = load_settings(PreprocessSettings, os.environ)
backoff = Backoff()
clients = Clients.create("dynamodb", "kinesis")
stage = build(settings, clients, backoff)
lambda_handler = handler(stage, backoff)
freeze_after_init()  # init's objects out of every later collection (see its docstring)
