"""The data contracts between the pipeline's parts (see DESIGN.md, "Contracts")."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from streamscore.codes import COUNTRY_CODES, CURRENCY_CODES

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Channel = Literal["pos", "ecom", "atm", "moto"]
CHANNELS: tuple[str, ...] = ("pos", "ecom", "atm", "moto")
MAX_AMOUNT = 1_000_000.0


class Transaction(BaseModel):
    """One card transaction as producers put it on TransactionsStream (UTF-8 JSON)."""

    # strict: a string is not an amount, a number is not an MCC; extra fields are ignored.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    transaction_id: Identifier
    card_id: Identifier
    merchant_id: Identifier
    amount: Annotated[float, Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False)]
    currency: Annotated[str, Field(min_length=3, max_length=3)]
    country: Annotated[str, Field(min_length=2, max_length=2)]
    mcc: Annotated[str, Field(pattern=r"^[0-9]{4}$")]
    channel: Channel
    event_time: AwareDatetime

    @field_validator("amount")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("amount must be a finite number")
        return value

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in CURRENCY_CODES:
            raise ValueError("not a known ISO 4217 currency code")
        return value

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        if value not in COUNTRY_CODES:
            raise ValueError("not a known ISO 3166-1 alpha-2 country code")
        return value


def format_event_time(moment: datetime) -> str:
    """ISO 8601 with offset, second precision: the wire format of `event_time`."""
    return moment.isoformat(timespec="seconds")
