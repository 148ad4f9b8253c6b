"""The time window a drift check reads: from an on-demand event, or the whole hours before a scheduled one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from streamscore.core.monitoring import window_key as count_window_key
from streamscore.core.times import utc_iso_ms

MAX_WINDOW = timedelta(days=7)
DAY = timedelta(days=1)


class InvalidWindowError(ValueError):
    """The event names no usable window (bad times, end not after start, longer than MAX_WINDOW)."""


# ---------------------------------------------------------------- the window


def _compact(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class DriftWindow:
    """[start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidWindowError("window start and end need a UTC offset")
        if self.end <= self.start:
            raise InvalidWindowError(
                f"window end {self.end.isoformat()} is not after its start {self.start.isoformat()}"
            )
        if self.end - self.start > MAX_WINDOW:
            raise InvalidWindowError(f"window longer than {MAX_WINDOW.days} days")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))

    @property
    def window_id(self) -> str:
        return f"{_compact(self.start)}--{_compact(self.end)}"

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60

    @property
    def recorded_bounds(self) -> tuple[str, str]:
        return utc_iso_ms(self.start), utc_iso_ms(self.end)

    def hours(self) -> list[datetime]:
        """Start of every UTC hour the window touches."""
        hour = self.start.replace(minute=0, second=0, microsecond=0)
        hours = []
        while hour < self.end:
            hours.append(hour)
            hour += timedelta(hours=1)
        return hours

    def count_hours(self) -> list[str]:
        """The hours of count items the window reads: every UTC hour it touches."""
        return [hour.strftime("%Y-%m-%dT%H") for hour in self.hours()]

    def count_keys(self) -> list[str]:
        return [count_window_key(hour) for hour in self.count_hours()]

    @property
    def count_bounds(self) -> tuple[str, str]:
        """`recorded_at` bounds of the count items (each is recorded at its hour's start)."""
        return utc_iso_ms(self.hours()[0]), utc_iso_ms(self.end)

    @property
    def whole_hours(self) -> bool:
        return self.start == self.hours()[0] and self.end.minute == self.end.second == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "minutes": round(self.minutes, 3),
        }


def _parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidWindowError(f"{what} must be an ISO 8601 time string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidWindowError(f"{what} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise InvalidWindowError(f"{what} needs a UTC offset")
    return moment


def resolve_window(event: Mapping[str, Any], now: datetime, minutes: int) -> DriftWindow:
    """The on-demand `{"window": {"start", "end"}}`, else the `minutes` before the event's `time` (or now).

    A scheduled window ends at the whole hour of its event time: counts are hourly, and
    an hourly schedule then checks the same whole hours however late it fires.
    """
    if "window" in event:
        window = event["window"]
        if not isinstance(window, Mapping):
            raise InvalidWindowError('"window" must be an object with "start" and "end"')
        return DriftWindow(
            _parse_time(window.get("start"), "window.start"),
            _parse_time(window.get("end"), "window.end"),
        )
    moment = _parse_time(event["time"], "time") if "time" in event else now
    end = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return DriftWindow(end - timedelta(minutes=minutes), end)
