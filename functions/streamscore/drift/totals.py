"""A window's count items summed: per model version (decisions, histograms), per challenger in
shadow, and per stage (quarantine reasons)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamscore.core.artifacts import SCORE
from streamscore.core.monitoring import COUNT, PREDICTIONS, QUARANTINE, SHADOW, Counts
from streamscore.drift.baseline import DriftBaseline
from streamscore.drift.window import DriftWindow

# ---------------------------------------------------------------- summing the window's items

KINDS = (PREDICTIONS, QUARANTINE, SHADOW)
TRANSACTION_STAGES = ("preprocess", "score")  # the stages whose bad records are transactions


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
    history: Counter[int] = field(default_factory=Counter)  # predictions per card-age stratum
    hours: Counter[str] = field(default_factory=Counter)  # predictions per event hour

    def history_shares(self, strata: int) -> list[float] | None:
        """The window's share of each card-age stratum; None without any prediction."""
        total = sum(self.history[s] for s in range(strata))
        return [self.history[s] / total for s in range(strata)] if total else None


@dataclass
class ShadowTotals:
    """A challenger's shadow counts beside one champion, and how many fell in each hour."""

    counts: Counts = field(default_factory=Counts)
    hours: Counter[str] = field(default_factory=Counter)


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
    # shadow counts per (challenger, the champion it was scored beside)
    shadow: dict[tuple[str, str], ShadowTotals] = field(default_factory=dict)
    ignored_items: int = 0  # outside the window, or of no known kind
    items_read: int = 0  # every item the reader handed over

    @property
    def score_records(self) -> int:
        return self.score.records

    @property
    def score_quarantined(self) -> Counter[str]:
        return self.score.quarantined_by_reason


BaselineOf = Callable[[str], DriftBaseline | None]  # a model version's baseline, if known


def sum_items(
    items: Iterable[Mapping[str, Any]],
    window: DriftWindow,
    baselines: DriftBaseline | BaselineOf,
) -> WindowTotals:
    """Count items summed per model version, per challenger in shadow and per quarantine stage;
    each once (by key), its hour in the window.

    Every version's counts are summed as they come; once all are read, each version whose
    baseline `baselines` knows (one baseline: that version only) is binned per baseline
    variable (the bins of its features in model order, then of the score). A version without
    one is counted, not compared. Shadow counts (kind SHAD) are kept per challenger and the
    champion it was scored beside.
    """
    baseline_of = _resolver(baselines)
    totals = WindowTotals()
    hours = set(window.count_hours())
    seen: set[Any] = set()
    summed: dict[str, Counts] = {}
    for item in items:
        totals.items_read += 1
        if item.get("pk") in seen:
            continue
        seen.add(item.get("pk"))
        hour, kind = str(item.get("hour", "")), item.get("kind")
        if item.get("sk") != COUNT or hour not in hours or kind not in KINDS:
            totals.ignored_items += 1
            continue
        counts = Counts.from_item(item)
        if kind == SHADOW:
            pair = (str(item.get("model_version", "")), str(item.get("paired_with", "")))
            shadowed = totals.shadow.setdefault(pair, ShadowTotals())
            shadowed.counts.add(counts)
            shadowed.hours[hour] += counts.n
            continue
        per_hour = totals.per_hour.setdefault(hour, Counter())
        if kind == QUARANTINE:
            _add_quarantined(totals, per_hour, counts)
            continue
        version = str(item.get("model_version", ""))
        sums = totals.versions.setdefault(version, VersionTotals())
        sums.batches += 1
        sums.hours[hour] += counts.n
        summed.setdefault(version, Counts()).add(counts)
        per_hour["scored"] += counts.n
    for version, counts in summed.items():
        sums = totals.versions[version]
        sums.records = sums.n = sums.scored = counts.n
        sums.decisions = counts.decisions
        baseline = baseline_of(version)
        if baseline is not None:
            bin_version(sums, counts, baseline)
    scored = sum(v.scored for v in totals.versions.values())
    totals.score.records = scored + totals.score.quarantined
    totals.preprocess.records = totals.score.records + totals.preprocess.quarantined
    return totals


def bin_version(sums: VersionTotals, counts: Counts, baseline: DriftBaseline) -> None:
    """A version's summed counts as histograms over its baseline's bins, and its card-age strata."""
    if baseline.history is not None:
        sums.history = Counter(counts.history)
        # predictions counted without a stratum (a score function from before strata) came
        # from cards known before: the oldest stratum
        oldest = len(baseline.history.bounds_s) - 1
        sums.history[oldest] += counts.n - sum(counts.history.values())
    for index, name in enumerate([*baseline.features, SCORE]):
        bins = len(baseline.variables[name].proportions)
        sums.histograms[name] = VariableCounts([0] * bins)
        sums.histograms[name].add(counts.histogram(index, bins))


def _resolver(baselines: DriftBaseline | BaselineOf) -> BaselineOf:
    if isinstance(baselines, DriftBaseline):
        only = baselines
        return lambda version: only if version == only.model_version else None
    return baselines


def _add_quarantined(totals: WindowTotals, per_hour: Counter[str], counts: Counts) -> None:
    """A QUAR item's records by stage; labels' bad records are not transactions: left out."""
    transactions = 0
    for stage_reason, count in counts.reasons.items():
        stage_name, _, reason = stage_reason.partition("/")
        if stage_name not in TRANSACTION_STAGES:
            continue
        stage = totals.score if stage_name == "score" else totals.preprocess
        stage.quarantined += count
        stage.quarantined_by_reason[reason] += count
        transactions += count
    if transactions:
        per_hour["quarantined"] += transactions
        totals.preprocess.batches += 1
