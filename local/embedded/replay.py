"""An operator's replay of both streams on the embedded stack, checked to change nothing.

Lambda cannot move an existing mapping back on its stream: a replay is a second mapping of
the same function from TRIM_HORIZON (or AT_TIMESTAMP), often with another batch size,
deleted once it caught up. `replay` does exactly that for each of the stack's mappings
(TransactionsStream -> PreprocessFunction, FeaturesStream -> ScoreFunction), through the
running emulator, with a batch size other than the mapping's, so that no batch has the
boundaries of the first pass; the original mappings keep running meanwhile, as they would.

The functions apply each transaction once, by its id, so the replay must change nothing
that records a transaction: it compares PredictionsTable, EntityStateTable and FeaturesTable
before and after, item by item. It also counts what the replay added to or changed in
MonitoringTable, by kind of item: a count that a replay moves counts records twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from embedded.emulator import EventSourceEmulator, MappingConfig
from embedded.summary import scan
from streamscore.core.monitoring import COOLDOWN, REPORT

# MonitoringTable items the pipeline writes as it goes; the drift check's own are left out
DRIFT_CHECK_KINDS = (REPORT, COOLDOWN)


def different_batch_size(size: int) -> int:
    """A batch size whose batches do not line up with `size`'s: about two thirds of it."""
    smaller = (2 * size) // 3
    return smaller if 1 <= smaller != size else size + 1


@dataclass(frozen=True)
class Snapshot:
    """The items that record what became of each transaction, and the monitoring items."""

    predictions: dict[str, dict[str, Any]]
    states: dict[str, dict[str, Any]]
    features: dict[str, dict[str, Any]]
    monitoring: dict[tuple[str, str], dict[str, Any]]


def snapshot(clients: Callable[[str], Any], outputs: Mapping[str, str]) -> Snapshot:
    dynamodb = clients("dynamodb")
    return Snapshot(
        predictions={
            i["transaction_id"]: i for i in scan(dynamodb, outputs["PredictionsTableName"])
        },
        states={i["card_id"]: i for i in scan(dynamodb, outputs["EntityStateTableName"])},
        features={i["transaction_id"]: i for i in scan(dynamodb, outputs["FeaturesTableName"])},
        monitoring={
            (i["pk"], i["sk"]): i
            for i in scan(dynamodb, outputs["MonitoringTableName"])
            if not str(i.get("sk", "")).startswith(DRIFT_CHECK_KINDS)
        },
    )


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> int:
    """Items added, removed or different."""
    return sum(1 for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def _monitoring(before: Snapshot, after: Snapshot) -> dict[str, dict[str, int]]:
    """Per kind of MonitoringTable item (its sort key): items the replay added and changed."""
    result: dict[str, dict[str, int]] = {}
    for key in before.monitoring.keys() | after.monitoring.keys():
        old, new = before.monitoring.get(key), after.monitoring.get(key)
        if old == new:
            continue
        kind = result.setdefault(key[1], {"items_added": 0, "items_changed": 0, "records": 0})
        kind["items_added" if old is None else "items_changed"] += 1
        # per-batch items say how many records they count: those are counted again
        kind["records"] += int((new or {}).get("records", 0))
    return dict(sorted(result.items()))


def _replay_mapping(lambda_: Any, mapping: MappingConfig, batch_size: int) -> MappingConfig:
    """A second mapping like `mapping`, from TRIM_HORIZON with `batch_size` and no maximum age."""
    request: dict[str, Any] = {
        "EventSourceArn": mapping.event_source_arn,
        "FunctionName": mapping.function_arn,
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": batch_size,
        "MaximumBatchingWindowInSeconds": int(mapping.batching_window_s),
        "ParallelizationFactor": mapping.parallelization_factor,
        "BisectBatchOnFunctionError": mapping.bisect_on_error,
        "MaximumRetryAttempts": mapping.maximum_retry_attempts,
        # a replay reads old records on purpose: with the mapping's maximum age (an hour by
        # default) Lambda would send them straight to FailureQueue
        "MaximumRecordAgeInSeconds": -1,
    }
    if mapping.report_batch_item_failures:
        request["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
    if mapping.on_failure_destination:
        request["DestinationConfig"] = {
            "OnFailure": {"Destination": mapping.on_failure_destination}
        }
    return MappingConfig.from_api(lambda_.create_event_source_mapping(**request))


def replay(
    clients: Callable[[str], Any],
    outputs: Mapping[str, str],
    emulator: EventSourceEmulator,
    drain: Callable[[], None],
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Replay both streams from TRIM_HORIZON with other batch sizes, drain, and say what changed."""
    before = snapshot(clients, outputs)
    lambda_ = clients("lambda")
    originals = list(emulator.mappings)
    read_before = {m.uuid: emulator.stats[m.uuid].records_read for m in originals}
    started = time.monotonic()
    created = [
        (
            mapping,
            _replay_mapping(
                lambda_, mapping, batch_size or different_batch_size(mapping.batch_size)
            ),
        )
        for mapping in originals
    ]
    try:
        emulator.add([copy for _, copy in created])
        drain()
    finally:
        for _, copy in created:
            emulator.remove(copy.uuid)
            lambda_.delete_event_source_mapping(UUID=copy.uuid)
    seconds = time.monotonic() - started
    after = snapshot(clients, outputs)
    mappings: dict[str, Any] = {}
    # functions by logical id (their deployed names are CloudFormation's)
    logical_ids = {
        arn: key.removesuffix("Arn") for key, arn in outputs.items() if key.endswith("FunctionArn")
    }
    for original, copy in created:
        stats = emulator.stats[copy.uuid]
        mappings[original.stream_name] = {
            "function": logical_ids.get(
                original.function_arn, original.function_arn.rsplit(":", 1)[-1]
            ),
            "batch_size": original.batch_size,
            "replay_batch_size": copy.batch_size,
            "records_replayed": stats.records_read,
            "invocations": stats.invocations,
            "mean_batch_size": stats.as_dict()["mean_batch_size"],
            "records_discarded": stats.records_discarded,
            # what the original mapping read meanwhile: records the replay put on its stream
            "records_added_meanwhile": emulator.stats[original.uuid].records_read
            - read_before[original.uuid],
        }
    return {
        "seconds": round(seconds, 2),
        "mappings": mappings,
        "records_replayed": sum(m["records_replayed"] for m in mappings.values()),
        "predictions_changed": _changed(before.predictions, after.predictions),
        "card_states_changed": _changed(before.states, after.states),
        "feature_items_changed": _changed(before.features, after.features),
        "monitoring": _monitoring(before, after),
    }


def replay_problems(section: Mapping[str, Any]) -> list[str]:
    """What the replay changed that it must not have (each transaction applies once)."""
    problems = []
    for key, what in (
        ("predictions_changed", "prediction items"),
        ("card_states_changed", "card states"),
        ("feature_items_changed", "FeaturesTable items"),
    ):
        if section.get(key):
            problems.append(
                f"the replay changed {section[key]:,} {what}: a transaction applied twice"
            )
    discarded = sum(m["records_discarded"] for m in section.get("mappings", {}).values())
    if discarded:
        problems.append(f"the replay gave up on {discarded:,} records (see FailureQueue)")
    return problems
