"""Drift check of one time window: sum the window's hourly counts, compare them with the shipped baseline, report.

The window's prediction counts (streamscore.counts: one item per model version, event
hour, shard and writer slot, each written with the predictions it counts) are summed
per model version and the shipped model's sums are compared with its baseline.json;
the quarantine counts give the quarantine rate. Counts are hourly, so a window is read
as the whole hours it touches: a run reads a few items per hour and shard, whatever
the traffic. Pure apart from
`load_baseline`, which reads the model directory: AWS sits behind the ports of
`check_drift`, so the same code runs in Lambda, in tests and in the local run.

The retraining trigger. EventBridge PutEvents takes no idempotency token and its
targets get at-least-once delivery, so exactly-once is not on offer. What is: a
drifted window's trigger is never lost, a detail type of it is sent again only when
the function cannot know whether PutEvents took it, and it carries a stable
`trigger_id` (model version / window) that consumers dedupe on. The cooldown item
of the model version is a small state machine, changed only by conditional writes:

- claim: `sending` with our trigger id, unless this id completed before (a re-run
  of its window: "sent", nothing sent), another trigger completed within the
  cooldown ("cooldown"), or another trigger's claim is younger than the lease
  ("in_flight"). A claim of the same id still `sending` is resumed whatever its
  age (a retry, or a run after one that died); an older claim of another id is
  dead (the lease outlives any run) and is taken over by our own trigger.
- send only the detail types not recorded as accepted for this trigger id, then
  record the accepted ones; once all are, the claim becomes `sent` and the
  cooldown starts from then.
- nothing is ever released: after a lost response, a timeout or a crash the
  outcome is unknown, so the claim stays `sending` and the retry sends what is not
  recorded as accepted (also when recording the outcome itself failed); entries
  EventBridge refused (an ErrorCode) are not recorded and the run raises
  RetryableError, so the retry sends only those.

Why not the claim-and-release this replaces: a release runs only in-process, so a
run that died after its claim blocked every trigger for a whole cooldown, and a
release after an exception re-opened the claim even when EventBridge had taken the
events. A lease bounds how long a dead claim blocks (one lease, not one cooldown)
and never lets two live runs send different triggers. Accepted detail types are
kept per trigger id (not per claim) until the trigger completes, so a trigger whose
claim was taken over still sends only what it is missing when its window runs again.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

from streamscore.counts import COUNT, PREDICTIONS, QUARANTINE, Counts
from streamscore.counts import window_key as count_window_key
from streamscore.drift import (
    DriftStats,
    DriftThresholds,
    Status,
    compare,
    overall_status,
    to_proportions,
    with_out_of_range,
)
from streamscore.errors import RetryableError, SystemicError
from streamscore.ports import MonitoringStore
from streamscore.records import utc_iso_ms

REPORT = "REPORT"
SCORE = "score"  # the baseline's and the histograms' name for the model's output
CARD_FILE = "model_card.json"
BASELINE_FILE = "baseline.json"
MAX_WINDOW = timedelta(days=7)
DAY = timedelta(days=1)
REPORTS_PREFIX = "reports"
MONITORING_SOURCE = "streamscore.monitoring"
DRIFT_DETECTED = "DriftDetected"
RETRAINING_REQUESTED = "RetrainingRequested"
PLOTTED_FEATURES = 5  # the most drifted features drawn next to the score (a 2 x 3 grid)

# Every detail type a trigger sends, in order; the cooldown item records which were accepted.
TRIGGER_EVENTS = (DRIFT_DETECTED, RETRAINING_REQUESTED)
# How long a claim in progress keeps other triggers out. Longer than any run (Lambda's
# maximum timeout is 900 s, plus clock skew); shorter than the hourly schedule, so the
# next scheduled run takes over the claim of a run that died.
CLAIM_LEASE_SECONDS = 1200.0

# The report item's `retraining`, for a drifted window:
#   sent       its trigger id was delivered (every detail type accepted by EventBridge),
#              by this run or by an earlier run of the window
#   cooldown   nothing sent: another trigger of the model version completed within the cooldown
#   in_flight  nothing sent: another trigger's claim is younger than the lease (its run may
#              still be sending; if it died, a run after the lease sends a trigger)
# and `not_drift` for a window that did not drift.
Trigger = Literal["sent", "cooldown", "in_flight", "not_drift"]
ClaimState = Literal["ours", "sent", "cooldown", "in_flight"]


class InvalidWindowError(ValueError):
    """The event names no usable window (bad times, end not after start, longer than MAX_WINDOW)."""


# ---------------------------------------------------------------- the window


def _compact(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class DriftWindow:
    """[start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidWindowError("window start and end need a UTC offset")
        if self.end <= self.start:
            raise InvalidWindowError(
                f"window end {self.end.isoformat()} is not after its start {self.start.isoformat()}"
            )
        if self.end - self.start > MAX_WINDOW:
            raise InvalidWindowError(f"window longer than {MAX_WINDOW.days} days")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))

    @property
    def window_id(self) -> str:
        return f"{_compact(self.start)}--{_compact(self.end)}"

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60

    @property
    def recorded_bounds(self) -> tuple[str, str]:
        return utc_iso_ms(self.start), utc_iso_ms(self.end)

    def hours(self) -> list[datetime]:
        """Start of every UTC hour the window touches."""
        hour = self.start.replace(minute=0, second=0, microsecond=0)
        hours = []
        while hour < self.end:
            hours.append(hour)
            hour += timedelta(hours=1)
        return hours

    def count_hours(self) -> list[str]:
        """The hours of count items the window reads: every UTC hour it touches."""
        return [hour.strftime("%Y-%m-%dT%H") for hour in self.hours()]

    def count_keys(self) -> list[str]:
        return [count_window_key(hour) for hour in self.count_hours()]

    @property
    def count_bounds(self) -> tuple[str, str]:
        """`recorded_at` bounds of the count items (each is recorded at its hour's start)."""
        return utc_iso_ms(self.hours()[0]), utc_iso_ms(self.end)

    @property
    def whole_hours(self) -> bool:
        return self.start == self.hours()[0] and self.end.minute == self.end.second == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "minutes": round(self.minutes, 3),
        }


