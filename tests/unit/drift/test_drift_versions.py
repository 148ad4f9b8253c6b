"""Every version against its own baseline, and a challenger beside its champion: agreement and
the rank correlation of binned scores, exact from the joint counts."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import spearmanr

from streamscore.drift.baseline import load_baseline
from streamscore.drift.check import check_drift
from streamscore.drift.versions import rank_correlation
from support.drift_check import (
    ARTIFACTS,
    DAY_WINDOW,
    END,
    POLICY,
    baseline_histograms,
    hist_item,
)
from support.fakes import MemoryDriftPorts, MemoryWindowReader


@given(pairs=st.lists(st.tuples(st.integers(-1, 6), st.integers(-1, 6)), min_size=0, max_size=300))
def test_the_rank_correlation_is_spearmans_on_the_binned_rows(pairs: list[tuple[int, int]]) -> None:
    joint = Counter(pairs)

    rho, ranked = rank_correlation(joint)

    inside = np.array([(i, j) for i, j in pairs if i >= 0 and j >= 0]).reshape(-1, 2)
    assert ranked == len(inside)
    if len(inside) < 2 or len(set(inside[:, 0])) < 2 or len(set(inside[:, 1])) < 2:
        assert rho is None
    else:
        expected = spearmanr(inside[:, 0], inside[:, 1]).statistic
        assert rho == pytest.approx(expected, abs=1e-9)


def test_identical_orderings_correlate_fully_and_reversed_ones_negatively() -> None:
    same = Counter({(0, 0): 40, (1, 1): 30, (2, 2): 30})
    reversed_ = Counter({(0, 2): 40, (1, 1): 30, (2, 0): 30})

    assert rank_correlation(same) == (pytest.approx(1.0), 100)
    rho, _ = rank_correlation(reversed_)
    assert rho is not None and rho < -0.9


def test_a_champion_promoted_within_the_window_is_judged_on_the_hours_it_served() -> None:
    # given: the champion before served the window's first 21 hours, the new one the last 3
    baseline = load_baseline(ARTIFACTS)
    older = dataclasses.replace(baseline, model_version="cardfraud-older")
    items = [
        hist_item(
            older.model_version,
            END - timedelta(hours=h),
            baseline_histograms(older, 100),
            100,
            f"o{h}",
        )
        for h in range(4, 25)
    ]
    items += [
        hist_item(
            baseline.model_version,
            END - timedelta(hours=h),
            baseline_histograms(baseline, 300),
            300,
            f"c{h}",
        )
        for h in (1, 2, 3)
    ]
    ports = MemoryDriftPorts(MemoryWindowReader(items))
    baselines = {b.model_version: b for b in (baseline, older)}

    # when
    outcome = check_drift(DAY_WINDOW, baseline, ports.wired(), POLICY, END, None, baselines.get)

    # then: three hours of the champion do not judge the features that follow the clock (the
    # whole window's 24 hours of predictions, of two versions, would have)
    report = outcome.report
    clock = [name for name in baseline.features if baseline.variables[name].follows_clock]
    assert clock and {report.features[name].status for name in clock} == {"insufficient_data"}
    assert any("span 3 hours" in note for note in report.notes)
    older_summary = report.other_versions()["cardfraud-older"]
    assert older_summary["n"] == 2100 and older_summary["status"] == "ok"
