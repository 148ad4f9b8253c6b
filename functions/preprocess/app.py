"""PreprocessFunction: Kinesis batch of transactions → quarantine, card state, features table and stream."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from streamscore.adapters.dynamodb import BatchTable
from streamscore.adapters.kinesis import StreamWriter
from streamscore.adapters.retry import Backoff, client_config
from streamscore.fact_writer import DynamoFactWriter
from streamscore.observability import logger, metrics, tracer
from streamscore.preprocess import PreprocessPorts, encode_feature_record, preprocess_batch
from streamscore.records import batch_item_failures, parse_kinesis_event
from streamscore.settings import PreprocessSettings, load_settings
from streamscore.stores import (
    DynamoFeatureStore,
    DynamoQuarantineStore,
    DynamoStateStore,
    KinesisFeatureForwarder,
)

settings = load_settings(PreprocessSettings, os.environ)
# past the stream's retention (and a day), no retry or re-drive delivers a record again
PENDING_HORIZON = timedelta(hours=settings.stream_retention_hours, days=1)
# Two pools: the batch's independent steps wait on the adapters' calls, never on their own pool.
io_executor = ThreadPoolExecutor(max_workers=settings.io_threads, thread_name_prefix="io")
step_executor = ThreadPoolExecutor(max_workers=3, thread_name_prefix="step")
backoff = Backoff()
dynamodb = boto3.client("dynamodb", config=client_config())
kinesis = boto3.client("kinesis", config=client_config())


def _table(name: str, *keys: str) -> BatchTable:
    return BatchTable(dynamodb, name, keys, backoff=backoff, executor=io_executor)


ports = PreprocessPorts(
    states=DynamoStateStore(
        _table(settings.entity_state_table, "card_id"), settings.state_ttl_days
    ),
    features=DynamoFeatureStore(
        _table(settings.features_table, "transaction_id"), settings.features_ttl_days
    ),
    forwarder=KinesisFeatureForwarder(
        StreamWriter(kinesis, settings.features_stream_name, backoff), encode_feature_record
    ),
    quarantine=DynamoQuarantineStore(
        DynamoFactWriter(
            dynamodb,
            settings.quarantine_table,
            "record_id",
            settings.monitoring_table,
            backoff=backoff,
            executor=io_executor,
        ),
        settings.monitoring_ttl_days,
    ),
)


# log_event=False even when POWERTOOLS_LOGGER_LOG_EVENT says true: the records' payloads
# may hold card numbers (in any field, ignored ones too), and logs must never carry them.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = parse_kinesis_event(event)
    pauses_before = backoff.pauses
    outcome = preprocess_batch(
        records,
        ports,
        now=datetime.now(UTC),
        quarantine_ttl_days=settings.quarantine_ttl_days,
        step_executor=step_executor,
        pending_horizon=PENDING_HORIZON,
    )
    # user records (an aggregate holds several), as RecordsIn counts them; a failure is
    # reported per Kinesis record, and fails every user record it holds
    failed_records = sum(1 for r in records if r.sequence_number in outcome.failed)
    metrics.add_metric("RecordsIn", MetricUnit.Count, outcome.records_in)
    metrics.add_metric("TransactionsApplied", MetricUnit.Count, outcome.applied)
    metrics.add_metric("FeaturesWritten", MetricUnit.Count, outcome.features_written)
    metrics.add_metric("RecordsForwarded", MetricUnit.Count, outcome.forwarded)
    metrics.add_metric("RecordsReplayed", MetricUnit.Count, outcome.replayed)
    metrics.add_metric("RecordsRepeated", MetricUnit.Count, outcome.repeats)
    metrics.add_metric("RecordsFailed", MetricUnit.Count, failed_records)
    metrics.add_metric("StateReads", MetricUnit.Count, outcome.cards_read)
    metrics.add_metric("Retries", MetricUnit.Count, backoff.pauses - pauses_before)
    metrics.add_metric("RecordsQuarantined", MetricUnit.Count, sum(outcome.quarantined.values()))
    for reason, count in outcome.quarantined.items():
        metrics.add_metric(f"Quarantined_{reason}", MetricUnit.Count, count)
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
