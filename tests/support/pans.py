"""Card numbers and ids as payments carry them, and ways to look for a card number in what was stored or printed."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from typing import Any

# Test card numbers the card networks publish for test environments (never real accounts).
TEST_PANS = {
    "visa": "4111111111111111",
    "visa_13": "4222222222222",
    "mastercard": "5555555555554444",
    "mastercard_2_series": "2223003122003222",
    "amex_15": "378282246310005",
    "discover": "6011111111111117",
    "jcb": "3530111333300000",
    "diners_14": "30569309025904",
}
REALISTIC_MERCHANTS = [
    "ACME #12",
    "MCD:1234",
    "Café Zürich",
    "7-ELEVEN 4711",
    "ファミリーマート\u3000渋谷店",  # an ideographic space inside
    "星巴克 (上海)",
    "스타벅스 강남",
    "☕ Corner Coffee 🍩",
    "👩\u200d🍳 Chef's table",  # a ZWJ emoji sequence
    "Ölkännchen & Söhne GmbH",
    "مقهى القاهرة",
    "O'Brien's Pub / Dublin 2",
]


def digits_only(text: str) -> str:
    return re.sub(r"\D", "", text)


def unseparated(text: str) -> str:
    """`text` without the spaces and dashes people put inside card numbers."""
    return re.sub(r"[\s\-\u2010-\u2015]", "", text)


def item_texts(item: Any) -> Iterator[str]:
    """Every string a stored item holds, the base64 payload decoded (lossily) as well."""
    if isinstance(item, Mapping):
        for name, value in item.items():
            yield str(name)
            if name == "payload_b64":
                raw = base64.b64decode(value)
                yield raw.decode("utf-8", "replace")
                yield raw.decode("utf-16-le", "replace")
            yield from item_texts(value)
    elif isinstance(item, list):
        for value in item:
            yield from item_texts(value)
    else:
        yield str(item)


def holds_any(item: Mapping[str, Any], pans: list[str]) -> list[str]:
    """The PANs some string of `item` holds, separators or not."""
    return [
        pan for text in item_texts(item) for pan in pans if pan in unseparated(text) or pan in text
    ]
