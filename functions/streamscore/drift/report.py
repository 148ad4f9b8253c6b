"""The drift report of one window: the window's summed counts compared with the champion's baseline.

The window's prediction counts (streamscore.core.monitoring: one item per model
version, event hour, shard and writer slot, each written with the predictions it
counts) are summed per model version (streamscore.drift.totals) and the shipped
model's sums are compared with its baseline.json; the quarantine counts give the
quarantine rate. Counts are hourly, so a window is read as the whole hours it
touches: a run reads a few items per hour and shard, whatever the traffic. Pure: AWS
sits behind the ports of streamscore.drift.check, so the same code runs in Lambda,
in tests and in the local run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from streamscore.core.artifacts import SCORE
from streamscore.core.monitoring import REPORT
from streamscore.core.times import utc_iso_ms
from streamscore.drift.baseline import DriftBaseline, VariableBaseline
from streamscore.drift.ports import Trigger
from streamscore.drift.stats import (
    DriftStats,
    DriftThresholds,
    Status,
    compare,
    overall_status,
    to_proportions,
    with_out_of_range,
)
from streamscore.drift.totals import VariableCounts, VersionTotals, WindowTotals
from streamscore.drift.window import DAY, DriftWindow

REPORTS_PREFIX = "reports"
DRIFT_DETECTED = "DriftDetected"
RETRAINING_REQUESTED = "RetrainingRequested"
PLOTTED_FEATURES = 5  # the most drifted features drawn next to the score (a 2 x 3 grid)

# Every detail type a trigger sends, in order; the cooldown item records which were accepted.
TRIGGER_EVENTS = (DRIFT_DETECTED, RETRAINING_REQUESTED)


# ---------------------------------------------------------------- the report


@dataclass(frozen=True)
class VariableDrift:
    """One feature's (or the score's) window against its baseline."""

    name: str
    stats: DriftStats
    counts: list[int]
    missing: int
    out_of_range: int
    reference: VariableBaseline
    expected: list[float]  # baseline proportions, out-of-range share last
    observed: list[float]  # window proportions, out-of-range share last (empty without data)

    @property
    def status(self) -> Status:
        return self.stats.status

    def summary(self) -> dict[str, Any]:
        """The statistics, without the bins: what the table item and the events carry."""
        return {
            "psi": _round(self.stats.psi),
            "js_distance": _round(self.stats.js_distance),
            "ks": _round(self.stats.ks),
            "n": self.stats.n,
            "status": self.status,
        }

    def to_dict(self) -> dict[str, Any]:
        seen = self.stats.n + self.missing
        return self.summary() | {
            "missing": self.missing,
            "missing_share": _round(self.missing / seen) if seen else None,
            "baseline_missing_share": _round(self.reference.missing_share),
            "out_of_range": self.out_of_range,
            "out_of_range_share": _round(self.out_of_range / self.stats.n)
            if self.stats.n
            else None,
            "baseline_out_of_range_share": _round(self.reference.out_of_range_share),
            "edges": list(self.reference.edges),
            "counts": self.counts,
            "expected": [_round(p) for p in self.expected],
            "observed": [_round(p) for p in self.observed],
        }


def _round(value: float) -> float:
    return round(value, 6)


def compare_variable(
    name: str,
    reference: VariableBaseline,
    counts: VariableCounts | None,
    thresholds: DriftThresholds,
    weights: Sequence[float] | None = None,
) -> VariableDrift:
    """One variable against its reference: the strata's mixed by `weights` when given."""
    counts = counts or VariableCounts([0] * len(reference.proportions))
    expected = reference.expected(weights)
    stats = compare(
        expected,
        reference.out_of_range_share,
        counts.counts,
        counts.out_of_range,
        thresholds,
    )
    observed = to_proportions([*counts.counts, counts.out_of_range]) if stats.n else []
    return VariableDrift(
        name=name,
        stats=stats,
        counts=list(counts.counts),
        missing=counts.missing,
        out_of_range=counts.out_of_range,
        reference=reference,
        expected=with_out_of_range(expected, reference.out_of_range_share),
        observed=observed,
    )


