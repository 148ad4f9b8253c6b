"""Every model version against its own baseline, and each challenger side by side with its champion.

The drift report's verdict is the champion's (drift/report.py). A window can hold predictions of
other versions too (the champion before a promotion or rollback): each is compared with its own
baseline from the registry, in a summary of its own. A challenger scored in shadow (kind SHAD
counts, scoring/shadow.py) is compared with its own baseline the same way, and with the champion
it was scored beside on the same transactions: both decision rates, the share of transactions
both decided alike, and the rank correlation of their scores.

The rank correlation is Spearman's, computed exactly from the joint counts of the two models'
score bins (each over its own baseline's bins; a value outside them is left out): ranks within
a bin are tied. It is the correlation of binned ranks, so it is at most as high as the
correlation of the raw scores would be; two models that order transactions alike across the
bins reach 1.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from streamscore.drift.baseline import DriftBaseline
from streamscore.drift.report import DriftReport, build_report, counted
from streamscore.drift.stats import DriftThresholds
from streamscore.drift.totals import (
    BaselineOf,
    ShadowTotals,
    VersionTotals,
    WindowTotals,
    bin_version,
)
from streamscore.drift.window import DriftWindow


def version_report(
    window: DriftWindow,
    baseline: DriftBaseline,
    sums: VersionTotals,
    thresholds: DriftThresholds,
    generated_at: datetime,
) -> DriftReport:
    """The report one version's counts would get against its own baseline, over the part of the
    window it has predictions in (a champion before a promotion, a challenger named within the
    window: features that follow the clock are judged only when that part spans a day)."""
    totals = WindowTotals(
        versions={baseline.model_version: sums},
        per_hour={hour: Counter({"scored": n}) for hour, n in sums.hours.items()},
    )
    return build_report(_served_part(window, sums), baseline, totals, thresholds, generated_at)


def _served_part(window: DriftWindow, sums: VersionTotals) -> DriftWindow:
    """The window cut to the whole hours the version has predictions in (the window itself
    when it has none)."""
    hours = sorted(hour for hour, n in sums.hours.items() if n)
    if not hours:
        return window
    first = datetime.strptime(hours[0], "%Y-%m-%dT%H").replace(tzinfo=UTC)
    last = datetime.strptime(hours[-1], "%Y-%m-%dT%H").replace(tzinfo=UTC) + timedelta(hours=1)
    return DriftWindow(max(window.start, first), min(window.end, last))


def verdict(report: DriftReport) -> dict[str, Any]:
    """A version's drift in a few fields: what the report shows for it beside the champion."""
    headline = report.headline()
    return {
        "status": headline["status"],
        "max_psi": headline["max_psi"],
        "max_psi_feature": headline["max_psi_feature"],
        "prediction_psi": headline["prediction_psi"],
        "drifted": [d["name"] for d in headline["drifted"]],
    }


def other_versions(
    window: DriftWindow,
    totals: WindowTotals,
    champion: str,
    baseline_of: BaselineOf,
    thresholds: DriftThresholds,
    generated_at: datetime,
) -> dict[str, dict[str, Any]]:
    """Each version other than the champion with predictions in the window, against its own
    baseline when the registry (or the shipped model) has one."""
    summaries: dict[str, dict[str, Any]] = {}
    for version, sums in sorted(totals.versions.items()):
        if version == champion:
            continue
        summary = counted(sums) | {"decision_rates": _rates(sums.decisions, sums.n)}
        baseline = baseline_of(version)
        if baseline is None or not sums.histograms:
            summary["baseline"] = "not found: counted, not compared"
        else:
            report = version_report(window, baseline, sums, thresholds, generated_at)
            summary |= verdict(report)
        summaries[version] = summary
    return summaries


def shadow_comparisons(
    window: DriftWindow,
    totals: WindowTotals,
    baseline_of: BaselineOf,
    thresholds: DriftThresholds,
    generated_at: datetime,
) -> list[dict[str, Any]]:
    """Each challenger beside each champion it was scored with in the window."""
    return [
        compare_shadow(
            window, challenger, champion, shadowed, baseline_of, thresholds, generated_at
        )
        for (challenger, champion), shadowed in sorted(totals.shadow.items())
    ]


