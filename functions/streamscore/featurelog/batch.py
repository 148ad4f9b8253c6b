"""One batch of PredictionsTable stream changes into the feature log.

Only INSERTs are logged: a prediction's first write is the transaction as scoring committed it.
A MODIFY (a replay re-scored by another model version, a challenger's fields) and a REMOVE (TTL)
are not new transactions. Stream records come in the table's order per item, and a batch is
handled up to its first failure: records before it are logged, it and those after are reported
failed (ReportBatchItemFailures), so Lambda retries from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streamscore.core.errors import RetryableError
from streamscore.core.ids import TransactionId
from streamscore.featurelog.ports import FeatureLogPorts
from streamscore.featurelog.rows import encode, log_row, object_key, scored_date

INSERT = "INSERT"


@dataclass(frozen=True)
class Change:
    """One DynamoDB stream record of PredictionsTable (NEW_IMAGE), its item as plain Python."""

    sequence_number: str
    event_id: str
    event_name: str  # INSERT | MODIFY | REMOVE
    new_image: dict[str, Any] | None


@dataclass
class LogOutcome:
    records_in: int = 0
    inserts: int = 0
    rows_logged: int = 0  # rows in objects written now
    rows_already_logged: int = 0  # rows of objects a retry found written
    objects_written: int = 0
    features_missing: int = 0
    failed_from: str | None = None  # the sequence number to retry from
    failed_records: int = 0
    problems: list[str] = field(default_factory=list)


def log_batch(changes: Sequence[Change], ports: FeatureLogPorts) -> LogOutcome:
    outcome = LogOutcome(records_in=len(changes))
    inserts = [(i, c, c.new_image) for i, c in enumerate(changes) if c.event_name == INSERT]
    images = [(i, c, image) for i, c, image in inserts if image]
    outcome.inserts = len(images)
    stop = len(changes)
    ids = list(dict.fromkeys(TransactionId(str(image["transaction_id"])) for _, _, image in images))
    found, unread = ports.features.load(ids) if ids else ({}, set())
    if unread:
        stop = min(i for i, _, image in images if image["transaction_id"] in unread)
        outcome.problems.append(f"{len(unread)} feature records unread")
    groups: dict[str, list[tuple[int, Change, dict[str, Any]]]] = {}
    for i, change, image in images:
        if i < stop:
            features = found.get(TransactionId(str(image["transaction_id"])))
            outcome.features_missing += features is None
            row = log_row(image, features)
            groups.setdefault(scored_date(row), []).append((i, change, row))
    for date, group in sorted(groups.items()):
        failed = _write(date, group, ports, outcome)
        stop = stop if failed is None else min(stop, failed)
    if stop < len(changes):
        outcome.failed_from = changes[stop].sequence_number
        outcome.failed_records = len(changes) - stop
    return outcome


def _write(
    date: str,
    group: Sequence[tuple[int, Change, dict[str, Any]]],
    ports: FeatureLogPorts,
    outcome: LogOutcome,
) -> int | None:
    """Write one date's rows; the index of its first record if the write failed."""
    first = group[0]
    key = object_key(date, first[1].sequence_number, [c.event_id for _, c, _ in group])
    try:
        written = ports.log.put(key, encode(row for _, _, row in group))
    except RetryableError as error:
        outcome.problems.append(f"{key}: {error}")
        return first[0]
    if written:
        outcome.objects_written += 1
        outcome.rows_logged += len(group)
    else:
        outcome.rows_already_logged += len(group)
    return None