@dataclass(frozen=True)
class DriftReport:
    window: DriftWindow
    generated_at: datetime
    baseline: DriftBaseline
    thresholds: DriftThresholds
    features: dict[str, VariableDrift]  # model order
    prediction: VariableDrift
    totals: WindowTotals
    notes: list[str]
    # the window's other model versions, each against its own baseline (drift/versions.py);
    # None: counted only
    others: dict[str, dict[str, Any]] | None = None
    shadow: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # challengers

    @property
    def report_id(self) -> str:
        return self.window.window_id

    @property
    def model_version(self) -> str:
        return self.baseline.model_version

    @property
    def status(self) -> Status:
        return overall_status([v.status for v in (*self.features.values(), self.prediction)])

    @property
    def compared(self) -> VersionTotals:
        return self.totals.versions.get(self.model_version, VersionTotals())

    @property
    def max_psi(self) -> tuple[str, float] | None:
        """The feature with the largest PSI among those with enough data."""
        judged = [v for v in self.features.values() if v.status != "insufficient_data"]
        if not judged:
            return None
        worst = max(judged, key=lambda v: v.stats.psi)
        return worst.name, worst.stats.psi

    @property
    def drifted(self) -> list[VariableDrift]:
        """Features and the score whose status is drift, by PSI, largest first."""
        variables = [*self.features.values(), self.prediction]
        return sorted(
            (v for v in variables if v.status == "drift"), key=lambda v: v.stats.psi, reverse=True
        )

    def most_drifted(self, count: int) -> list[VariableDrift]:
        """The `count` features with the largest PSI (with data), largest first."""
        ranked = [v for v in self.features.values() if v.stats.n]
        return sorted(ranked, key=lambda v: v.stats.psi, reverse=True)[:count]

    def warm_up(self) -> dict[str, Any] | None:
        """How long the pipeline had known the window's cards, against the baseline's reference.

        `young_share` is the share of predictions from cards known less than `settled_s`;
        `status` is `fresh` when most are, `warming_up` while it is well above the
        baseline's own share, else `settled`. Verdicts do not wait for it: each stratum is
        compared with reference cards of the same card age (DriftBaseline.history).
        """
        history = self.baseline.history
        if history is None:
            return None
        shares = self.compared.history_shares(len(history.bounds_s))
        settled = history.settled_index()
        reference_young = sum(history.reference_shares[:settled])
        young = sum(shares[:settled]) if shares else None
        if young is None:
            status = "no_data"
        elif young > 0.5:
            status = "fresh"
        elif young > max(2 * reference_young, reference_young + 0.05):
            status = "warming_up"
        else:
            status = "settled"
        return {
            "status": status,
            "young_share": _round(young) if young is not None else None,
            "baseline_young_share": _round(reference_young),
            "settled_after_s": history.settled_s,
            "strata": [
                {
                    "from_s": bound,
                    "label": label,
                    "window_share": _round(shares[i]) if shares else None,
                    "baseline_share": _round(history.reference_shares[i]),
                }
                for i, (bound, label) in enumerate(
                    zip(history.bounds_s, history.labels, strict=True)
                )
            ],
        }

    def sample(self) -> dict[str, int]:
        compared = self.compared
        return {
            "n": compared.n,
            "scored": compared.scored,
            "count_items": compared.batches,
            "records": compared.records,
        }

    def data_quality(self) -> dict[str, Any]:
        pre = self.totals.preprocess
        score_quarantined = self.totals.score_quarantined
        score_records = self.totals.score_records
        quarantined = pre.quarantined + sum(score_quarantined.values())
        return {
            "quarantine_rate": _share(quarantined, pre.records),
            "preprocess": {
                "records": pre.records,
                "quarantined": pre.quarantined,
                "quarantine_rate": _share(pre.quarantined, pre.records),
                "quarantined_by_reason": dict(sorted(pre.quarantined_by_reason.items())),
            },
            "score": {
                "records": score_records,
                "quarantined": sum(score_quarantined.values()),
                "quarantine_rate": _share(sum(score_quarantined.values()), score_records),
                "quarantined_by_reason": dict(sorted(score_quarantined.items())),
            },
            "missing_share": {
                name: v.to_dict()["missing_share"] for name, v in self.features.items() if v.missing
            },
        }

    def volume(self) -> dict[str, Any]:
        return {
            "transactions": self.totals.preprocess.records,
            "quarantine_count_items": self.totals.preprocess.batches,
            "feature_records": self.totals.score_records,
            "prediction_count_items": sum(v.batches for v in self.totals.versions.values()),
            "scored": sum(v.scored for v in self.totals.versions.values()),
            "per_hour": {
                hour: dict(counts) for hour, counts in sorted(self.totals.per_hour.items())
            },
        }

    def other_versions(self) -> dict[str, dict[str, Any]]:
        if self.others is not None:
            return self.others
        return {
            version: counted(v)
            for version, v in sorted(self.totals.versions.items())
            if version != self.model_version
        }

    def shadow_summary(self) -> list[dict[str, Any]]:
        """Each challenger beside its champion, without the score bins (the table item's)."""
        return [{k: v for k, v in c.items() if k != "score_bins"} for c in self.shadow]

    def headline(self) -> dict[str, Any]:
        """What the table item, the events and the full report share, field for field."""
        worst = self.max_psi
        return {
            "report_id": self.report_id,
            "window": self.window.to_dict(),
            "generated_at": utc_iso_ms(self.generated_at),
            "model_version": self.model_version,
            "status": self.status,
            "max_psi": _round(worst[1]) if worst else None,
            "max_psi_feature": worst[0] if worst else None,
            "prediction_psi": (
                _round(self.prediction.stats.psi) if self.prediction.stats.n else None
            ),
            "prediction_js_distance": (
                _round(self.prediction.stats.js_distance) if self.prediction.stats.n else None
            ),
            "drifted": [{"name": v.name} | v.summary() for v in self.drifted],
            "sample": self.sample(),
            "warm_up": _warm_up_headline(self.warm_up()),
            "quarantine_rate": self.data_quality()["quarantine_rate"],
            "thresholds": {
                "psi_warn": self.thresholds.psi_warn,
                "psi_drift": self.thresholds.psi_drift,
                "js_drift": self.thresholds.js_drift,
                "min_samples": self.thresholds.min_samples,
            },
        }

    def summary(self) -> dict[str, Any]:
        """The headline plus every variable's statistics (no bins) and the challengers beside
        the champion: the MonitoringTable item's body."""
        return self.headline() | {
            "features": {name: v.summary() for name, v in self.features.items()},
            "prediction": self.prediction.summary(),
            "shadow": self.shadow_summary(),
        }

    def to_dict(self) -> dict[str, Any]:
        """The full report (the JSON in S3)."""
        return self.headline() | {
            "baseline": {
                "model_version": self.baseline.model_version,
                "feature_schema": self.baseline.feature_schema,
                "sample_size": self.baseline.sample_size,
            },
            "features": {name: v.to_dict() for name, v in self.features.items()},
            "prediction": self.prediction.to_dict(),
            "data_quality": self.data_quality(),
            "volume": self.volume(),
            "other_versions": self.other_versions(),
            "shadow": self.shadow,
            "read": {
                "count_items": self.totals.items_read,
                "hours": len(self.window.count_hours()),
                "ignored_items": self.totals.ignored_items,
            },
            "history": self.warm_up(),
            "notes": list(self.notes),
        }


