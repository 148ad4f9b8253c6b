"""check_drift with in-memory ports: statuses, the report in S3 and the table, events, cooldown."""

from __future__ import annotations

from datetime import timedelta

import pytest

from streamscore.core.artifacts import SCORE
from streamscore.core.errors import RetryableError
from streamscore.core.monitoring import MONITORING_SOURCE
from streamscore.drift.baseline import DriftBaseline
from streamscore.drift.report import (
    DRIFT_DETECTED,
    RETRAINING_REQUESTED,
    TRIGGER_EVENTS,
    report_keys,
)
from streamscore.drift.stats import psi
from streamscore.drift.window import DriftWindow
from support.drift_check import (
    DAY_WINDOW,
    END,
    THRESHOLDS,
    baseline_histograms,
    drifted_amount,
    expected_counts,
    hist_item,
    run_check,
    stats_item,
    window_items,
)
from support.fakes import (
    MemoryDriftPorts,
    MemoryWindowReader,
)

# ---------------------------------------------------------------- the check


def test_traffic_like_the_baseline_is_ok_and_triggers_nothing(baseline: DriftBaseline) -> None:
    # given
    ports = MemoryDriftPorts(MemoryWindowReader(window_items(baseline)))

    # when
    outcome = run_check(ports)

    # then
    assert outcome.report.status == "ok"
    assert outcome.trigger == "not_drift"
    assert all(v.status == "ok" for v in outcome.report.features.values())
    assert outcome.report.max_psi[1] < 0.01
    assert ports.events.entries == []
    assert sorted(set(ports.reader.asked)) == sorted(DAY_WINDOW.count_keys())


def test_drift_sends_both_events_once_with_the_report_location(baseline: DriftBaseline) -> None:
    n = 400
    ports = MemoryDriftPorts(
        MemoryWindowReader(
            window_items(baseline, n, shifted={"amount_log": drifted_amount(baseline, n)})
        )
    )

    outcome = run_check(ports)

    report = outcome.report
    assert report.status == "drift"
    assert [v.name for v in report.drifted] == ["amount_log"]
    assert outcome.trigger == "sent"
    json_key, _ = report_keys(DAY_WINDOW)
    assert outcome.report_uri == f"s3://artifacts/{json_key}"
    assert [e["Source"] for e in ports.events.entries] == [MONITORING_SOURCE] * 2
    (detected,) = ports.events.of_type(DRIFT_DETECTED)
    (requested,) = ports.events.of_type(RETRAINING_REQUESTED)
    assert detected == requested
    assert requested["trigger_id"] == f"{baseline.model_version}/{DAY_WINDOW.window_id}"
    assert requested["report_uri"] == outcome.report_uri
    assert requested["model_version"] == baseline.model_version
    assert requested["window"] == {
        "start": "2026-03-03T12:00:00+00:00",
        "end": "2026-03-04T12:00:00+00:00",
        "minutes": 1440.0,
    }
    (amount,) = requested["drifted"]
    assert amount["name"] == "amount_log"
    assert amount["psi"] == pytest.approx(report.features["amount_log"].stats.psi, abs=1e-6)
    assert amount["js_distance"] > 0.1
    assert requested["sample"] == {
        "n": 3 * n,
        "scored": 3 * n,
        "count_items": 3,
        "records": 3 * n,
        "transactions": 3 * n,
    }


def test_a_second_run_inside_the_cooldown_sends_nothing_and_after_it_sends_again(
    baseline: DriftBaseline,
) -> None:
    n = 400
    ports = MemoryDriftPorts(
        MemoryWindowReader(
            window_items(baseline, n, shifted={"amount_log": drifted_amount(baseline, n)})
        )
    )

    first = run_check(ports)
    later_window = DriftWindow(DAY_WINDOW.start + timedelta(hours=1), END + timedelta(hours=1))
    later = run_check(ports, window=later_window, now=END + timedelta(hours=23, minutes=59))
    after_window = DriftWindow(DAY_WINDOW.start + timedelta(hours=2), END + timedelta(hours=2))
    after = run_check(ports, window=after_window, now=END + timedelta(hours=24, seconds=1))

    assert [first.trigger, later.trigger, after.trigger] == ["sent", "cooldown", "sent"]
    assert [d["trigger_id"] for d in ports.events.of_type(RETRAINING_REQUESTED)] == [
        f"{baseline.model_version}/{DAY_WINDOW.window_id}",
        f"{baseline.model_version}/{after_window.window_id}",
    ]
    items = {item["pk"]: item for item in ports.monitoring.items.values()}
    start, end = later_window.recorded_bounds
    assert items[f"REPORT#{start}#{end}"]["retraining"] == "cooldown"
    assert items[f"REPORT#{start}#{end}"]["trigger_id"] == (
        f"{baseline.model_version}/{later_window.window_id}"
    )


