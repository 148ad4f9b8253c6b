"""LabelsFunction: Kinesis batch of labels → LabelsTable with quality counts, quarantine.

Settings and clients are read once per container (the init phase); `build` wires the
stage to them, and `handler` wraps the wired stage in the Powertools decorators.
Tests and benchmarks call `build` and `handler` with their own clients and backoff.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from streamscore.aws.clients import Clients
from streamscore.aws.dynamodb import BatchTable
from streamscore.aws.facts import DynamoFactWriter
from streamscore.aws.label_stores import DynamoLabelStore, DynamoPredictionReader, label_condition
from streamscore.aws.monitoring_stores import DynamoQuarantineStore
from streamscore.aws.retry import Backoff
from streamscore.core.lambda_init import freeze_after_init
from streamscore.core.observability import logger, metrics, tracer
from streamscore.core.records import StreamRecord, batch_item_failures, parse_kinesis_event
from streamscore.core.settings import load_settings
from streamscore.handlers.metrics import LabelMetric as M
from streamscore.labels.batch import LabelOutcome, label_batch
from streamscore.labels.ports import LabelPorts
from streamscore.labels.settings import LabelSettings

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


@dataclass(frozen=True)
class Labeller:
    """The labels stage wired: one call per batch."""

    ports: LabelPorts
    step_executor: Executor | None = None

    def label(self, records: Sequence[StreamRecord], now: datetime) -> LabelOutcome:
        return label_batch(records, self.ports, now, self.step_executor)


def build(
    settings: LabelSettings,
    clients: Clients,
    backoff: Backoff,
    io_executor: Executor | None = None,
    step_executor: Executor | None = None,
) -> Labeller:
    """The labels stage on `clients` (dynamodb), retrying with `backoff`; a batch's steps
    (`step_executor`) wait on the adapters' calls (`io_executor`), never on their own pool."""
    clients.require("dynamodb")
    io = io_executor or ThreadPoolExecutor(settings.io_threads, thread_name_prefix="io")

    def table(name: str) -> BatchTable:
        return BatchTable(clients.dynamodb, name, ("transaction_id",), backoff=backoff, executor=io)

    def facts(name: str, key: str, condition: Any = None) -> DynamoFactWriter:
        return DynamoFactWriter(
            clients.dynamodb,
            name,
            key,
            settings.monitoring_table,
            condition=condition,
            backoff=backoff,
            executor=io,
            lanes=settings.parallelization_factor,
        )

    ports = LabelPorts(
        labels=DynamoLabelStore(
            table(settings.labels_table),
            facts(settings.labels_table, "transaction_id", label_condition),
            settings.labels_ttl_days,
            # a label replaced a year on takes its counts back from their item: it must be there
            max(settings.labels_ttl_days, settings.monitoring_ttl_days),
        ),
        predictions=DynamoPredictionReader(table(settings.predictions_table)),
        quarantine=DynamoQuarantineStore(
            facts(settings.quarantine_table, "record_id"),
            settings.quarantine_ttl_days,
            settings.monitoring_ttl_days,
        ),
    )
    return Labeller(ports, step_executor or ThreadPoolExecutor(2, thread_name_prefix="step"))


def handler(stage: Labeller, backoff: Backoff) -> Handler:
    """The Lambda handler of a wired stage; `backoff` is the one `build` was given."""

    # log_event=False: a label carries no card data, but one function of the stack logging
    # events would make the rule harder to audit
    @logger.inject_lambda_context(clear_state=True, log_event=False)
    @metrics.log_metrics
    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        records = parse_kinesis_event(event)
        pauses_before = backoff.pauses
        outcome = stage.label(records, now=datetime.now(UTC))
        failed_records = sum(1 for r in records if r.sequence_number in outcome.failed)
        count = MetricUnit.Count
        metrics.add_metric(M.RECORDS_IN, count, outcome.records_in)
        metrics.add_metric(M.LABELS_WRITTEN, count, outcome.written)
        for label, n in outcome.labels.items():
            metrics.add_metric(M.LABEL_ + label, count, n)
        metrics.add_metric(M.LABELS_REPLACED, count, outcome.replaced)
        metrics.add_metric(M.LABELS_UNMATCHED, count, outcome.unmatched)
        metrics.add_metric(M.LABELS_UNCHANGED, count, outcome.unchanged)
        metrics.add_metric(M.LABELS_SUPERSEDED, count, outcome.superseded)
        metrics.add_metric(M.RECORDS_FAILED, count, failed_records)
        metrics.add_metric(M.RETRIES, count, backoff.pauses - pauses_before)
        metrics.add_metric(M.RECORDS_QUARANTINED, count, sum(outcome.quarantined.values()))
        for reason, n in outcome.quarantined.items():
            metrics.add_metric(M.QUARANTINED_ + reason, count, n)
        logger.info(
            "batch labelled",
            extra={
                "records_in": outcome.records_in,
                "written": outcome.written,
                "labels": dict(outcome.labels),
                "replaced": outcome.replaced,
                "unmatched": outcome.unmatched,
                "unchanged": outcome.unchanged,
                "superseded": outcome.superseded,
                "quarantined": dict(outcome.quarantined),
                "failed": failed_records,
                "shard_id": records[0].shard_id if records else None,
                "first_sequence_number": records[0].sequence_number if records else None,
            },
        )
        return batch_item_failures(records, outcome.failed)

    return lambda_handler


# The container's wiring, once, at init.
settings = load_settings(LabelSettings, os.environ)
backoff = Backoff()
clients = Clients.create("dynamodb")
stage = build(settings, clients, backoff)
lambda_handler = handler(stage, backoff)
freeze_after_init()  # init's objects out of every later collection (see its docstring)