def compare_shadow(
    window: DriftWindow,
    challenger: str,
    champion: str,
    shadowed: ShadowTotals,
    baseline_of: BaselineOf,
    thresholds: DriftThresholds,
    generated_at: datetime,
) -> dict[str, Any]:
    counts = shadowed.counts
    champion_decisions: Counter[str] = Counter()
    for (mine, _), count in counts.pairs.items():
        champion_decisions[mine] += count
    agreed = sum(c for (mine, theirs), c in counts.pairs.items() if mine == theirs)
    rho, ranked = rank_correlation(counts.joint)
    comparison: dict[str, Any] = {
        "challenger": challenger,
        "champion": champion,
        "n": counts.n,
        "decision_rates": {
            "champion": _rates(champion_decisions, counts.n),
            "challenger": _rates(counts.decisions, counts.n),
        },
        "agreement": _share(agreed, counts.n),
        "disagreements": {
            f"{mine}->{theirs}": c
            for (mine, theirs), c in sorted(counts.pairs.items())
            if mine != theirs
        },
        "rank_correlation": None if rho is None else round(rho, 6),
        "ranked": ranked,
        "score_bins": _score_bins(counts.joint),
    }
    baseline = baseline_of(challenger)
    if baseline is None:
        comparison["baseline"] = "not found: its own drift not compared"
        return comparison
    sums = VersionTotals(n=counts.n, scored=counts.n, records=counts.n, hours=shadowed.hours)
    sums.decisions = counts.decisions
    bin_version(sums, counts, baseline)
    report = version_report(window, baseline, sums, thresholds, generated_at)
    return comparison | {"drift": verdict(report)}


def rank_correlation(joint: Mapping[tuple[int, int], int]) -> tuple[float | None, int]:
    """Spearman's rho of two binned scores from their joint counts (ties: midranks), and the
    rows it is over (both scores inside their bins); None when either has no spread."""
    cells = {(i, j): c for (i, j), c in joint.items() if i >= 0 and j >= 0 and c}
    n = sum(cells.values())
    if n < 2:
        return None, n
    rows: Counter[int] = Counter()
    columns: Counter[int] = Counter()
    for (i, j), count in cells.items():
        rows[i] += count
        columns[j] += count
    row_rank, column_rank = _midranks(rows), _midranks(columns)
    mean = (n + 1) / 2
    covariance = sum(
        c * (row_rank[i] - mean) * (column_rank[j] - mean) for (i, j), c in cells.items()
    )
    row_var = sum(c * (row_rank[i] - mean) ** 2 for i, c in rows.items())
    column_var = sum(c * (column_rank[j] - mean) ** 2 for j, c in columns.items())
    if row_var <= 0 or column_var <= 0:
        return None, n
    return covariance / math.sqrt(row_var * column_var), n


def _midranks(counts: Mapping[int, int]) -> dict[int, float]:
    """Each bin's rank, its rows tied: the mean of the ranks they take in bin order."""
    ranks: dict[int, float] = {}
    below = 0
    for index in sorted(counts):
        ranks[index] = below + (counts[index] + 1) / 2
        below += counts[index]
    return ranks


def _score_bins(joint: Mapping[tuple[int, int], int]) -> dict[str, dict[str, int]]:
    """Each model's score histogram of the shadowed transactions (bin index -> count)."""
    champion: Counter[int] = Counter()
    challenger: Counter[int] = Counter()
    for (i, j), count in joint.items():
        champion[i] += count
        challenger[j] += count
    return {
        "champion": {str(i): c for i, c in sorted(champion.items())},
        "challenger": {str(j): c for j, c in sorted(challenger.items())},
    }


def _rates(decisions: Mapping[str, int], n: int) -> dict[str, float | None]:
    return {d: _share(decisions.get(d, 0), n) for d in ("approve", "review", "decline")}


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None