def test_zero_cooldown_triggers_on_every_drifted_window(baseline: DriftBaseline) -> None:
    # given
    n = 400
    ports = MemoryDriftPorts(
        MemoryWindowReader(
            window_items(baseline, n, shifted={"amount_log": drifted_amount(baseline, n)})
        )
    )

    # when
    outcomes = [
        run_check(
            ports,
            window=DriftWindow(DAY_WINDOW.start + timedelta(minutes=m), END + timedelta(minutes=m)),
            now=END + timedelta(minutes=m),
            cooldown_hours=0,
        )
        for m in (1, 2)
    ]

    # then
    assert [o.trigger for o in outcomes] == ["sent", "sent"]
    assert [o.sent for o in outcomes] == [TRIGGER_EVENTS, TRIGGER_EVENTS]


def test_insufficient_data_is_reported_and_triggers_nothing(baseline: DriftBaseline) -> None:
    # given
    n = 100  # 3 x 100 < 500, even though amount_log moved completely
    ports = MemoryDriftPorts(
        MemoryWindowReader(
            window_items(baseline, n, shifted={"amount_log": drifted_amount(baseline, n)})
        )
    )

    # when
    outcome = run_check(ports)

    # then
    assert outcome.report.status == "insufficient_data"
    assert outcome.trigger == "not_drift"
    assert {v.status for v in outcome.report.features.values()} == {"insufficient_data"}
    assert outcome.report.max_psi is None
    assert ports.events.entries == []
    assert any("fewer than the 500" in note for note in outcome.report.notes)


def test_an_empty_window_is_insufficient_data(baseline: DriftBaseline) -> None:
    ports = MemoryDriftPorts(MemoryWindowReader([]))

    outcome = run_check(ports)

    report = ports.reports.json(report_keys(DAY_WINDOW)[0])
    assert outcome.report.status == report["status"] == "insufficient_data"
    assert report["sample"] == {"n": 0, "scored": 0, "count_items": 0, "records": 0}
    assert report["prediction_psi"] is None
    assert report["features"]["amount_log"]["observed"] == []


def test_features_are_judged_by_psi_the_score_also_by_js(baseline: DriftBaseline) -> None:
    n = 2000
    # A small move between two equal bins: JS distance above 0.1, PSI below the warn threshold.
    amount = expected_counts(baseline.variables["amount_log"].proportions, n)
    amount[0] += 110
    amount[1] -= 110
    reference = baseline.variables["amount_log"]
    expected = [*reference.proportions, 0.0]
    observed = [c / n for c in [*amount, 0]]
    assert psi(expected, observed) < THRESHOLDS.psi_warn  # the premise
    score = expected_counts(baseline.variables[SCORE].proportions, n)
    score[1] -= 250
    score[-1] += 250
    ports = MemoryDriftPorts(
        MemoryWindowReader(
            window_items(baseline, n, batches=1, shifted={"amount_log": amount, SCORE: score})
        )
    )

    report = run_check(ports).report

    assert report.features["amount_log"].stats.js_distance >= THRESHOLDS.js_drift
    assert report.features["amount_log"].status == "ok"
    assert report.prediction.stats.psi < THRESHOLDS.psi_drift
    assert report.prediction.stats.js_distance >= THRESHOLDS.js_drift
    assert report.prediction.status == "drift"
    assert report.status == "drift"
    assert [v.name for v in report.drifted] == [SCORE]


def test_s3_report_and_table_item_agree(baseline: DriftBaseline) -> None:
    n = 400
    items = window_items(baseline, n, shifted={"amount_log": drifted_amount(baseline, n)})
    items.append(stats_item(END - timedelta(hours=1), {"invalid_amount": 20, "invalid_json": 6}))
    items.append(
        hist_item(
            baseline.model_version,
            END - timedelta(hours=1),
            baseline_histograms(baseline, 50),
            50,
            "q",
        )
    )
    items.append(stats_item(END - timedelta(hours=1), {"missing_feature": 2}, "q", "score"))
    ports = MemoryDriftPorts(MemoryWindowReader(items))

    outcome = run_check(ports)

    json_key, _ = report_keys(DAY_WINDOW)
    assert json_key == "reports/2026/03/04/20260303T120000Z--20260304T120000Z.json"
    report = ports.reports.json(json_key)
    assert ports.reports.objects[json_key][1] == "application/json"
    (item,) = ports.monitoring.items.values()
    assert item["pk"] == "REPORT#2026-03-03T12:00:00.000+00:00#2026-03-04T12:00:00.000+00:00"
    assert item["window_key"] == "REPORT#2026-03-04T12"
    assert item["recorded_at"] == "2026-03-04T12:00:00.000+00:00"
    assert item["report_uri"] == report["report_uri"] == outcome.report_uri
    shared = set(item) & set(report) - {"features", "prediction"}
    assert shared >= {
        "status",
        "max_psi",
        "drifted",
        "sample",
        "window",
        "model_version",
        "quarantine_rate",
    }
    assert {k: item[k] for k in shared} == {k: report[k] for k in shared}
    for name, stats in item["features"].items():
        assert stats == {k: report["features"][name][k] for k in stats}
    assert item["prediction"] == {k: report["prediction"][k] for k in item["prediction"]}
    # data quality: 1250 scored, 26 quarantined by preprocess, 2 by score: 1278 records
    assert report["quarantine_rate"] == pytest.approx(28 / 1278, abs=1e-6)
    assert report["data_quality"]["preprocess"]["quarantined_by_reason"] == {
        "invalid_amount": 20,
        "invalid_json": 6,
    }
    assert report["data_quality"]["score"]["quarantined_by_reason"] == {"missing_feature": 2}
    assert report["volume"]["transactions"] == 1278


