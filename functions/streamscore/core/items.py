"""Conversions between plain Python values and DynamoDB item values.

DynamoDB numbers are decimals: floats go in as ``Decimal(repr(x))``, the shortest
string that round-trips, so a value read back is the identical float. That
exactness is what lets a replay reproduce features from stored state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

MIN_MAGNITUDE = 1e-130
MAX_MAGNITUDE = 1e126


def number_text(value: float) -> str:
    """The text DynamoDB stores for a float (``to_item_value`` makes its Decimal of it).

    The shortest repr that round-trips, as ``str(Decimal(repr(value)))`` spells it (exponents
    as ``1E+16`` and ``0.00001``, the form boto3 sends), without building a Decimal unless the
    repr has an exponent. Non-finite and too large values raise, magnitudes below 1e-130 are 0.
    """
    if not math.isfinite(value):
        raise ValueError(f"DynamoDB cannot store the non-finite number {value!r}")
    if abs(value) >= MAX_MAGNITUDE:
        raise ValueError(f"DynamoDB cannot store the number {value!r} (magnitude 1e126 or more)")
    if abs(value) < MIN_MAGNITUDE:
        return "0"  # DynamoDB cannot store a non-zero magnitude below 1e-130
    text = repr(value)
    return str(Decimal(text)) if "e" in text else text


def plain_number(text: str) -> int | float:
    """A DynamoDB number's text as plain Python: int when integral, else float."""
    if "." in text or "e" in text or "E" in text:
        return float(text)
    return int(text)


def to_item_value(value: Any) -> Any:
    """`value` with floats as Decimals (recursively), ready for boto3's serializer."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes, int)):
        return value
    if isinstance(value, float):
        return Decimal(number_text(value))
    if isinstance(value, Mapping):
        return {str(k): to_item_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_item_value(v) for v in value]
    raise TypeError(f"cannot store a {type(value).__name__} in DynamoDB")


def from_item_value(value: Any) -> Any:
    """`value` with Decimals as int (when integral) or float (recursively)."""
    if isinstance(value, Decimal):
        # DynamoDB may normalise 1.0 to 1: numeric equality is kept either way.
        return plain_number(str(value))
    if isinstance(value, Mapping):
        return {k: from_item_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_item_value(v) for v in value]
    return value
