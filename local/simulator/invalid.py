"""Invalid stream records for quarantine paths: raw bytes plus the category of what is wrong."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

INVALID_CATEGORIES: tuple[str, ...] = (
    "not_json",
    "not_object",
    "missing_field",
    "invalid_amount",
    "invalid_currency",
    "invalid_country",
    "invalid_mcc",
    "invalid_channel",
    "invalid_event_time",
    "invalid_identifier",
)
REQUIRED_FIELDS: tuple[str, ...] = (
    "transaction_id",
    "card_id",
    "merchant_id",
    "amount",
    "currency",
    "country",
    "mcc",
    "channel",
    "event_time",
)

_NOT_JSON: tuple[bytes, ...] = (
    b"",
    b"not json at all",
    b'{"transaction_id": "bad-0001", "amount": 12.5',  # truncated
    b"\xff\xfe\x00{}",  # not UTF-8
    b"{'transaction_id': 'single-quotes'}",
)
_NOT_OBJECT: tuple[bytes, ...] = (b"[1, 2, 3]", b'"a string"', b"null", b"42", b"true")
# Field values the contract rejects, per category; raw JSON text, so NaN and Infinity stay literal.
_BAD_VALUES: dict[str, tuple[tuple[str, str], ...]] = {
    "invalid_amount": (
        ("amount", "-12.5"),
        ("amount", "0"),
        ("amount", "NaN"),
        ("amount", "Infinity"),
        ("amount", '"12.50"'),
        ("amount", "2000000.0"),
        ("amount", "null"),
    ),
    "invalid_currency": (
        ("currency", '"XYZ"'),
        ("currency", '"eur"'),
        ("currency", '"EURO"'),
        ("currency", "978"),
    ),
    "invalid_country": (("country", '"ZZ"'), ("country", '"deu"'), ("country", '""')),
    "invalid_mcc": (("mcc", '"59"'), ("mcc", '"abcd"'), ("mcc", "5411")),
    "invalid_channel": (("channel", '"web"'), ("channel", '"POS"'), ("channel", "null")),
    "invalid_event_time": (
        ("event_time", '"2026-03-02T14:05:09"'),  # no offset
        ("event_time", '"yesterday"'),
        ("event_time", '"2026-13-45T00:00:00Z"'),
        ("event_time", "1772456709"),
    ),
    "invalid_identifier": (
        ("transaction_id", '"has spaces and /slashes"'),
        ("transaction_id", '"' + "x" * 65 + '"'),
        ("card_id", '"4111 1111 1111 1111"'),
        ("merchant_id", '""'),
    ),
}


def _valid_fields(rng: np.random.Generator, index: int) -> dict[str, object]:
    return {
        "transaction_id": f"bad-{index:06d}",
        "card_id": f"card_{int(rng.integers(0, 1_000_000)):06d}",
        "merchant_id": f"m_DE_{int(rng.integers(0, 100_000)):06d}",
        "amount": round(float(rng.uniform(1.0, 200.0)), 2),
        "currency": "EUR",
        "country": "DE",
        "mcc": "5411",
        "channel": "pos",
        "event_time": "2026-03-02T14:05:09+01:00",
    }


def _with_raw_value(fields: dict[str, object], name: str, raw: str) -> bytes:
    """The fields as JSON with `name` set to the raw JSON text `raw`."""
    parts = [
        f"{json.dumps(key)}:{raw if key == name else json.dumps(value)}"
        for key, value in fields.items()
    ]
    return ("{" + ",".join(parts) + "}").encode()


def _pick[T](rng: np.random.Generator, options: Sequence[T]) -> T:
    return options[int(rng.integers(0, len(options)))]


def invalid_payloads(rng: np.random.Generator, n: int) -> list[tuple[bytes, str]]:
    """`n` payloads the Transaction contract rejects, each with its INVALID_CATEGORIES name."""
    out: list[tuple[bytes, str]] = []
    for index in range(n):
        category = _pick(rng, INVALID_CATEGORIES)
        fields = _valid_fields(rng, index)
        if category == "not_json":
            payload = _pick(rng, _NOT_JSON)
        elif category == "not_object":
            payload = _pick(rng, _NOT_OBJECT)
        elif category == "missing_field":
            del fields[_pick(rng, REQUIRED_FIELDS)]
            payload = json.dumps(fields).encode()
        else:
            name, raw = _pick(rng, _BAD_VALUES[category])
            payload = _with_raw_value(fields, name, raw)
        out.append((payload, category))
    return out


def inject_invalid(
    payloads: Sequence[bytes],
    rng: np.random.Generator,
    rate: float,
) -> list[tuple[bytes, str | None]]:
    """The valid `payloads` in order with invalid ones interleaved: each valid payload is preceded
    by an invalid one with probability `rate`. The category is None for the valid payloads."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError("rate must be in [0, 1]")
    before = rng.random(len(payloads)) < rate
    bad = iter(invalid_payloads(rng, int(before.sum())))
    mixed: list[tuple[bytes, str | None]] = []
    for payload, flagged in zip(payloads, before.tolist(), strict=True):
        if flagged:
            mixed.append(next(bad))
        mixed.append((payload, None))
    return mixed
