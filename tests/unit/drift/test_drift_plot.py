"""The report's picture: a PNG of the score and the most drifted features against the baseline."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streamscore.drift.baseline import DriftBaseline
from streamscore.drift.check import DriftCheckPolicy, check_drift
from streamscore.drift.plot import bin_labels, draw_report
from streamscore.drift.ports import DriftCheckPorts
from streamscore.drift.report import DriftReport, build_report, report_keys
from streamscore.drift.stats import DriftThresholds
from streamscore.drift.totals import VariableCounts, VersionTotals, WindowTotals
from streamscore.drift.window import DriftWindow
from support.fakes import MemoryMonitoringStore, MemoryReportStore, MemoryWindowReader

ARTIFACTS = Path(__file__).resolve().parents[3] / "models" / "artifacts"
END = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
WINDOW = DriftWindow(END - timedelta(days=1), END)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk."""
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def report_with(
    baseline: DriftBaseline, counts: Mapping[str, Sequence[int]], n: int = 1000
) -> DriftReport:
    """A report whose window has the baseline's shape, except the `counts` given per variable."""
    histograms = {}
    for name, reference in baseline.variables.items():
        bins = list(counts.get(name) or [round(p * n) for p in reference.proportions])
        histograms[name] = VariableCounts(bins)
    totals = WindowTotals(
        versions={
            baseline.model_version: VersionTotals(
                batches=2, n=n, scored=n, records=n, histograms=histograms
            )
        }
    )
    return build_report(WINDOW, baseline, totals, DriftThresholds(), END)


def test_bin_labels_name_each_bin_and_the_out_of_range_one() -> None:
    assert bin_labels((0.0, 0.5, 1.0)) == ["0 to 0.5", "0.5 to 1", "out of range"]
    assert bin_labels([1e-9, 0.012345, 13.48]) == [
        "1e-09 to 0.0123",
        "0.0123 to 13.5",
        "out of range",
    ]


def test_the_picture_is_a_png_of_the_score_and_five_features(
    baseline: DriftBaseline, tmp_path: Path
) -> None:
    amount_bins = len(baseline.variables["amount_log"].proportions)
    report = report_with(baseline, {"amount_log": [0] * (amount_bins - 2) + [500, 500]})

    picture = draw_report(report)

    (tmp_path / "report.png").write_bytes(picture)
    width, height = png_size(picture)
    assert len(picture) > 20_000  # six panels of bars and text, not an empty canvas
    assert (width, height) == (1560, 800)  # 3 x 2 panels at 100 dpi
    assert report.most_drifted(5)[0].name == "amount_log"


def test_an_empty_window_still_draws(baseline: DriftBaseline) -> None:
    # given
    totals = WindowTotals()
    report = build_report(WINDOW, baseline, totals, DriftThresholds(), END)

    # when
    picture = draw_report(report)

    # then
    assert report.status == "insufficient_data"
    assert report.most_drifted(5) == []
    assert png_size(picture) == (1560, 440)  # the score's panel only: one row


def test_check_stores_the_picture_next_to_the_report(baseline: DriftBaseline) -> None:
    reports = MemoryReportStore()
    ports = DriftCheckPorts(MemoryWindowReader(), reports, MemoryMonitoringStore(), None, None)  # type: ignore[arg-type]
    policy = DriftCheckPolicy(DriftThresholds(), cooldown_hours=24)

    outcome = check_drift(WINDOW, baseline, ports, policy, END, draw=draw_report)

    json_key, png_key = report_keys(WINDOW)
    assert png_key == json_key.removesuffix(".json") + ".png"
    body, content_type = reports.objects[png_key]
    assert content_type == "image/png" and body.startswith(PNG_SIGNATURE)
    assert outcome.plot_uri == f"s3://artifacts/{png_key}"
    assert json.loads(reports.objects[json_key][0])["plot_uri"] == outcome.plot_uri


def test_the_domain_does_not_import_matplotlib_until_it_draws() -> None:
    code = (
        "import sys; import streamscore.drift.check, streamscore.drift.plot; "
        "assert 'matplotlib' not in sys.modules, 'imported at module load'"
    )
    functions = Path(__file__).resolve().parents[3] / "functions"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=functions, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
