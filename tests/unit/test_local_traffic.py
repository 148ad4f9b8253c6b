"""The local run's simulated traffic: a cold stack's days, and the window the drift check reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from embedded.producer import BASELINE_SHARE, SIMULATED_DAYS, simulated_traffic


def _event_time(payload: bytes) -> datetime | None:
    try:
        return datetime.fromisoformat(json.loads(payload)["event_time"]).astimezone(UTC)
    except (ValueError, KeyError, TypeError):
        return None


def test_the_checked_window_holds_the_days_after_the_baseline_ones_only() -> None:
    # given simulated traffic with invalid records mixed in (some carry any event time)
    traffic = simulated_traffic(3000, "channel-shift", invalid_rate=0.02, seed=5)

    # when
    window = traffic.checked_window()

    # then it opens with the first checked transaction and holds every later valid one
    assert window is not None
    start, end = window
    first = _event_time(traffic.payloads[traffic.monitored_from])
    assert start == first
    checked = [_event_time(p) for p in traffic.payloads[traffic.monitored_from :]]
    assert max(t for t in checked if t) < end
    baseline = [_event_time(p) for p in traffic.payloads[: traffic.monitored_from]]
    assert sum(1 for t in baseline if t and t >= start) < 0.05 * len(baseline)
    span = end - start
    days_checked = (1 - BASELINE_SHARE) * SIMULATED_DAYS
    assert timedelta(days=days_checked - 0.5) < span < timedelta(days=days_checked + 0.5)
