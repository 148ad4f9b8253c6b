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
    inserts = [(i, c) for i, c in enumerate(changes) if c.event_name == INSERT and c.new_image]
    outcome.inserts = len(inserts)
    ids = list(
        dict.fromkeys(
            TransactionId(str(c.new_image["transaction_id"])) for _, c in inserts if c.new_image
        )
    )
    found, unread = ports.features.load(ids) if ids else ({}, set())
    stop = len(changes)
    for i, change in inserts:
        if change.new_image and change.new_image["transaction_id"] in unread:
            stop = i
            outcome.problems.append(f"{len(unread)} feature records unread")
            break
    groups: dict[str, list[tuple[int, Change, dict[str, Any]]]] = {}
    for i, change in inserts:
        if i >= stop or change.new_image is None:
            continue
        features = found.get(TransactionId(str(change.new_image["transaction_id"])))
        row = log_row(change.new_image, features)
        outcome.features_missing += features is None
        groups.setdefault(scored_date(row), []).append((i, change, row))
    for date, group in sorted(groups.items()):
        key = object_key(date, group[0][1].sequence_number, [c.event_id for _, c, _ in group])
        try:
            written = ports.log.put(key, encode(r for _, _, r in group))
        except RetryableError as error:
            stop = min(stop, group[0][0])
            outcome.problems.append(f"{key}: {error}")
            continue
        if written:
            outcome.objects_written += 1
            outcome.rows_logged += len(group)
        else:
            outcome.rows_already_logged += len(group)
    if stop < len(changes):
        outcome.failed_from = changes[stop].sequence_number
        outcome.failed_records = len(changes) - stop
    return outcome
