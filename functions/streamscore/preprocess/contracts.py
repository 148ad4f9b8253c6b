"""The data contracts between the pipeline's parts (see docs/ARCHITECTURE.md, "Contracts")."""

from __future__ import annotations

import math
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)
from pydantic_core import PydanticCustomError

from streamscore.core.ids import (
    MAX_TRANSACTION_ID_CHARS,
    TRANSACTION_ID_CHARS,
    CardId,
    TransactionId,
)
from streamscore.core.pan import contains_pan
from streamscore.preprocess.codes import COUNTRY_CODES, CURRENCY_CODES

# Space separators (Unicode category Zs), stripped from both ends of a name id.
SPACE_SEPARATORS = "\u0020\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
# Unicode categories a name id never contains (the joiners below excepted):
#   Cc controls (C0, DEL, C1): break log lines, CSV and terminals; no name holds one.
#   Cf format characters: invisible, so "ACME" and "AC<U+200B>ME" would be two keys that
#      look alike; bidi overrides (U+202E) display text reversed; tags (U+E0020...) hide
#      text; U+FEFF is a stray byte-order mark. (Tag-sequence flags, e.g. England's, go too.)
#   Cs lone surrogates: not encodable as UTF-8 (DynamoDB, "Supported data types and naming
#      rules": "Strings are Unicode with UTF-8 binary encoding."), so the write would fail. pydantic refuses them first (the JSON
#      parser, and string_unicode for a Python str); listed so the rule stands on its own.
#   Co private use: no agreed meaning, renders differently per font.
#   Cn unassigned (and noncharacters): unknown to this runtime's Unicode tables (15.1 on
#      Python 3.13), so unjudgeable; a character newer than them is refused until then.
#   Zl, Zp line and paragraph separators: line breaks in logs and in JavaScript.
# Spaces (Zs) inside are fine ("ACME #12", the ideographic space of Japanese names).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Zero-width non-joiner and joiner are Cf but needed between characters: in Persian and
# Indic words, and in emoji ZWJ sequences (family, profession and gender emoji).
_JOINERS = frozenset({"\u200c", "\u200d"})
MAX_NAME_ID_CHARS = 128


def _strip_spaces(value: Any) -> Any:
    # Leading and trailing spaces are padding (fixed-width formats such as ISO 8583's card
    # acceptor fields pad with spaces): "MID123   " is merchant MID123. Stripped, not
    # refused, so padded producers are scored and one merchant is one key, not two that
    # look alike.
    return value.strip(SPACE_SEPARATORS) if isinstance(value, str) else value


def _no_card_number(value: str) -> str:
    if contains_pan(value):
        # the message names the rule, never the value
        raise PydanticCustomError(
            "card_number_in_id",
            "looks like a card number (13-19 digits passing the Luhn check): "
            "send a token, never the card number",
        )
    return value


def _printable(value: str) -> str:
    if value.isprintable():  # no C* or Z* character but the ASCII space: the usual case
        return value
    for position, char in enumerate(value):
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES and char not in _JOINERS:
            raise PydanticCustomError(
                "id_character",
                "must be printable: Unicode category {category} at character {position}",
                {"category": category, "position": position},
            )
    if value[0] in _JOINERS or value[-1] in _JOINERS:
        raise PydanticCustomError(
            "id_character", "must not start or end with a zero-width joiner or non-joiner"
        )
    return value


# transaction_id keys FeaturesTable and PredictionsTable and appears in logs and alert ids:
# kept to a strict ASCII set.
TransactionIdentifier = Annotated[
    TransactionId,
    Field(
        min_length=1,
        max_length=MAX_TRANSACTION_ID_CHARS,
        pattern=rf"^[{TRANSACTION_ID_CHARS}]+$",
    ),
    AfterValidator(_no_card_number),
]
# card_id and merchant_id as payments carry them ("ACME #12", "MCD:1234", "Café Zürich"):
# 1-128 printable Unicode characters after stripping edge spaces. The bounds hold as keys:
# card_id is EntityStateTable's partition key as it is (no prefix, see aws/preprocess_stores.py) and
# FeaturesStream's partition key. 128 characters are at most 512 UTF-8 bytes, and 256 UTF-16
# code units, whichever the count.
#   DynamoDB, "Constraints in Amazon DynamoDB", Partition key length: "The minimum length
#   of a partition key value is 1 byte. The maximum length is 2048 bytes."
#   Kinesis API Reference, PutRecordsRequestEntry, PartitionKey: "Partition keys are Unicode
#   strings with a maximum length limit of 256 characters for each key."
# No Unicode normalisation: an id is compared exactly as sent ("é" and "e" + U+0301 are two
# ids); producers should send NFC.
_NAME_RULES = (
    Field(min_length=1, max_length=MAX_NAME_ID_CHARS),  # on the stripped value, in characters
    BeforeValidator(_strip_spaces),
    AfterValidator(_no_card_number),
    AfterValidator(_printable),
)
NameIdentifier = Annotated[str, *_NAME_RULES]
CardIdentifier = Annotated[CardId, *_NAME_RULES]
Channel = Literal["pos", "ecom", "atm", "moto"]
CHANNELS: tuple[str, ...] = ("pos", "ecom", "atm", "moto")
MAX_AMOUNT = 1_000_000.0


class Transaction(BaseModel):
    """One card transaction as producers put it on TransactionsStream (UTF-8 JSON)."""

    # strict: a string is not an amount, a number is not an MCC; extra fields are ignored.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    transaction_id: TransactionIdentifier
    card_id: CardIdentifier  # a token, never the card number
    merchant_id: NameIdentifier
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
