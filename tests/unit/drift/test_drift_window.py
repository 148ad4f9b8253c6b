"""The drift check's window: from a scheduled or an on-demand event, refused with a reason when malformed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamscore.drift.window import DriftWindow, InvalidWindowError, resolve_window
from support.drift_check import (
    END,
    EVENTS,
)

# ---------------------------------------------------------------- the window


def test_scheduled_event_checks_the_minutes_before_its_time() -> None:
    # given
    event = json.loads((EVENTS / "drift_check_scheduled.json").read_text())

    # when
    window = resolve_window(event, now=datetime(2030, 1, 1, tzinfo=UTC), minutes=90)

    # then
    assert window.end == datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    assert window.start == datetime(2026, 3, 4, 10, 30, tzinfo=UTC)
    assert window.count_keys() == ["COUNT#2026-03-04T10", "COUNT#2026-03-04T11"]


def test_a_scheduled_window_ends_at_the_whole_hour_of_its_time() -> None:
    # given
    # counts are hourly: a schedule that fires late still checks the same whole hours
    late = {"time": "2026-03-04T12:00:41Z"}

    # when
    window = resolve_window(late, now=datetime(2030, 1, 1, tzinfo=UTC), minutes=1440)

    # then
    assert (window.start, window.end) == (END - timedelta(days=1), END)
    assert window.whole_hours and len(window.count_keys()) == 24


def test_on_demand_event_names_its_window() -> None:
    # given
    event = json.loads((EVENTS / "drift_check_window.json").read_text())

    # when
    window = resolve_window(event, now=datetime(2030, 1, 1, tzinfo=UTC), minutes=60)

    # then
    assert (window.start, window.end) == (END - timedelta(days=1), END)
    assert len(window.hours()) == 24
    assert window.window_id == "20260303T120000Z--20260304T120000Z"


def test_without_a_time_the_window_ends_now_and_offsets_become_utc() -> None:
    now = datetime(2026, 3, 4, 12, 5, 30, tzinfo=UTC)
    hour = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)

    assert resolve_window({}, now, 60) == DriftWindow(hour - timedelta(hours=1), hour)
    window = resolve_window(
        {"window": {"start": "2026-03-04T13:00:00+01:00", "end": "2026-03-04T13:30:00+01:00"}},
        now,
        60,
    )
    assert window.start == datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    assert window.recorded_bounds == (
        "2026-03-04T12:00:00.000+00:00",
        "2026-03-04T12:30:00.000+00:00",
    )
    assert window.count_keys() == ["COUNT#2026-03-04T12"]
    assert not window.whole_hours


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"start": "2026-03-04T12:00:00", "end": "2026-03-04T13:00:00+00:00"}, "UTC offset"),
        ({"start": "2026-03-04T12:00:00Z", "end": "2026-03-04T12:00:00Z"}, "not after its start"),
        ({"start": "2026-03-01T00:00:00Z", "end": "2026-03-09T00:00:00Z"}, "longer than 7 days"),
        ({"start": "yesterday", "end": "2026-03-04T12:00:00Z"}, "not an ISO 8601 time"),
        ({"start": 1700000000, "end": "2026-03-04T12:00:00Z"}, "ISO 8601 time string"),
        ("last week", "must be an object"),
    ],
)
def test_bad_windows_are_refused_with_a_reason(window: Any, message: str) -> None:
    with pytest.raises(InvalidWindowError, match=message):
        resolve_window({"window": window}, END, 60)
