"""The closed loop's picture: the daily drift checks above, quality by week below, the loop's
steps as vertical lines across both (simulated dates)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt

_STEPS = {  # timeline kind: (colour, label)
    "retrain": ("tab:purple", "retrain"),
    "promotion": ("tab:green", "promotion decision"),
}


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text[:10])


def draw_closed_loop(section: Mapping[str, Any]) -> bytes:
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    checks = section["drift_checks"]
    versions = sorted({str(c["model_version"]) for c in checks})
    for version in versions:
        mine = [c for c in checks if str(c["model_version"]) == version]
        top.plot(
            [_day(c["day"]) for c in mine],
            [c["score_psi"] if c["score_psi"] is not None else float("nan") for c in mine],
            "o-",
            markersize=3,
            label=f"score PSI against {version}",
        )
        drifted = [c for c in mine if c["status"] == "drift"]
        top.scatter(
            [_day(c["day"]) for c in drifted],
            [c["score_psi"] or 0 for c in drifted],
            color="tab:red",
            zorder=3,
            s=14,
        )
    top.set_ylabel("daily drift check")
    top.set_title("drift checks (red: drift found)")
    for week in _by_version(section["quality"]["weekly"]).items():
        version, rows = week
        bottom.plot(
            [_day(r["week"]) for r in rows],
            [r["recall_at_decline"] for r in rows],
            "s-",
            label=f"recall at decline, served by {version}",
        )
    bottom.set_ylabel("weekly, simulator's truth")
    bottom.set_ylim(0, 1)
    _steps(section, (top, bottom))
    for axis in (top, bottom):
        axis.legend(loc="lower left", fontsize=8)
        axis.grid(alpha=0.3)
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _by_version(rows: list[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["recall_at_decline"] is not None:
            grouped.setdefault(str(row["model_version"]), []).append(row)
    return grouped


def _steps(section: Mapping[str, Any], axes: tuple[Any, Any]) -> None:
    marks = []
    if section.get("drift_from"):
        marks.append((_day(section["drift_from"]), "tab:gray", "drift starts"))
    started = sorted(r["started_on"] for r in section["runs"].values() if "started_on" in r)
    if started:
        marks.append((_day(started[0]), "tab:orange", "run started (waits)"))
    for entry in section["timeline"]:
        if entry["kind"] in _STEPS:
            colour, label = _STEPS[entry["kind"]]
            marks.append((_day(entry["at"]), colour, label))
    for axis in axes:
        for moment, colour, label in marks:
            axis.axvline(moment, color=colour, linestyle="--", linewidth=1, label=label)
