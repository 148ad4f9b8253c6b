"""The identifiers the stages pass between them, as distinct types: a mix-up is a mypy error.

Every port returns the keys it could not do, each port its own kind of key; the step
runner (streamscore.core.steps) maps them back to records by the Kinesis sequence
number Lambda resumes at. At run time they are plain `str`.
"""

from __future__ import annotations

import re
from typing import NewType

CardId = NewType("CardId", str)  # a Transaction's card_id, EntityStateTable's key
TransactionId = NewType("TransactionId", str)  # FeaturesTable's and PredictionsTable's key
RecordId = NewType("RecordId", str)  # stream/shard/sequence[#index]: QuarantineTable's key
SequenceNumber = NewType("SequenceNumber", str)  # a Kinesis record's; batchItemFailures names it

# A transaction id is a table key, a log field and part of an alert id: a strict ASCII set.
# The Transaction contract validates it; the score stage checks feature records against it.
TRANSACTION_ID_CHARS = "A-Za-z0-9_-"
MAX_TRANSACTION_ID_CHARS = 64
TRANSACTION_ID = re.compile(rf"[{TRANSACTION_ID_CHARS}]{{1,{MAX_TRANSACTION_ID_CHARS}}}")
