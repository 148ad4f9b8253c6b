"""Pipeline fuzz tests: both handlers on moto behind a model of the event-source mappings, with faults.

Hypothesis draws the traffic (cards, invalid records, producer repeats, a conflicting duplicate;
in about half the examples KPL aggregates of records bound for one shard, sometimes a corrupted
one), the weather (per-call chances of each AWS fault) and the schedule (batch sizes, which
mapping delivers next, retries or bisections, operator replays, and in one test an operator's
registry pointer changes: challengers named and dropped, promotions, rollbacks); `pipeline_harness` plays the
example and checks the effectively-once invariants, per user record, against its reference. A failure names the invariant
(its exception class), the transactions or cards concerned, the faults and the invocation trace.

Budget: on CI (CI set, derandomised by tests/conftest.py) the tests run 30, 25, 10 and 12 examples
(an example takes 0.5-2 s; the file about 100 s on 2 loaded cores) and a failure is reported as found,
unshrunk, since shrinking can take minutes; elsewhere failures are shrunk and kept in
.hypothesis/. `make fuzz` sets FUZZ_EXAMPLES for a long exploration; FUZZ_SHRINK=1/0 forces
shrinking on or off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pipeline_harness import (
    CORE_CHECKS,
    Dice,
    FaultRates,
    Pipeline,
    Scenario,
    traffic_pool,
    verify,
    workloads,
)

pytestmark = pytest.mark.slow

# FUZZ_EXAMPLES overrides every test's number of examples (make fuzz); the defaults fit CI.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0") or 0)
SHRINK = os.environ.get("FUZZ_SHRINK", "0" if os.environ.get("CI") else "1") == "1"
POOL = traffic_pool()


def fuzz_settings(examples: int, shrink: bool = True) -> Any:
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    if shrink and SHRINK:
        phases.append(Phase.shrink)
    return settings(
        max_examples=FUZZ_EXAMPLES or examples,
        deadline=None,
        phases=phases,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    """moto, the template's tables and streams, and both handlers: once for the module."""
    stack = Pipeline().start()
    try:
        yield stack
    finally:
        stack.close()


def fault_rates(high: int, low: int = 0) -> st.SearchStrategy[FaultRates]:
    """Per-mille chances per AWS call of each fault kind, up to `high` (failures from `low`)."""
    return st.builds(
        FaultRates,
        fail_before=st.integers(low, high),
        lost_response=st.integers(0, high),
        timeout=st.integers(0, high // 2),
        partial=st.integers(0, 2 * high),
    )


def retry_limits() -> st.SearchStrategy[int | None]:
    return st.one_of(st.integers(0, 3), st.none())


def play(pipeline: Pipeline, data: st.DataObject, scenario: st.SearchStrategy[Scenario]) -> Any:
    workload = data.draw(workloads(POOL, pipeline.shard_of), label="workload")
    drawn = data.draw(scenario, label="scenario")
    dice = Dice(data.draw(st.randoms(use_true_random=False), label="schedule and faults"))
    return pipeline.run(workload, drawn, dice)


@fuzz_settings(examples=30)
@given(data=st.data())
def test_effectively_once_under_faults_and_replays(pipeline: Pipeline, data: st.DataObject) -> None:
    """No retry limit: every fault is retried until it passes; replays re-deliver processed ranges.

    Accounting, features and state (replayed in state_version order, in stream order), one
    prediction per transaction with the model's score, alerts, and the handlers' contract.
    """
    scenario = st.builds(
        Scenario,
        faults=fault_rates(60),
        retry_limit=st.just((None, None)),
        replay_permille=st.integers(0, 150),
        max_replays=st.integers(0, 3),
        recycle_permille=st.integers(0, 100),
    )
    assert verify(play(pipeline, data, scenario), CORE_CHECKS) == set(CORE_CHECKS)


@fuzz_settings(examples=25)
@given(data=st.data())
def test_retry_limit_discards_and_redrive(pipeline: Pipeline, data: st.DataObject) -> None:
    """Retry limits 0-3 discard batches to FailureQueue; the fault-free re-drive must recover them.

    After the re-drive nothing is lost; the application order need only keep stream order outside
    the discarded ranges (they come back late).
    """
    scenario = st.builds(
        Scenario,
        faults=fault_rates(120, low=20),
        retry_limit=st.tuples(retry_limits(), retry_limits()).filter(lambda t: t != (None, None)),
        replay_permille=st.integers(0, 100),
        max_replays=st.integers(0, 2),
        recycle_permille=st.integers(0, 100),
    )
    assert verify(play(pipeline, data, scenario), CORE_CHECKS) == set(CORE_CHECKS)


@fuzz_settings(examples=10, shrink=False)
@given(data=st.data())
def test_monitoring_totals_count_each_once(pipeline: Pipeline, data: st.DataObject) -> None:
    """Without faults but with several replays of random ranges: the counts still count each once.

    (The core tests check the counts too, under faults.)"""
    scenario = st.builds(
        Scenario,
        faults=st.just(FaultRates()),
        replay_permille=st.integers(0, 300),
        max_replays=st.integers(1, 3),
        min_replays=st.just(1),
    )
    assert verify(play(pipeline, data, scenario), ("totals",)) == {"totals"}


@fuzz_settings(examples=12)
@given(data=st.data())
def test_model_swaps_and_shadow_scores_keep_every_effect_once(
    pipeline: Pipeline, data: st.DataObject
) -> None:
    """An operator changes the registry pointer between deliveries (a challenger named or
    dropped, a promotion, a rollback, a champion named) while faults, retries and replays go on.

    Every prediction is the score and decision of the version it names, a challenger's fields
    its own score of the same features; each version counts each transaction it wrote once,
    each challenger each transaction it scored in shadow once; one alert per version's
    decision; and every core invariant besides.
    """
    scenario = st.builds(
        Scenario,
        faults=fault_rates(60),
        retry_limit=st.just((None, None)),
        replay_permille=st.integers(0, 150),
        max_replays=st.integers(0, 3),
        recycle_permille=st.integers(0, 100),
        pointer_permille=st.integers(20, 200),
        max_pointer_changes=st.integers(1, 5),
    )
    assert verify(play(pipeline, data, scenario), CORE_CHECKS) == set(CORE_CHECKS)