def counted(sums: VersionTotals) -> dict[str, Any]:
    """What the report says of a version it does not compare: how much of it the window holds."""
    return {"count_items": sums.batches, "n": sums.n, "scored": sums.scored}


def _covered(window: DriftWindow, totals: WindowTotals, version: str) -> timedelta:
    """From the start of the window's first hour with predictions of `version` (or the window's
    start, if later) to its end: a fresh stack's first windows hold less than a day of traffic,
    and so does a champion promoted within the window."""
    compared = totals.versions.get(version)
    if compared is not None and compared.hours:
        hours = [hour for hour, n in compared.hours.items() if n]
    else:  # totals built without per-version hours: the window's, all versions
        hours = [hour for hour, counts in totals.per_hour.items() if counts["scored"]]
    if not hours:
        return timedelta(0)
    first = datetime.strptime(min(hours), "%Y-%m-%dT%H").replace(tzinfo=UTC)
    return window.end - max(first, window.start)


def _not_judged(variable: VariableDrift) -> VariableDrift:
    stats = dataclasses.replace(variable.stats, status="insufficient_data")
    return dataclasses.replace(variable, stats=stats)


def _warm_up_headline(warm_up: dict[str, Any] | None) -> dict[str, Any] | None:
    if warm_up is None:
        return None
    return {key: warm_up[key] for key in ("status", "young_share", "baseline_young_share")}


def _share(part: int, whole: int) -> float | None:
    return _round(part / whole) if whole else None


def build_report(
    window: DriftWindow,
    baseline: DriftBaseline,
    totals: WindowTotals,
    thresholds: DriftThresholds,
    generated_at: datetime,
) -> DriftReport:
    """Every feature and the score against the baseline.

    Features are judged by PSI only; the score by PSI or JS distance (JsDriftThreshold).
    On features the JS rule adds only false alarms: at the default 0.1 it corresponds to a
    PSI of about 0.06, below the warn threshold, and sampling noise alone reaches it.
    """
    compared = totals.versions.get(baseline.model_version, VersionTotals())
    feature_thresholds = thresholds.psi_only()
    weights = compared.history_shares(len(baseline.history.bounds_s)) if baseline.history else None
    features = {
        name: compare_variable(
            name,
            baseline.variables[name],
            compared.histograms.get(name),
            feature_thresholds,
            weights,
        )
        for name in baseline.features
    }
    prediction = compare_variable(
        SCORE, baseline.variables[SCORE], compared.histograms.get(SCORE), thresholds, weights
    )
    notes = _clock_notes(window, baseline, totals, features)
    notes += _window_notes(window, baseline, totals, weights, thresholds)
    return DriftReport(
        window=window,
        generated_at=generated_at,
        baseline=baseline,
        thresholds=thresholds,
        features=features,
        prediction=prediction,
        totals=totals,
        notes=notes,
    )