def test_a_rerun_of_the_window_overwrites_its_report(baseline: DriftBaseline) -> None:
    ports = MemoryDriftPorts(MemoryWindowReader(window_items(baseline)))

    run_check(ports, now=END + timedelta(minutes=1))
    run_check(ports, now=END + timedelta(minutes=7))

    (item,) = ports.monitoring.items.values()
    assert item["recorded_at"] == "2026-03-04T12:07:00.000+00:00"
    assert len(ports.reports.objects) == 1


def test_missing_values_and_out_of_range_shares_are_reported(baseline: DriftBaseline) -> None:
    histograms = baseline_histograms(baseline, 1000)
    histograms["amount_log"] = histograms["amount_log"] | {"missing": 10, "out_of_range": 40}
    item = hist_item(baseline.model_version, END - timedelta(hours=1), histograms, 1010)
    ports = MemoryDriftPorts(MemoryWindowReader([item]))

    run_check(ports)

    report = ports.reports.json(report_keys(DAY_WINDOW)[0])
    amount = report["features"]["amount_log"]
    assert amount["n"] == 1040
    assert amount["missing_share"] == pytest.approx(10 / 1050, abs=1e-6)
    assert amount["out_of_range_share"] == pytest.approx(40 / 1040, abs=1e-6)
    assert amount["baseline_out_of_range_share"] == pytest.approx(
        baseline.variables["amount_log"].out_of_range_share, abs=1e-6
    )
    assert report["data_quality"]["missing_share"] == {"amount_log": amount["missing_share"]}


def test_other_model_versions_are_reported_not_compared(baseline: DriftBaseline) -> None:
    items = window_items(baseline)
    items.append(hist_item("cardfraud-previous", END - timedelta(hours=1), {}, 70, "old"))
    ports = MemoryDriftPorts(MemoryWindowReader(items))

    outcome = run_check(ports)

    report = ports.reports.json(report_keys(DAY_WINDOW)[0])
    assert report["other_versions"] == {
        "cardfraud-previous": {"count_items": 1, "n": 70, "scored": 70}
    }
    assert report["sample"]["n"] == 1200
    assert any("cardfraud-previous" in note for note in outcome.report.notes)


def test_refused_events_fail_the_run_and_its_retry_sends_them(baseline: DriftBaseline) -> None:
    # given
    n = 400
    ports = MemoryDriftPorts(
        MemoryWindowReader(
            window_items(baseline, n, shifted={"amount_log": drifted_amount(baseline, n)})
        )
    )
    ports.events.fail = True

    # when
    with pytest.raises(RetryableError, match="2 of 2 drift events"):
        run_check(ports)
    ports.events.fail = False
    retried = run_check(ports, now=END + timedelta(minutes=2))

    # then
    assert retried.trigger == "sent"
    assert len(ports.events.of_type(RETRAINING_REQUESTED)) == 1
    assert len(ports.events.of_type(DRIFT_DETECTED)) == 1


def test_predictions_arriving_late_for_an_hour_already_checked_are_counted(
    baseline: DriftBaseline,
) -> None:
    # given a window checked once
    ports = MemoryDriftPorts(MemoryWindowReader(window_items(baseline)))
    first = run_check(ports)

    # when predictions of its first hour arrive late (a re-driven batch, a lagging shard): the
    # score function adds them to that hour's count items, here a shard's item of its own
    late_hour = END - timedelta(hours=23, minutes=30)
    ports.reader.items.append(
        hist_item(baseline.model_version, late_hour, baseline_histograms(baseline, 50), 50, "7")
    )
    again = run_check(ports)
    later = run_check(ports, window=DriftWindow(late_hour - timedelta(hours=1), END))

    # then a rerun of the window, and any later window holding that hour, counts them
    assert again.report.sample()["n"] == first.report.sample()["n"] + 50
    assert later.report.sample()["n"] >= 50
    assert again.items_read == first.items_read + 1
