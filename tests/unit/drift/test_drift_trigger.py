"""The retraining trigger, effectively once: deaths, lost responses and partial failures around PutEvents."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from streamscore.core.errors import RetryableError
from streamscore.drift.baseline import DriftBaseline
from streamscore.drift.check import check_drift
from streamscore.drift.report import (
    DRIFT_DETECTED,
    RETRAINING_REQUESTED,
    TRIGGER_EVENTS,
    report_keys,
)
from streamscore.drift.window import DriftWindow
from support.drift_check import (
    DAY_WINDOW,
    END,
    POLICY,
    PORT_CALLS,
    UNRECORDED_OUTCOME,
    Crash,
    Fault,
    drifted_ports,
    run_check,
    trigger_ids,
    window_items,
)
from support.fakes import (
    MemoryDriftPorts,
    MemoryWindowReader,
)

# ---------------------------------------------------------------- the trigger, effectively once


def test_regression_a_a_death_between_claim_and_put_events_is_sent_by_the_next_run(
    baseline: DriftBaseline,
) -> None:
    ports = drifted_ports(baseline)
    trigger = f"{baseline.model_version}/{DAY_WINDOW.window_id}"

    with pytest.raises(Crash):
        run_check(ports, fault=("cooldown.claim", "crash"))  # claimed, then died
    assert ports.events.calls == []
    # the window's next run, an hour later (within the cooldown): a late retry, or a re-run
    again = run_check(ports, now=END + timedelta(hours=1))

    assert again.trigger == "sent"
    assert (
        trigger_ids(ports, DRIFT_DETECTED) == trigger_ids(ports, RETRAINING_REQUESTED) == [trigger]
    )


def test_a_dead_claim_blocks_other_windows_for_the_lease_only(baseline: DriftBaseline) -> None:
    ports = drifted_ports(baseline)
    with pytest.raises(Crash):
        run_check(ports, fault=("cooldown.claim", "crash"))

    def shifted(minutes: int) -> DriftWindow:
        return DriftWindow(
            DAY_WINDOW.start + timedelta(minutes=minutes), END + timedelta(minutes=minutes)
        )

    soon = run_check(ports, window=shifted(10), now=END + timedelta(minutes=10))
    next_hour = run_check(ports, window=shifted(60), now=END + timedelta(hours=1))

    assert soon.trigger == "in_flight" and soon.sent == ()
    assert next_hour.trigger == "sent"  # the dead claim is taken over by the run's own trigger
    assert trigger_ids(ports, RETRAINING_REQUESTED) == [
        f"{baseline.model_version}/{shifted(60).window_id}"
    ]


def test_regression_b_a_lost_put_events_response_is_re_sent_with_the_same_trigger_id(
    baseline: DriftBaseline,
) -> None:
    # given
    ports = drifted_ports(baseline)
    trigger = f"{baseline.model_version}/{DAY_WINDOW.window_id}"

    # when
    with pytest.raises(RetryableError, match="response was lost"):
        run_check(ports, fault=("events.put_events", "lost"))
    retry = run_check(ports, now=END + timedelta(minutes=1))
    rerun = run_check(ports, now=END + timedelta(minutes=3))

    # then
    assert (retry.trigger, retry.sent) == ("sent", TRIGGER_EVENTS)
    assert (rerun.trigger, rerun.sent) == ("sent", ())
    assert ports.events.calls == [list(TRIGGER_EVENTS)] * 2
    assert (
        trigger_ids(ports, DRIFT_DETECTED)
        == trigger_ids(ports, RETRAINING_REQUESTED)
        == [trigger] * 2
    )


# A run's PutEvents outcome is unknown to its retry after a lost response or a death right
# after the call, and after a failed write of the outcome (the retry reads what was stored).


@pytest.mark.parametrize("kind", ["fail", "lost", "crash"])
@pytest.mark.parametrize("call", PORT_CALLS)
def test_regression_b_only_an_unknown_outcome_sends_a_second_time(
    baseline: DriftBaseline, call: str, kind: Fault
) -> None:
    ports = drifted_ports(baseline)

    with pytest.raises((RetryableError, Crash)):
        run_check(ports, fault=(call, kind))
    retry = run_check(ports, now=END + timedelta(minutes=1))

    sends = 2 if (call, kind) in UNRECORDED_OUTCOME else 1
    assert retry.trigger == "sent"
    for detail_type in TRIGGER_EVENTS:
        assert (
            trigger_ids(ports, detail_type)
            == [f"{baseline.model_version}/{DAY_WINDOW.window_id}"] * sends
        )


def test_regression_c_after_a_partial_failure_the_retry_sends_only_the_refused_entry(
    baseline: DriftBaseline,
) -> None:
    # given
    ports = drifted_ports(baseline)
    ports.events.refuse = {RETRAINING_REQUESTED}

    # when
    with pytest.raises(RetryableError, match="1 of 2 drift events"):
        run_check(ports)
    ports.events.refuse = set()
    retry = run_check(ports, now=END + timedelta(minutes=1))

    # then
    assert ports.events.calls == [[DRIFT_DETECTED, RETRAINING_REQUESTED], [RETRAINING_REQUESTED]]
    assert (retry.trigger, retry.sent) == ("sent", (RETRAINING_REQUESTED,))
    assert len(trigger_ids(ports, DRIFT_DETECTED)) == len(trigger_ids(ports, RETRAINING_REQUESTED))
    assert len(trigger_ids(ports, DRIFT_DETECTED)) == 1


def test_regression_d_a_rerun_of_a_sent_window_reports_sent_and_sends_nothing(
    baseline: DriftBaseline,
) -> None:
    # given
    ports = drifted_ports(baseline)

    # when
    first = run_check(ports)
    rerun = run_check(ports, now=END + timedelta(minutes=5))
    after_the_cooldown = run_check(ports, now=END + timedelta(hours=30))

    # then
    assert [first.trigger, rerun.trigger, after_the_cooldown.trigger] == ["sent"] * 3
    assert [first.sent, rerun.sent, after_the_cooldown.sent] == [TRIGGER_EVENTS, (), ()]
    (item,) = ports.monitoring.items.values()
    assert item["retraining"] == "sent"
    assert item["trigger_id"] == f"{baseline.model_version}/{DAY_WINDOW.window_id}"
    assert len(ports.events.entries) == 2


def test_a_picture_that_cannot_be_drawn_leaves_a_note_not_a_failure(
    baseline: DriftBaseline,
) -> None:
    ports = MemoryDriftPorts(MemoryWindowReader(window_items(baseline)))

    def broken(_: Any) -> bytes:
        raise ImportError("No module named 'matplotlib'")

    outcome = check_drift(DAY_WINDOW, baseline, ports.wired(), POLICY, END, draw=broken)

    report = ports.reports.json(report_keys(DAY_WINDOW)[0])
    assert outcome.plot_uri is None and report["plot_uri"] is None
    assert "no picture: ImportError: No module named 'matplotlib'" in report["notes"]
    assert report["status"] == "ok"


def test_a_short_window_warns_about_the_daily_rhythm(baseline: DriftBaseline) -> None:
    # given
    ports = MemoryDriftPorts(MemoryWindowReader([]))

    # when
    outcome = run_check(ports, window=DriftWindow(END - timedelta(hours=1), END))

    # then
    assert any("shorter than a day" in note for note in outcome.report.notes)