def _clock_notes(
    window: DriftWindow,
    baseline: DriftBaseline,
    totals: WindowTotals,
    features: dict[str, VariableDrift],
) -> list[str]:
    """Features that follow the clock are judged only when the predictions span a whole day
    (they are replaced in `features` by unjudged ones otherwise)."""
    notes = []
    covered = _covered(window, totals, baseline.model_version)
    clock = [name for name in baseline.features if baseline.variables[name].follows_clock]
    if covered < DAY and clock:
        for name in clock:
            features[name] = _not_judged(features[name])
        notes.append(
            f"the window's predictions span {covered.total_seconds() / 3600:.0f} hours, less than "
            f"a day: features that follow the time of day ({', '.join(clock)}) are not judged"
        )
    if window.end - window.start < DAY:
        notes.append(
            "the window is shorter than a day: features that follow the clock (time of day, "
            "night) differ from the all-day baseline without any drift"
        )
    return notes


def _window_notes(
    window: DriftWindow,
    baseline: DriftBaseline,
    totals: WindowTotals,
    weights: Sequence[float] | None,
    thresholds: DriftThresholds,
) -> list[str]:
    notes = []
    compared = totals.versions.get(baseline.model_version, VersionTotals())
    if not window.whole_hours:
        notes.append(
            "counts are hourly: the window was read as the whole UTC hours it touches, "
            f"{window.count_hours()[0]}:00 to {window.end.isoformat()}"
        )
    others = sorted(v for v in totals.versions if v != baseline.model_version)
    if others:
        notes.append(
            f"predictions of other model versions are in the window ({', '.join(others)}): "
            "the verdict is the champion's; other_versions compares each with its own baseline"
        )
    if baseline.history is not None and weights is not None:
        settled = baseline.history.settled_index()
        young = sum(weights[:settled])
        if young > 0.05:
            notes.append(
                f"{young:.0%} of the window's predictions are of cards the pipeline had known "
                f"less than {baseline.history.settled_s / DAY.total_seconds():g} days (the "
                f"baseline: {sum(baseline.history.reference_shares[:settled]):.0%}); every "
                "variable is compared with reference cards of the same card age"
            )
    if compared.n < thresholds.min_samples:
        notes.append(
            f"{compared.n} rows of model {baseline.model_version} in the window, "
            f"fewer than the {thresholds.min_samples} a verdict needs"
        )
    return notes


# ---------------------------------------------------------------- where the report goes


def report_keys(window: DriftWindow) -> tuple[str, str]:
    """S3 keys of the JSON report and its picture; the same window always gets the same keys."""
    base = f"{REPORTS_PREFIX}/{window.end:%Y/%m/%d}/{window.window_id}"
    return f"{base}.json", f"{base}.png"


def report_item(
    report: DriftReport,
    report_uri: str,
    plot_uri: str | None,
    trigger: Trigger,
) -> dict[str, Any]:
    """The MonitoringTable item of the report: one per window, overwritten by a rerun of that window.

    `retraining` is the window's `Trigger`; a drifted window also names its `trigger_id`.
    Its expiry is the store's, from `recorded_at`.
    """
    start, end = report.window.recorded_bounds
    return {
        "pk": f"{REPORT}#{start}#{end}",
        "sk": REPORT,
        "window_key": f"{REPORT}#{report.generated_at.astimezone(UTC).strftime('%Y-%m-%dT%H')}",
        "recorded_at": utc_iso_ms(report.generated_at),
        **report.summary(),
        "report_uri": report_uri,
        "plot_uri": plot_uri,
        "retraining": trigger,
        "trigger_id": trigger_id(report) if report.status == "drift" else None,
    }


def trigger_id(report: DriftReport) -> str:
    """The retraining trigger's stable id: model version and window, the same in every run of that window."""
    return f"{report.model_version}/{report.window.window_id}"


def trigger_detail(report: DriftReport, report_uri: str, plot_uri: str | None) -> dict[str, Any]:
    """The detail of DriftDetected and RetrainingRequested; consumers dedupe on `trigger_id`."""
    headline = report.headline()
    return {
        "trigger_id": trigger_id(report),
        "report_id": report.report_id,
        "report_uri": report_uri,
        "plot_uri": plot_uri,
        "window": headline["window"],
        "model_version": report.model_version,
        "status": report.status,
        "drifted": headline["drifted"],
        "max_psi": headline["max_psi"],
        "max_psi_feature": headline["max_psi_feature"],
        "prediction_psi": headline["prediction_psi"],
        "prediction_js_distance": headline["prediction_js_distance"],
        "sample": headline["sample"] | {"transactions": report.totals.preprocess.records},
    }
