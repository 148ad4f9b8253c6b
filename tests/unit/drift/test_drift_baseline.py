"""The drift check's baseline (one per model version) and the window's count items summed once per key."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from streamscore.core.artifacts import SCORE
from streamscore.core.errors import SystemicError
from streamscore.drift.baseline import DriftBaseline, load_baseline
from streamscore.drift.totals import sum_items
from support.drift_check import (
    ARTIFACTS,
    DAY_WINDOW,
    END,
    baseline_histograms,
    hist_item,
    stats_item,
)

# ---------------------------------------------------------------- the baseline


def test_shipped_baseline_has_every_feature_of_the_card_and_the_score(
    baseline: DriftBaseline,
) -> None:
    card = json.loads((ARTIFACTS / "model_card.json").read_text())

    assert baseline.model_version == card["model_version"]
    assert baseline.features == tuple(card["feature_names"])
    assert set(baseline.variables) == {*card["feature_names"], SCORE}
    for reference in baseline.variables.values():
        assert len(reference.edges) == len(reference.proportions) + 1
        assert sum(reference.proportions) == pytest.approx(1.0)


def test_baseline_of_another_model_or_without_a_feature_fails_the_cold_start(
    tmp_path: Path,
) -> None:
    card = json.loads((ARTIFACTS / "model_card.json").read_text())
    reference = json.loads((ARTIFACTS / "baseline.json").read_text())
    (tmp_path / "model_card.json").write_text(json.dumps(card | {"model_version": "other"}))
    (tmp_path / "baseline.json").write_text(json.dumps(reference))

    with pytest.raises(SystemicError, match=r"baseline\.json is of model"):
        load_baseline(tmp_path)

    del reference["features"]["amount_log"]
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    (tmp_path / "baseline.json").write_text(json.dumps(reference))
    with pytest.raises(SystemicError, match="no reference for 'amount_log'"):
        load_baseline(tmp_path)

    with pytest.raises(SystemicError, match="cannot load the drift baseline from"):
        load_baseline(tmp_path / "missing")


# ---------------------------------------------------------------- summing the window


def test_items_are_summed_once_per_key_within_the_window_per_model_version(
    baseline: DriftBaseline,
) -> None:
    version = baseline.model_version
    hour = END - timedelta(hours=2)
    histograms = baseline_histograms(baseline, 100)
    items = [
        hist_item(version, hour, histograms, 100, "1"),
        hist_item(version, hour, histograms, 100, "1"),  # the same item, read twice
        hist_item(version, hour + timedelta(minutes=5), histograms, 100, "2"),  # its shard's
        hist_item(version, END, histograms, 100, "3"),  # the end's hour is not in the window
        hist_item(version, DAY_WINDOW.start, histograms, 100, "4"),  # the start's is
        hist_item("older-model", hour, {"amount_log": {"counts": [1, 2]}}, 40, "5"),
        stats_item(hour, {"invalid_amount": 3}, "1"),
        stats_item(hour, {"missing_feature": 2}, "2", stage="score"),
        # labels' bad records are not transactions: neither quarantined transactions nor seen
        stats_item(hour, {"invalid_field": 7}, "3", stage="labels"),
    ]

    totals = sum_items(items, DAY_WINDOW, baseline)

    compared = totals.versions[version]
    assert (compared.batches, compared.n, compared.scored) == (3, 300, 300)
    assert compared.histograms["amount_log"].counts == [
        3 * c for c in histograms["amount_log"]["counts"]
    ]
    assert totals.versions["older-model"].n == 40
    assert totals.versions["older-model"].histograms == {}  # counted, not compared
    # records seen: every prediction and every quarantined record, once
    assert (totals.preprocess.records, totals.preprocess.quarantined) == (345, 3)
    assert (totals.score.records, totals.score.quarantined_by_reason) == (
        342,
        {"missing_feature": 2},
    )
    assert totals.ignored_items == 1
    assert totals.per_hour["2026-03-04T10"] == {"scored": 240, "quarantined": 5}


def test_bins_beyond_the_baselines_count_as_out_of_range(baseline: DriftBaseline) -> None:
    # a count item written under other edges (more bins) cannot put rows in bins that do not exist
    histograms = baseline_histograms(baseline, 100)
    reference = len(baseline.variables["amount_log"].proportions)
    histograms["amount_log"] = {"counts": [0] * reference + [100], "missing": 0, "out_of_range": 0}
    item = hist_item(baseline.model_version, END - timedelta(hours=1), histograms, 100)

    totals = sum_items([item], DAY_WINDOW, baseline)

    amount = totals.versions[baseline.model_version].histograms["amount_log"]
    assert amount.counts == [0] * reference and amount.out_of_range == 100
