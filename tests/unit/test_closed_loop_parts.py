"""The closed loop's pure parts: its midnights over the traffic, quality by the simulator's truth,
and what fails a closed-loop run."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from embedded.async_invocations import invoke_async
from embedded.closed_loop import loop_problems, midnights, truth_quality
from embedded.containers import FunctionError, Invocation
from embedded.producer import event_time, simulated_traffic
from embedded.summary import transaction_id


def test_each_midnight_comes_after_every_transaction_of_its_day_and_before_the_rest() -> None:
    traffic = simulated_traffic(3_000, "channel-shift", 0.05, seed=3, days=10, baseline_days=4)
    known = [
        (index, event_time(p))
        for index, p in enumerate(traffic.payloads)
        if transaction_id(p) in traffic.labels
    ]

    found = midnights(traffic)

    assert traffic.event_end is not None and found[-1].moment == traffic.event_end
    steps = {b.moment - a.moment for a, b in itertools.pairwise(found)}
    assert steps == {timedelta(days=1)}
    for midnight in found[:-1]:
        assert all(t < midnight.moment for i, t in known if i < midnight.index)
        assert all(t >= midnight.moment for i, t in known if i >= midnight.index)
    # the last, the period's end, comes after every payload (the simulator's last transactions
    # may run minutes past it)
    assert found[-1].index == len(traffic)
    # invalid records were mixed in, some with times of their own
    assert traffic.invalid and len(known) < len(traffic)


def test_a_record_with_a_time_far_ahead_does_not_move_the_midnights() -> None:
    traffic = simulated_traffic(600, "channel-shift", 0.0, seed=4, days=6, baseline_days=2)
    future = json.dumps({"transaction_id": "x", "event_time": "2099-01-01T00:00:00+00:00"})
    early = traffic.payloads[: len(traffic) // 3]
    shifted = replace(
        traffic,
        payloads=[*early, future.encode(), *traffic.payloads[len(early) :]],
        partition_keys=[
            *traffic.partition_keys[: len(early)],
            "x",
            *traffic.partition_keys[len(early) :],
        ],
    )

    before = [(m.index, m.moment) for m in midnights(traffic)]
    after = [(m.index + (m.index > len(early)), m.moment) for m in midnights(traffic)]

    assert [(m.index, m.moment) for m in midnights(shifted)] == after
    assert [m for _, m in before] == [m for _, m in after]


def test_quality_is_counted_per_period_and_serving_version_from_the_truth() -> None:
    traffic = simulated_traffic(4_000, "channel-shift", 0.0, seed=5, days=8, baseline_days=3)
    assert traffic.drift_from is not None
    predictions = {}
    for payload in traffic.payloads:
        doc = json.loads(payload)
        moment = datetime.fromisoformat(doc["event_time"]).astimezone(UTC)
        fraud = traffic.labels[doc["transaction_id"]].is_fraud
        late = moment >= traffic.drift_from + timedelta(days=2)
        predictions[doc["transaction_id"]] = {
            "event_time": doc["event_time"],
            # the old model declines every fraud before the drift and none after; the new all
            "decision": "decline" if fraud and (moment < traffic.drift_from or late) else "approve",
            "model_version": "new" if late else "old",
        }
    promoted = (traffic.drift_from + timedelta(days=2)).isoformat()

    periods = truth_quality(predictions, traffic, promoted)["periods"]

    assert periods["before drift: old"]["recall_at_decline"] == 1.0
    assert periods["after drift: old"]["recall_at_decline"] == 0.0
    assert periods["after promotion: new"]["recall_at_decline"] == 1.0
    assert sum(p["transactions"] for p in periods.values()) == len(predictions)
    assert all(p["false_decline_rate"] == 0.0 for p in periods.values())


def test_a_loop_with_an_error_or_a_run_that_never_retrained_fails() -> None:
    ok = {"errors": [], "end": "2026-05-01T00:00:00Z", "runs": {}}
    due = {"retrain_at": "2026-04-01T00:00:00Z"}
    later = {"retrain_at": "2026-06-01T00:00:00Z"}

    assert loop_problems(ok) == []
    assert loop_problems(ok | {"runs": {"r": later}}) == []
    assert loop_problems(ok | {"runs": {"r": due | {"retrained_on": "2026-04-01"}}}) == []
    assert loop_problems(ok | {"runs": {"r": due}}) == [
        "closed loop: run r was due at 2026-04-01T00:00:00Z and never retrained"
    ]
    assert loop_problems(ok | {"errors": ["2026-03-10 drift check: boom"]}) == [
        "closed loop: 2026-03-10 drift check: boom"
    ]


class _Flaky:
    """A function that fails its first `failures` invocations, then answers."""

    def __init__(self, failures: int):
        self.failures, self.events = failures, []

    def invoke(self, event):  # type: ignore[no-untyped-def]
        self.events.append(event)
        if len(self.events) <= self.failures:
            return Invocation(error=FunctionError("ReadTimeoutError", "read timeout", []))
        return Invocation(response={"status": "ok"})


def test_a_scheduled_step_is_retried_twice_like_an_asynchronous_invocation() -> None:
    event = {"id": "closed-loop-2026-05-23T00:00:00.000Z", "detail": {}}
    for failures, attempts, answered in ((0, 1, True), (2, 3, True), (3, 3, False)):
        function = _Flaky(failures)

        invocation, tried = invoke_async(function, event)  # type: ignore[arg-type]

        assert tried == attempts == len(function.events)
        assert all(e == event for e in function.events)  # the same event each time
        assert (invocation.error is None) is answered
