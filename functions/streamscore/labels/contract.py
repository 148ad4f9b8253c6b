"""The Label contract: what production learns about a transaction after it was scored.

`{transaction_id, label: fraud | legit, labelled_at, source}`. Sources are short tokens naming
where the outcome came from; the ones card-fraud teams have: `chargeback` (the issuer's fraud
dispute, fraud), `review` (an analyst's outcome of a reviewed transaction, either label),
`cardholder` (the cardholder confirmed or denied it), `reversal` (a dispute reversed, legit).

A transaction's labels are ordered by their `label_key`: the time they were labelled, then fraud
above legit at the same millisecond, then the source. The label in force is the greatest key
received, whatever the order, repetition or batching of the records that carried them: a
dispute reversed later replaces the chargeback; a chargeback replayed after the reversal
changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from streamscore.core.ids import MAX_TRANSACTION_ID_CHARS, TRANSACTION_ID_CHARS, TransactionId
from streamscore.core.times import utc_iso_ms

FRAUD, LEGIT = "fraud", "legit"
MAX_LABEL_BYTES = 4096  # a label is a few fields; anything larger is not one
_RANK = {LEGIT: "0", FRAUD: "1"}


class Label(BaseModel):
    """One outcome of one transaction (docs/ARCHITECTURE.md, "Contracts")."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    transaction_id: Annotated[
        TransactionId,
        Field(pattern=rf"^[{TRANSACTION_ID_CHARS}]{{1,{MAX_TRANSACTION_ID_CHARS}}}$"),
    ]
    label: Literal["fraud", "legit"]
    labelled_at: AwareDatetime
    source: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


def label_key(label: Label) -> str:
    """The label's place among its transaction's labels; the greatest is in force. Compares as a
    string: the UTC time to the millisecond (fixed width), fraud (1) above legit (0), the source."""
    return f"{utc_iso_ms(label.labelled_at)}#{_RANK[label.label]}#{label.source}"
