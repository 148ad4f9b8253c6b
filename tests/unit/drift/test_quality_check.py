"""The scheduled quality check with in-memory ports: the mature window, the verdict, the report,
and RetrainingRequested (reason quality) once per window, through the drift check's cooldown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamscore.core.monitoring import MONITORING_SOURCE
from streamscore.drift.check import DriftCheckPolicy, check_quality
from streamscore.drift.quality import QualityPolicy, quality_report_key, quality_window
from streamscore.drift.report import RETRAINING_REQUESTED
from support.drift_check import THRESHOLDS, quality_items
from support.fakes import MemoryDriftPorts, MemoryWindowReader

NOW = datetime(2026, 6, 1, 12, 34, tzinfo=UTC)
POLICY = QualityPolicy(maturity_days=60, window_days=7, recall_threshold=0.8, min_frauds=30)
CHECK = DriftCheckPolicy(thresholds=THRESHOLDS, cooldown_hours=24.0)
VERSION = "cardfraud-v1"
MATURE = datetime(2026, 3, 30, 9, tzinfo=UTC)  # inside the window that ends 60 days before NOW
RECENT = datetime(2026, 5, 20, 9, tzinfo=UTC)  # labels not back yet: not read


def _hour(
    reviewed: int, charged_back: int, hour: datetime = MATURE, declined: int = 0
) -> list[dict[str, Any]]:
    return quality_items(VERSION, hour, reviewed, charged_back, 500, declined)


def test_the_window_is_whole_hours_ending_the_maturity_before_now() -> None:
    window = quality_window(NOW, POLICY)

    assert window.end == datetime(2026, 4, 2, 12, tzinfo=UTC)
    assert window.start == datetime(2026, 3, 26, 12, tzinfo=UTC)


def test_low_recall_requests_retraining_once_with_the_reason_and_the_report() -> None:
    # given a mature hour where 10 of 40 frauds seen were reviewed and 10 declines scored 0.9
    # (9 frauds expected), and a recent hour of many declines (not mature: not read)
    ports = MemoryDriftPorts(
        MemoryWindowReader(_hour(10, 30, declined=10) + _hour(40, 0, RECENT, declined=900))
    )

    outcome = check_quality(VERSION, ports.wired(), CHECK, POLICY, NOW)
    again = check_quality(VERSION, ports.wired(), CHECK, POLICY, NOW + timedelta(minutes=5))

    assert outcome.report["status"] == "low_recall" and outcome.trigger == "sent"
    figures = outcome.report["versions"][VERSION]["realized"]
    assert (figures["frauds_seen"], figures["recall_at_review"]) == (40, 0.25)
    assert figures["recall_at_decline"] == pytest.approx(9 / 49)
    assert figures["implicit_negatives"] == 500
    (entry,) = ports.events.entries
    assert entry["Source"] == MONITORING_SOURCE and entry["DetailType"] == RETRAINING_REQUESTED
    (detail,) = ports.events.of_type(RETRAINING_REQUESTED)
    assert detail["reason"] == "quality"
    assert (
        detail["recall_at_decline"] == pytest.approx(9 / 49) and detail["recall_at_review"] == 0.25
    )
    window = quality_window(NOW, POLICY)
    assert detail["trigger_id"] == f"{VERSION}/quality/{window.window_id}"
    assert outcome.report_uri == f"s3://artifacts/{quality_report_key(window)}"
    assert ports.reports.json(quality_report_key(window))["status"] == "low_recall"
    assert again.sent == () and len(ports.events.entries) == 1  # the same window: once


def test_good_recall_is_ok_and_too_few_frauds_give_no_verdict() -> None:
    # 360 frauds expected among 400 declines, 40 seen among the rest: 0.9 at decline
    good = MemoryDriftPorts(MemoryWindowReader(_hour(35, 5, declined=400)))
    ok = check_quality(VERSION, good.wired(), CHECK, POLICY, NOW)
    few = MemoryDriftPorts(MemoryWindowReader(_hour(2, 8)))
    unsure = check_quality(VERSION, few.wired(), CHECK, POLICY, NOW)

    assert ok.report["status"] == "ok" and ok.trigger == "not_drift"
    assert unsure.report["status"] == "insufficient_labels" and not few.events.entries


def test_a_champion_without_predictions_in_the_window_has_none() -> None:
    ports = MemoryDriftPorts(MemoryWindowReader(_hour(10, 30)))

    outcome = check_quality("another-version", ports.wired(), CHECK, POLICY, NOW)

    assert outcome.report["status"] == "no_predictions" and not ports.events.entries
    assert VERSION in outcome.report["versions"]  # every version that scored is reported


EARLY = QualityPolicy(
    maturity_days=60, window_days=7, recall_threshold=0.8, min_frauds=30, early_days=14
)
YOUNG = datetime(2026, 5, 14, 9, tzinfo=UTC)  # inside the window that ends 14 days before NOW


def test_an_early_window_with_low_recall_requests_retraining_before_its_labels_matured() -> None:
    # given a mature week that was fine, and a young week where chargebacks already outnumber
    # reviews: 10 frauds reviewed, 30 charged back within 14 days, 10 declines (9 expected)
    ports = MemoryDriftPorts(
        MemoryWindowReader(_hour(35, 5, declined=400) + _hour(10, 30, YOUNG, declined=10))
    )

    outcome = check_quality(VERSION, ports.wired(), CHECK, EARLY, NOW)

    assert outcome.report["status"] == "ok" and outcome.report["mature"] is True
    assert outcome.early is not None and outcome.early["status"] == "low_recall"
    assert outcome.early["mature"] is False and outcome.early["maturity_days"] == 14
    assert outcome.trigger == "sent"
    (detail,) = ports.events.of_type(RETRAINING_REQUESTED)
    early = quality_window(NOW, EARLY, early=True)
    assert detail["trigger_id"] == f"{VERSION}/quality/{early.window_id}"
    assert detail["mature"] is False and detail["recall_at_decline"] == pytest.approx(9 / 49)
    key = quality_report_key(early, mature=False)
    assert key.startswith("reports/quality/early/") and outcome.early_uri.endswith(key)
    assert ports.reports.json(key)["status"] == "low_recall"


def test_no_early_window_is_read_when_the_mature_one_alarms_or_early_days_is_zero() -> None:
    items = _hour(10, 30, declined=10) + _hour(10, 30, YOUNG, declined=10)

    mature_low = check_quality(
        VERSION, MemoryDriftPorts(MemoryWindowReader(items)).wired(), CHECK, EARLY, NOW
    )
    off = check_quality(
        VERSION,
        MemoryDriftPorts(MemoryWindowReader(_hour(35, 5, declined=400) + items[2:])).wired(),
        CHECK,
        POLICY,
        NOW,
    )

    assert mature_low.report["status"] == "low_recall" and mature_low.early is None
    assert off.report["status"] == "ok" and off.early is None and off.trigger == "not_drift"


def test_the_picture_is_stored_beside_the_report_and_a_failing_one_changes_no_verdict() -> None:
    drawn: list[tuple[str, str]] = []

    def draw(
        version: str, figures: dict[str, Any], challengers: dict[str, Any], title: str
    ) -> bytes:
        drawn.append((version, title))
        assert "realized" in figures and "estimated" in figures
        return b"\x89PNG"

    def broken(*_: Any) -> bytes:
        raise RuntimeError("no fonts")

    ports = MemoryDriftPorts(MemoryWindowReader(_hour(10, 30, declined=10)))
    outcome = check_quality(VERSION, ports.wired(), CHECK, POLICY, NOW, draw=draw)
    other = MemoryDriftPorts(MemoryWindowReader(_hour(10, 30, declined=10)))
    failed = check_quality(VERSION, other.wired(), CHECK, POLICY, NOW, draw=broken)

    key = quality_report_key(quality_window(NOW, POLICY))
    png = key.removesuffix(".json") + ".png"
    assert outcome.plot_uri == f"s3://artifacts/{png}"
    assert ports.reports.objects[png] == (b"\x89PNG", "image/png")
    assert ports.reports.json(key)["plot_uri"] == outcome.plot_uri
    assert drawn and drawn[0][0] == VERSION and drawn[0][1].startswith("LOW_RECALL")
    assert failed.plot_uri is None and failed.report["status"] == "low_recall"
    assert failed.trigger == "sent" and "no picture: RuntimeError" in failed.report["notes"][0]