def _parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidWindowError(f"{what} must be an ISO 8601 time string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidWindowError(f"{what} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise InvalidWindowError(f"{what} needs a UTC offset")
    return moment


def resolve_window(event: Mapping[str, Any], now: datetime, minutes: int) -> DriftWindow:
    """The on-demand `{"window": {"start", "end"}}`, else the `minutes` before the event's `time` (or now).

    A scheduled window ends at the whole hour of its event time: counts are hourly, and
    an hourly schedule then checks the same whole hours however late it fires.
    """
    if "window" in event:
        window = event["window"]
        if not isinstance(window, Mapping):
            raise InvalidWindowError('"window" must be an object with "start" and "end"')
        return DriftWindow(
            _parse_time(window.get("start"), "window.start"),
            _parse_time(window.get("end"), "window.end"),
        )
    moment = _parse_time(event["time"], "time") if "time" in event else now
    end = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return DriftWindow(end - timedelta(minutes=minutes), end)


# ---------------------------------------------------------------- the baseline


@dataclass(frozen=True)
class VariableBaseline:
    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    missing_share: float
    out_of_range_share: float


@dataclass(frozen=True)
class DriftBaseline:
    """baseline.json of the shipped model: reference bins of every feature (model order) and the score."""

    model_version: str
    feature_schema: str
    sample_size: int
    features: tuple[str, ...]
    variables: Mapping[str, VariableBaseline]

    @classmethod
    def from_dicts(cls, card: Mapping[str, Any], baseline: Mapping[str, Any]) -> DriftBaseline:
        version = str(card["model_version"])
        if baseline.get("model_version", version) != version:
            raise ValueError(
                f"baseline.json is of model {baseline['model_version']}, the card of {version}"
            )
        features = tuple(str(name) for name in card["feature_names"])
        entries = dict(baseline.get("features", {}))
        entries[SCORE] = baseline.get(SCORE)
        variables: dict[str, VariableBaseline] = {}
        for name in (*features, SCORE):
            entry = entries.get(name)
            if not isinstance(entry, Mapping):
                raise ValueError(f"baseline.json has no reference for {name!r}")
            edges = tuple(float(e) for e in entry["edges"])
            proportions = tuple(float(p) for p in entry["proportions"])
            if len(edges) != len(proportions) + 1:
                raise ValueError(
                    f"baseline.json: {name!r} has {len(edges)} edges for {len(proportions)} bins"
                )
            variables[name] = VariableBaseline(
                edges,
                proportions,
                float(entry.get("missing_share", 0.0)),
                float(entry.get("out_of_range_share", 0.0)),
            )
        return cls(
            model_version=version,
            feature_schema=str(card.get("feature_schema", baseline.get("feature_schema", ""))),
            sample_size=int(baseline.get("sample_size", 0)),
            features=features,
            variables=variables,
        )


def load_baseline(model_dir: str | Path) -> DriftBaseline:
    """The baseline shipped in `model_dir` with its model card; SystemicError naming the file and reason."""
    directory = Path(model_dir)
    try:
        card = json.loads((directory / CARD_FILE).read_text())
        baseline = json.loads((directory / BASELINE_FILE).read_text())
        return DriftBaseline.from_dicts(card, baseline)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemicError(
            f"cannot load the drift baseline from {directory} ({CARD_FILE}, {BASELINE_FILE}): "
            f"{type(error).__name__}: {error}"
        ) from error


# ---------------------------------------------------------------- summing the window's items


@dataclass
class VariableCounts:
    counts: list[int]
    missing: int = 0
    out_of_range: int = 0

    def add(self, histogram: Mapping[str, Any]) -> None:
        self.counts = [a + int(b) for a, b in zip(self.counts, histogram["counts"], strict=True)]
        self.missing += int(histogram.get("missing", 0))
        self.out_of_range += int(histogram.get("out_of_range", 0))


@dataclass
class VersionTotals:
    """Prediction counts of one model version."""

    batches: int = 0  # count items read
    records: int = 0  # predictions
    n: int = 0  # rows counted in the histograms (every prediction)
    scored: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    histograms: dict[str, VariableCounts] = field(default_factory=dict)


@dataclass
class StageTotals:
    """Quarantine counts of one stage, and the records it saw (scored or quarantined)."""

    batches: int = 0  # count items read
    records: int = 0
    quarantined: int = 0
    quarantined_by_reason: Counter[str] = field(default_factory=Counter)


@dataclass
class WindowTotals:
    versions: dict[str, VersionTotals] = field(default_factory=dict)
    preprocess: StageTotals = field(default_factory=StageTotals)
    score: StageTotals = field(default_factory=StageTotals)
    per_hour: dict[str, Counter[str]] = field(default_factory=dict)
    ignored_items: int = 0  # outside the window, or of no known kind

    @property
    def score_records(self) -> int:
        return self.score.records

    @property
    def score_quarantined(self) -> Counter[str]:
        return self.score.quarantined_by_reason


def sum_items(
    items: Iterable[Mapping[str, Any]], window: DriftWindow, baseline: DriftBaseline
) -> WindowTotals:
    """Count items summed per model version and per quarantine stage; each once (by key), its hour in the window.

    The baseline's model version is summed per baseline variable (the bins of its
    features in model order, then of the score); other versions are counted, not compared.
    """
    totals = WindowTotals()
    hours = set(window.count_hours())
    names = [*baseline.features, SCORE]
    seen: set[Any] = set()
    for item in items:
        if item.get("pk") in seen:
            continue
        seen.add(item.get("pk"))
        hour, kind = str(item.get("hour", "")), item.get("kind")
        if item.get("sk") != COUNT or hour not in hours or kind not in (PREDICTIONS, QUARANTINE):
            totals.ignored_items += 1
            continue
        counts = Counts.from_item(item)
        per_hour = totals.per_hour.setdefault(hour, Counter())
        if kind == QUARANTINE:
            per_hour["quarantined"] += counts.n
            for stage_reason, count in counts.reasons.items():
                stage_name, _, reason = stage_reason.partition("/")
                stage = totals.score if stage_name == "score" else totals.preprocess
                stage.quarantined += count
                stage.quarantined_by_reason[reason] += count
            totals.preprocess.batches += 1
            continue
        version = str(item.get("model_version", ""))
        sums = totals.versions.setdefault(version, VersionTotals())
        sums.batches += 1
        sums.records += counts.n
        sums.n += counts.n
        sums.scored += counts.n
        sums.decisions.update(counts.decisions)
        per_hour["scored"] += counts.n
        if version == baseline.model_version:
            for index, name in enumerate(names):
                bins = len(baseline.variables[name].proportions)
                histogram = counts.histogram(index, bins)
                sums.histograms.setdefault(name, VariableCounts([0] * bins)).add(histogram)
    scored = sum(v.scored for v in totals.versions.values())
    totals.score.records = scored + totals.score.quarantined
    totals.preprocess.records = totals.score.records + totals.preprocess.quarantined
    return totals


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
) -> VariableDrift:
    counts = counts or VariableCounts([0] * len(reference.proportions))
    stats = compare(
        reference.proportions,
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
        expected=with_out_of_range(reference.proportions, reference.out_of_range_share),
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

    def other_versions(self) -> dict[str, dict[str, int]]:
        return {
            version: {"count_items": v.batches, "n": v.n, "scored": v.scored}
            for version, v in sorted(self.totals.versions.items())
            if version != self.model_version
        }

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
            "quarantine_rate": self.data_quality()["quarantine_rate"],
            "thresholds": {
                "psi_warn": self.thresholds.psi_warn,
                "psi_drift": self.thresholds.psi_drift,
                "js_drift": self.thresholds.js_drift,
                "min_samples": self.thresholds.min_samples,
            },
        }

    def summary(self) -> dict[str, Any]:
        """The headline plus every variable's statistics (no bins): the MonitoringTable item's body."""
        return self.headline() | {
            "features": {name: v.summary() for name, v in self.features.items()},
            "prediction": self.prediction.summary(),
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
            "notes": list(self.notes),
        }


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
    features = {
        name: compare_variable(
            name, baseline.variables[name], compared.histograms.get(name), feature_thresholds
        )
        for name in baseline.features
    }
    prediction = compare_variable(
        SCORE, baseline.variables[SCORE], compared.histograms.get(SCORE), thresholds
    )
    notes = []
    if not window.whole_hours:
        notes.append(
            "counts are hourly: the window was read as the whole UTC hours it touches, "
            f"{window.count_hours()[0]}:00 to {window.end.isoformat()}"
        )
    if window.end - window.start < DAY:
        notes.append(
            "the window is shorter than a day: features that follow the clock (time of day, "
            "night) differ from the all-day baseline without any drift"
        )
    others = sorted(v for v in totals.versions if v != baseline.model_version)
    if others:
        notes.append(
            f"items of other model versions were counted, not compared: {', '.join(others)}"
        )
    if compared.n < thresholds.min_samples:
        notes.append(
            f"{compared.n} rows of model {baseline.model_version} in the window, "
            f"fewer than the {thresholds.min_samples} a verdict needs"
        )
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
    ttl_days: int,
) -> dict[str, Any]:
    """The MonitoringTable item of the report: one per window, overwritten by a rerun of that window.

    `retraining` is the window's `Trigger`; a drifted window also names its `trigger_id`.
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
        "expires_at": int(report.generated_at.timestamp()) + ttl_days * 86400,
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


# ---------------------------------------------------------------- the check, over ports


class WindowReader(Protocol):
    def read(self, window_keys: Sequence[str], start: str, end: str) -> list[dict[str, Any]]:
        """Every item of the window keys with start <= recorded_at <= end, all pages."""
        ...


class ReportWriter(Protocol):
    def uri(self, key: str) -> str:
        """Where `key` is stored (an s3:// URI)."""
        ...

    def put(self, key: str, body: bytes, content_type: str) -> None: ...


@dataclass(frozen=True)
class TriggerClaim:
    """What claiming a trigger found: ours to send, or why not.

    `ours`: the claim is ours (new, resumed by a retry, or taken over from a dead run);
    `accepted` names the detail types EventBridge already accepted for this trigger id.
    `sent`: this trigger id was completed before (a re-run of its window).
    `cooldown`: another trigger of the model version completed within the cooldown.
    `in_flight`: another trigger's claim is younger than the lease: its run may be sending it.
    `history` is the store's own bookkeeping (the latest completed trigger ids), handed back
    to it by `record`.
    """

    model_version: str
    trigger_id: str
    state: ClaimState
    accepted: frozenset[str] = frozenset()
    history: tuple[str, ...] = ()


class RetrainingCooldown(Protocol):
    def claim(
        self,
        model_version: str,
        trigger_id: str,
        now: datetime,
        cooldown_hours: float,
        lease_seconds: float,
    ) -> TriggerClaim:
        """Claim `trigger_id` in one conditional write, or say why it is not ours (see TriggerClaim).

        Ours when it was never completed and either it is the claim in progress (a retry
        resumes it, whatever its age) or no other trigger completed within the cooldown
        and no other claim is younger than `lease_seconds`.
        """
        ...

    def record(
        self, claim: TriggerClaim, accepted: frozenset[str], complete: bool, now: datetime
    ) -> bool:
        """Store the detail types EventBridge accepted; with `complete`, commit the trigger at `now`.

        Conditional on the claim still being ours and in progress; False when it is not.
        """
        ...


class EventSink(Protocol):
    def put_events(self, entries: Sequence[Mapping[str, str]]) -> list[int]:
        """Indexes of the entries that still failed after retries."""
        ...


@dataclass(frozen=True)
class DriftCheckPorts:
    reader: WindowReader
    reports: ReportWriter
    monitoring: MonitoringStore
    cooldown: RetrainingCooldown
    events: EventSink


@dataclass(frozen=True)
class DriftCheckPolicy:
    thresholds: DriftThresholds
    cooldown_hours: float
    monitoring_ttl_days: int
    claim_lease_seconds: float = CLAIM_LEASE_SECONDS


@dataclass(frozen=True)
class DriftCheckOutcome:
    report: DriftReport
    report_uri: str
    plot_uri: str | None
    trigger: Trigger
    items_read: int
    sent: tuple[str, ...] = ()  # the detail types this run put (and EventBridge accepted)


def check_drift(
    window: DriftWindow,
    baseline: DriftBaseline,
    ports: DriftCheckPorts,
    policy: DriftCheckPolicy,
    now: datetime,
    draw: Callable[[DriftReport], bytes] | None = None,
) -> DriftCheckOutcome:
    """Read, compare, store the report (S3 first, then the table item) and trigger retraining on drift.

    Reruns of a window overwrite its report. The trigger is claimed in the cooldown item
    before its events are sent and committed only when EventBridge accepted every one of
    them; a run that fails (or dies) in between leaves the claim for its retry, or after
    the lease for a later run (see the module docstring).
    """
    items = ports.reader.read(window.count_keys(), *window.count_bounds)
    totals = sum_items(items, window, baseline)
    report = build_report(window, baseline, totals, policy.thresholds, now)
    json_key, png_key = report_keys(window)
    report_uri, plot_uri = ports.reports.uri(json_key), None
    if draw is not None:
        try:
            picture = draw(report)
        except Exception as error:  # the picture is a convenience: the verdict must not wait on it
            report.notes.append(f"no picture: {type(error).__name__}: {error}")
        else:
            ports.reports.put(png_key, picture, "image/png")
            plot_uri = ports.reports.uri(png_key)
    body = json.dumps(
        report.to_dict() | {"report_uri": report_uri, "plot_uri": plot_uri},
        separators=(",", ":"),
        allow_nan=False,
    )
    ports.reports.put(json_key, body.encode(), "application/json")
    trigger, sent = _trigger(report, report_uri, plot_uri, ports, policy, now)
    ports.monitoring.put(
        report_item(report, report_uri, plot_uri, trigger, policy.monitoring_ttl_days)
    )
    return DriftCheckOutcome(report, report_uri, plot_uri, trigger, len(items), sent)


def _trigger(
    report: DriftReport,
    report_uri: str,
    plot_uri: str | None,
    ports: DriftCheckPorts,
    policy: DriftCheckPolicy,
    now: datetime,
) -> tuple[Trigger, tuple[str, ...]]:
    """The window's Trigger and the detail types this run sent.

    No exception is caught here: whatever PutEvents raised, its outcome is unknown, so the
    claim stays in progress and the retry sends the entries not recorded as accepted again.
    """
    if report.status != "drift":
        return "not_drift", ()
    claim = ports.cooldown.claim(
        report.model_version,
        trigger_id(report),
        now,
        policy.cooldown_hours,
        policy.claim_lease_seconds,
    )
    if claim.state != "ours":
        return claim.state, ()
    detail = json.dumps(
        trigger_detail(report, report_uri, plot_uri), separators=(",", ":"), allow_nan=False
    )
    entries = [
        {"Source": MONITORING_SOURCE, "DetailType": detail_type, "Detail": detail}
        for detail_type in TRIGGER_EVENTS
        if detail_type not in claim.accepted
    ]
    failed = set(ports.events.put_events(entries)) if entries else set()
    sent = tuple(e["DetailType"] for i, e in enumerate(entries) if i not in failed)
    accepted = claim.accepted | set(sent)
    complete = accepted >= set(TRIGGER_EVENTS)
    if sent or complete:
        ports.cooldown.record(claim, accepted, complete, now)
    if not complete:
        raise RetryableError(
            f"{len(failed)} of {len(entries)} drift events of {claim.trigger_id} were refused; "
            "the retry sends only those"
        )
    return "sent", sent
