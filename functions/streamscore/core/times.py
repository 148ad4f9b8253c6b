"""The one format of a stored time: UTC, ISO 8601, milliseconds, `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_iso_ms(moment: datetime) -> str:
    """`moment` in the one format of stored times: UTC, ISO 8601 to the millisecond, `+00:00`.

    e.g. `2026-03-04T10:15:30.123+00:00`. The same instant gives the same string
    whatever its offset, so stored times (and the bounds queried against them)
    compare as strings. Sub-millisecond digits are dropped, not rounded. A naive
    datetime raises ValueError: its instant is unknown.
    """
    if moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: a stored time needs a UTC offset")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def iso_time(epoch_seconds: float) -> str:
    """An epoch time (e.g. a record's arrival) in the stored format, see `utc_iso_ms`."""
    return utc_iso_ms(datetime.fromtimestamp(epoch_seconds, UTC))
