"""The feature record: what preprocess stores in FeaturesTable and puts on FeaturesStream, and score reads.

One definition for producer and consumer. A TypedDict, not a model class: it stays the
plain dict the hot paths build, store and serialise (no per-record object or validation
on the producer side, where the values come from a validated Transaction), while mypy
checks every field name and type on both sides. The consumer cannot trust its input (a
FeaturesStream record may come from anybody): it checks the fields it relies on
(`SCORED_TEXT_FIELDS`, `features`) before it treats a JSON object as one.
"""

from __future__ import annotations

import json
from typing import NotRequired, TypedDict

from streamscore.core.ids import CardId, SequenceNumber, TransactionId

MAX_FEATURE_RECORD_BYTES = 64 * 1024  # a feature record is under a kilobyte


class FeatureRecord(TypedDict):
    transaction_id: TransactionId
    card_id: CardId
    event_time: str  # the transaction's, ISO 8601 with its offset
    feature_schema: str  # names the feature set and its order (the model card's)
    features: dict[str, float]
    state_version: int  # the card's transaction count after this transaction
    # seconds the pipeline had known the card at this transaction (0 for its first); not a
    # feature: the drift check's history strata. Records from before it have none.
    card_age_s: NotRequired[float]
    transaction_digest: str  # tells a repeat of the transaction from a conflicting one
    source_sequence_number: SequenceNumber  # its TransactionsStream record
    source_shard_id: str
    arrived_at: str  # on TransactionsStream (approximateArrivalTimestamp)
    ingested_at: str  # when preprocess built it
    source_sub_sequence_number: NotRequired[int]  # its index in a KPL aggregate


# the text fields the score stage reads; each must be a non-empty string
SCORED_TEXT_FIELDS = ("transaction_id", "event_time", "feature_schema")


def encode_feature_record(record: FeatureRecord) -> bytes:
    """The record as FeaturesStream carries it: compact UTF-8 JSON, no NaN."""
    return json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
