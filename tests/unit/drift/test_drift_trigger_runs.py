"""Property: runs of the drift check with faults deliver each trigger at least once, twice only when unknown."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import hypothesis.strategies as st
from hypothesis import given, settings

from streamscore.core.errors import RetryableError
from streamscore.drift.baseline import DriftBaseline
from streamscore.drift.check import DriftCheckOutcome, DriftCheckPolicy, check_drift
from streamscore.drift.report import (
    TRIGGER_EVENTS,
)
from streamscore.drift.window import DriftWindow
from support.drift_check import (
    DAY_WINDOW,
    END,
    PORT_CALLS,
    THRESHOLDS,
    UNRECORDED_OUTCOME,
    Crash,
    Fault,
    FaultyPorts,
    drifted_amount,
    window_items,
)
from support.fakes import (
    MemoryDriftPorts,
)

# ---------------------------------------------------------------- property: runs with faults

POOL = tuple(
    DriftWindow(DAY_WINDOW.start + timedelta(hours=k), END + timedelta(hours=k)) for k in range(4)
)
PROPERTY_COOLDOWN = timedelta(hours=5.5)  # runs are whole hours apart: never at its edge
RETRY_AFTER = timedelta(minutes=2)  # between the attempts of a run; the lease is 20 minutes


class PoolReader:
    """The drifted items for the drifted windows of POOL, baseline-like ones for the others."""

    def __init__(self, baseline: DriftBaseline, drifted: set[int]):
        n = 400
        self.drifted = {POOL[i].recorded_bounds[0] for i in drifted}
        self.shifted = window_items(
            baseline, n, shifted={"amount_log": drifted_amount(baseline, n)}
        )
        self.like_baseline = window_items(baseline, n)

    def read(self, window_keys: Sequence[str], start: str, end: str) -> list[dict[str, Any]]:
        return list(self.shifted if start in self.drifted else self.like_baseline)


# One attempt's fault: the port call it hits (past the run's calls: none), how, and the detail
# types EventBridge refuses in that attempt.
attempt_faults = st.tuples(
    st.integers(0, len(PORT_CALLS)),
    st.sampled_from(["fail", "lost", "crash"]),
    st.frozensets(st.sampled_from(TRIGGER_EVENTS)),
)
runs = st.lists(
    st.tuples(
        st.integers(1, 8),  # hours after the previous run
        st.integers(0, len(POOL) - 1),  # its window
        st.lists(attempt_faults, max_size=3),  # faulty attempts, then a clean one...
        st.sampled_from([False, False, False, True]),  # ...unless the run is abandoned
    ),
    min_size=1,
    max_size=8,
)


@dataclass
class RunLog:
    start: datetime
    trigger_id: str
    drifted: bool
    outcome: DriftCheckOutcome | None = None  # None: every attempt failed (abandoned)
    deliveries: list[tuple[str, str, datetime]] = field(default_factory=list)


Plan = list[tuple[int, int, list[tuple[int, Fault, frozenset[str]]], bool]]


def play(
    baseline: DriftBaseline, drifted: set[int], plan: Plan
) -> tuple[list[RunLog], Counter[str], list[tuple[str, datetime]]]:
    """The runs of `plan`, each attempt with its fault; the runs' logs, the attempts per trigger
    id whose PutEvents outcome went unstored, and the triggers the cooldown committed."""
    ports = MemoryDriftPorts(PoolReader(baseline, drifted))  # type: ignore[arg-type]
    policy = DriftCheckPolicy(THRESHOLDS, PROPERTY_COOLDOWN / timedelta(hours=1), 90)
    unrecorded: Counter[str] = Counter()
    logs: list[RunLog] = []
    start = END
    for hours, window_index, faults, abandoned in plan:
        start += timedelta(hours=hours)
        window = POOL[window_index]
        log = RunLog(start, f"{baseline.model_version}/{window.window_id}", window_index in drifted)
        logs.append(log)
        attempts = [*faults, None] if not abandoned or not faults else faults
        for attempt, fault in enumerate(attempts):
            now = start + attempt * RETRY_AFTER
            at, kind, refused = fault or (None, "fail", frozenset())
            faulty = FaultyPorts(ports.wired(), at, kind)
            ports.events.refuse = set(refused)
            sent_before = len(ports.events.entries)
            with contextlib.suppress(RetryableError, Crash):
                log.outcome = check_drift(window, baseline, faulty.ports, policy, now)
            log.deliveries += [
                (json.loads(e["Detail"])["trigger_id"], e["DetailType"], now)
                for e in ports.events.entries[sent_before:]
            ]
            unrecorded[log.trigger_id] += any(made in UNRECORDED_OUTCOME for made in faulty.made)
            if log.outcome is not None:
                break
    return logs, unrecorded, ports.cooldown.commits


def expected_trigger(log: RunLog, commits: list[tuple[str, datetime]]) -> str:
    before = [(trigger, when) for trigger, when in commits if when < log.start]
    if not log.drifted:
        return "not_drift"
    if any(trigger == log.trigger_id for trigger, _ in before):
        return "sent"  # a re-run of a window whose trigger completed: nothing to send
    if any(log.start - when <= PROPERTY_COOLDOWN for _, when in before):
        return "cooldown"
    return "send"


@settings(max_examples=200, deadline=None)
@given(drifted=st.sets(st.integers(0, len(POOL) - 1), min_size=1), plan=runs)
def test_faulty_runs_deliver_each_trigger_at_least_once_and_twice_only_when_unknown(
    baseline: DriftBaseline, drifted: set[int], plan: Plan
) -> None:
    logs, unrecorded, commits = play(baseline, drifted, plan)

    deliveries = [d for log in logs for d in log.deliveries]
    # every run that ended on a drifted window outside the cooldown of a completed trigger
    # has its trigger delivered by then; a run inside it, or on another window, sent nothing
    for i, log in enumerate(logs):
        if log.outcome is None:
            continue  # abandoned: its retries ran out
        expected = expected_trigger(log, commits)
        if expected == "send":
            so_far = {
                kind
                for earlier in logs[: i + 1]
                for t, kind, _ in earlier.deliveries
                if t == log.trigger_id
            }
            assert log.outcome.trigger == "sent"
            assert so_far >= set(TRIGGER_EVENTS)
        else:
            assert (log.outcome.trigger, log.deliveries) == (expected, [])
    # a detail type goes out twice only after an attempt whose PutEvents outcome went unstored
    sends = Counter((trigger, kind) for trigger, kind, _ in deliveries)
    for (trigger, _), count in sends.items():
        assert count <= 1 + unrecorded[trigger], (trigger, count, unrecorded)
    # a trigger commits once every detail type went out; nothing is sent within its cooldown
    for trigger, when in commits:
        out = {kind for t, kind, at in deliveries if t == trigger and at <= when}
        assert out == set(TRIGGER_EVENTS)
        for t, _, at in deliveries:
            assert not (t != trigger and when < at <= when + PROPERTY_COOLDOWN)
            assert not (t == trigger and at > when)
