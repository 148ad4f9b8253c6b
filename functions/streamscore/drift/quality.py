"""Model quality from count items: realized from labels, estimated from the scores themselves.

A model version's prediction count items (PRED) and quality count items (QUAL) over a window of
event hours, summed (core/monitoring.py `Counts`), give:

- **Realized**, from the labels production sees (labels/): analysts label every review; a fraud
  that was approved comes back as a chargeback; a legitimate approval never comes back, so once
  its labels have had time to mature (`LabelMaturityDays`) an approval without a label counts
  as legit (an implicit negative); a decline never settles, so its truth never comes back.
  Every realized figure is therefore **among transactions that were not declined**: recall at
  the review threshold is the share of the frauds seen among approvals and reviews that were
  reviewed; precision at review is the share of reviews the analysts found fraudulent; the area
  under the precision-recall curve ranks approvals and reviews by their score bin
  (core/quality.py). Within a bin the order is unknown, so the area is given with bounds: the
  bin's frauds ranked first (the highest possible) and last (the lowest). The unbinned area lies
  within them; the figure is their midpoint, off by at most half their width.
- **Estimated**, from each decision's sum of scores (`qp_<decision>`): a calibrated model
  expects that many frauds among them (NannyML's confidence-based performance estimation does
  the same per row). It needs no labels, so it is there before they mature, but it assumes
  P(fraud | features) is what the model learned: a new fraud pattern the model scores low
  moves the realized recall and not the estimate. The two side by side show that.
- **Champion against challenger**, from the challenger's quality count items paired with the
  champion (core/quality.py `paired_label_attributes`): both models on the same transactions
  with an explicit label. The labelled set is chosen by the champion's decisions (its reviews
  are all labelled, its declines only when reviewed instead, unlabelled approvals are left
  out), so the absolute figures are biased the same way for both; the comparison is paired:
  the frauds one model flags and the other does not, with McNemar's exact test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from streamscore.core.monitoring import COUNT, PREDICTIONS, Counts
from streamscore.core.monitoring import QUALITY as QUALITY_KIND
from streamscore.core.quality import QUALITY_BINS, REVIEWED_DECLINE, SCORE_UNITS
from streamscore.core.times import utc_iso_ms
from streamscore.drift.report import REPORTS_PREFIX
from streamscore.drift.window import DriftWindow

DECISIONS = ("approve", "review", "decline")


@dataclass(frozen=True)
class QualityCounts:
    """One version's counts over a window, as the quality figures need them."""

    predictions: dict[str, int]  # per decision
    expected_frauds: dict[str, float]  # per decision: the sum of its scores
    approvals: list[int]  # per quality bin
    fraud_approvals: list[int]  # labelled fraud, per bin (chargebacks)
    legit_approvals: list[int]  # labelled legit, per bin (rare: a dispute reversed)
    fraud_reviews: list[int]
    legit_reviews: list[int]
    labelled: dict[str, int]  # "fd_<decision>", "ld_<decision>"
    # declines production reviewed instead (the decline sample, the guard switch): how many,
    # and their labels; already moved from review to decline in `predictions`
    reviewed_declines: int = 0
    reviewed_declines_labelled: tuple[int, int] = (0, 0)  # (fraud, legit)

    @classmethod
    def of(cls, predictions: Counts, labels: Counts) -> QualityCounts:
        """From a version's summed PRED counts and summed QUAL counts."""

        def bins(prefix: str, counts: Counts) -> list[int]:
            return [int(counts.quality.get(f"{prefix}{b}", 0)) for b in range(QUALITY_BINS)]

        reviewed = int(predictions.quality.get(REVIEWED_DECLINE, 0))
        decided = {d: int(predictions.decisions.get(d, 0)) for d in DECISIONS}
        decided["review"] -= reviewed  # counted reviews, decided declines by the model
        decided["decline"] += reviewed
        return cls(
            predictions=decided,
            expected_frauds={
                d: predictions.quality.get(f"p_{d}", 0) / SCORE_UNITS for d in DECISIONS
            },
            approvals=bins("a", predictions),
            fraud_approvals=bins("fa", labels),
            legit_approvals=bins("la", labels),
            fraud_reviews=bins("fr", labels),
            legit_reviews=bins("lr", labels),
            labelled={
                f"{mark}d_{d}": int(labels.quality.get(f"{mark}d_{d}", 0))
                for mark in "fl"
                for d in DECISIONS
            },
            reviewed_declines=reviewed,
            reviewed_declines_labelled=(
                int(labels.quality.get(f"f{REVIEWED_DECLINE}", 0)),
                int(labels.quality.get(f"l{REVIEWED_DECLINE}", 0)),
            ),
        )


@dataclass(frozen=True)
class AreaUnderCurve:
    """Average precision over bins: the bounds of the unbinned figure (each bin's frauds ranked
    last, first), their midpoint (off the unbinned figure by at most half their width), and the
    figure scikit-learn gives for the binned scores (ties: every fraud of a bin at the bin's
    final precision, which can sit a little above the upper bound)."""

    value: float | None
    low: float | None
    high: float | None
    tied: float | None


def binned_average_precision(frauds: list[int], legit: list[int]) -> AreaUnderCurve:
    """Average precision of transactions ranked by bin, highest bin first: the bins' frauds and
    legitimate transactions per bin, in bin order (lowest score first)."""
    total = sum(frauds)
    if total == 0:
        return AreaUnderCurve(None, None, None, None)
    tied = low = high = 0.0
    found = seen = 0
    for f, n in zip(reversed(frauds), reversed(legit), strict=True):
        if f:
            # every fraud of the bin at the bin's precision (ties), at the top, at the bottom
            tied += f * (found + f) / (seen + f + n)
            high += sum((found + k) / (seen + k) for k in range(1, f + 1))
            low += sum((found + k) / (seen + n + k) for k in range(1, f + 1))
        found += f
        seen += f + n
    low, high = low / total, high / total
    return AreaUnderCurve((low + high) / 2, low, high, tied / total)


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


WILSON_Z = 1.959964  # 95 %


def wilson_interval(hits: int, n: int) -> tuple[float, float]:
    """The Wilson score interval (95 %) of a share of hits / n; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    rate, z2 = hits / n, WILSON_Z**2
    spread = WILSON_Z * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n))
    centre, scale = rate + z2 / (2 * n), 1 + z2 / n
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


# labelled declines reviewed instead needed before their precision replaces the score estimate
MIN_SAMPLED_LABELS = 30


def _declined_frauds(
    counts: QualityCounts, use_sample: bool = True
) -> tuple[float, str, dict[str, Any]]:
    """The frauds among the model's declines: from the labels of the declines reviewed instead
    when there are enough (precision x declines) and `use_sample`, else from the declines'
    scores; the source, and what the sample shows."""
    frauds, legit = counts.reviewed_declines_labelled
    labelled = frauds + legit
    low, high = wilson_interval(frauds, labelled)
    sample = {
        "reviewed": counts.reviewed_declines,
        "labelled": labelled,
        "frauds": frauds,
        "precision_at_decline": _share(frauds, labelled),
        "precision_at_decline_95": [low, high] if labelled else None,
    }
    if use_sample and labelled >= MIN_SAMPLED_LABELS:
        return counts.predictions["decline"] * frauds / labelled, "sample", sample
    return counts.expected_frauds["decline"], "scores", sample


def _implicit(counts: QualityCounts) -> list[int]:
    """Per bin, the approvals without a label: legitimate once the labels have matured."""
    return [
        max(0, a - f - legit)
        for a, f, legit in zip(
            counts.approvals, counts.fraud_approvals, counts.legit_approvals, strict=True
        )
    ]


def ranked(counts: QualityCounts) -> tuple[list[int], list[int]]:
    """Frauds and legitimate transactions per quality bin among approvals and reviews, an
    unlabelled approval counting as legitimate: what the precision-recall curve ranks."""
    frauds = [a + r for a, r in zip(counts.fraud_approvals, counts.fraud_reviews, strict=True)]
    legit = [
        a + r + i
        for a, r, i in zip(
            counts.legit_approvals, counts.legit_reviews, _implicit(counts), strict=True
        )
    ]
    return frauds, legit


def pr_curve(frauds: list[int], legit: list[int]) -> list[tuple[float, float]]:
    """(recall, precision) flagging every bin from the highest down to each non-empty bin."""
    total = sum(frauds)
    points: list[tuple[float, float]] = []
    found = seen = 0
    for f, n in zip(reversed(frauds), reversed(legit), strict=True):
        found, seen = found + f, seen + f + n
        if total and (f or n):
            points.append((found / total, found / seen))
    return points


def realized(counts: QualityCounts, mature: bool = True) -> dict[str, Any]:
    """The realized figures of a window whose labels have matured (see the module docstring).
    Not `mature` (an early window): the declines' frauds come from their scores even with a
    decline sample, so that recall at decline can only fall as the window's labels come back
    (a sample's precision could move either way)."""
    implicit = _implicit(counts)
    frauds, legit = ranked(counts)
    caught, missed = sum(counts.fraud_reviews), sum(counts.fraud_approvals)
    cleared = sum(counts.legit_reviews)
    area = binned_average_precision(frauds, legit)
    # a decline's truth never comes back: the declines reviewed instead, or their scores
    declined, source, sample = _declined_frauds(counts, use_sample=mature)
    return {
        # the frauds declined over all frauds: declines' estimated, the rest seen in labels
        "recall_at_decline": _share(declined, declined + caught + missed),
        "declined_frauds_from": source,
        "decline_sample": sample,
        # frauds charged back over the frauds the scores of the approvals expected
        "approval_fraud_ratio": _share(missed, counts.expected_frauds["approve"]),
        "frauds_seen": caught + missed,
        "chargebacks": missed,
        "reviews_labelled": caught + cleared,
        "implicit_negatives": sum(implicit),
        "declines_labelled": counts.labelled["fd_decline"] + counts.labelled["ld_decline"],
        "recall_at_review": _share(caught, caught + missed),
        "precision_at_review": _share(caught, caught + cleared),
        "pr_auc": area.value,
        "pr_auc_low": area.low,
        "pr_auc_high": area.high,
        "pr_auc_tied": area.tied,  # scikit-learn's average precision of the binned scores
        # (recall, precision) flagging from the highest bin down: the curve the area is under
        "pr_curve": [[round(r, 6), round(p, 6)] for r, p in pr_curve(frauds, legit)],
    }


def estimated(counts: QualityCounts) -> dict[str, Any]:
    """What a calibrated model expects of the same predictions: no labels needed."""
    e, n = counts.expected_frauds, counts.predictions
    return {
        "expected_frauds": {d: round(e[d], 3) for d in DECISIONS},
        "recall_at_review": _share(e["review"], e["review"] + e["approve"]),
        "precision_at_review": _share(e["review"], n["review"]),
        "recall_at_decline": _share(e["decline"], sum(e.values())),
        "precision_at_decline": _share(e["decline"], n["decline"]),
    }


# ---------------------------------------------------------------- the scheduled check

QUALITY = "quality"  # a RetrainingRequested's reason, and the event a quality check is run by
QUALITY_STATUSES = ("ok", "low_recall", "insufficient_labels", "no_predictions")


@dataclass(frozen=True)
class QualityPolicy:
    maturity_days: int  # how long labels take to come back: windows older than this are read
    window_days: int  # how many days of event hours a check reads
    recall_threshold: float  # recall at decline below this: retraining, reason quality
    min_frauds: int  # fewer frauds seen in the window: no verdict
    # also judge recall at decline on the window ending this many days ago, before its labels
    # have all come back (0: never). A chargeback not back yet is a fraud not seen yet, so that
    # figure can only fall as labels arrive (a reversal aside): below the threshold early, it
    # will be below it when mature.
    early_days: int = 0


def quality_window(now: datetime, policy: QualityPolicy, *, early: bool = False) -> DriftWindow:
    """The whole hours of `window_days` ending `maturity_days` (`early_days` when `early`)
    before `now`'s hour."""
    days = policy.early_days if early else policy.maturity_days
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    return DriftWindow(end - timedelta(days=policy.window_days), end)


@dataclass
class QualitySums:
    """Count items of a window summed: per model version its PRED and QUAL counts, per
    (challenger, champion) the QUAL counts of the pair, and how many items were read."""

    predicted: dict[str, Counts] = field(default_factory=dict)
    labelled: dict[str, Counts] = field(default_factory=dict)
    paired: dict[tuple[str, str], Counts] = field(default_factory=dict)
    read: int = 0


def sum_quality_items(
    items: Iterable[Mapping[str, Any]], window: DriftWindow | None
) -> QualitySums:
    """The window's PRED and QUAL count items summed (every hour when `window` is None; each
    item once, by key)."""
    hours = set(window.count_hours()) if window is not None else None
    sums = QualitySums()
    seen: set[Any] = set()
    for item in items:
        sums.read += 1
        if item.get("pk") in seen or item.get("sk") != COUNT:
            continue
        if hours is not None and item.get("hour") not in hours:
            continue
        seen.add(item.get("pk"))
        kind, version = str(item.get("kind")), str(item.get("model_version"))
        if kind == QUALITY_KIND and item.get("paired_with"):
            into: dict[Any, Counts] = sums.paired
            key: Any = (version, str(item["paired_with"]))
        elif kind in (PREDICTIONS, QUALITY_KIND):
            into, key = (sums.predicted if kind == PREDICTIONS else sums.labelled), version
        else:
            continue
        into.setdefault(key, Counts()).add(Counts.from_item(item))
    return sums


def mcnemar_p(only_first: int, only_second: int) -> float:
    """McNemar's exact two-sided p-value: discordant pairs against an even split."""
    n = only_first + only_second
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_first, only_second) + 1))
    return min(1.0, 2 * tail / 2**n)


_FLAGGED = {"review": "rd", "decline": "d"}  # decisions at or above each threshold


def _model_figures(counts: Counts, prefix: str, side: int) -> dict[str, Any]:
    quality = counts.quality

    def bins(mark: str) -> list[int]:
        return [int(quality.get(f"{prefix}{mark}{b}", 0)) for b in range(QUALITY_BINS)]

    def decided(mark: str, decisions: str) -> int:
        return sum(
            int(value)
            for name, value in quality.items()
            if name.startswith(f"j{mark}") and name[2 + side] in decisions
        )

    frauds, legit = bins("f"), bins("l")
    figures: dict[str, Any] = {"frauds": sum(frauds), "legit": sum(legit)}
    for threshold, decisions in _FLAGGED.items():
        caught = decided("f", decisions)
        figures[f"recall_at_{threshold}"] = _share(caught, sum(frauds))
        figures[f"precision_at_{threshold}"] = _share(caught, caught + decided("l", decisions))
    area = binned_average_precision(frauds, legit)
    figures |= {"pr_auc": area.value, "pr_auc_low": area.low, "pr_auc_high": area.high}
    return figures


def paired(counts: Counts) -> dict[str, Any]:
    """Champion and challenger on the same labelled transactions (see the module docstring)."""
    quality = counts.quality
    discordant = {}
    for threshold, decisions in _FLAGGED.items():
        only = [0, 0]  # frauds only the challenger flags, only the champion flags
        for name, value in quality.items():
            if name.startswith("jf"):
                champion, challenger = name[2] in decisions, name[3] in decisions
                if champion != challenger:
                    only[champion] += int(value)
        discordant[threshold] = {
            "frauds_only_challenger_flags": only[0],
            "frauds_only_champion_flags": only[1],
            "mcnemar_p": mcnemar_p(only[0], only[1]),
        }
    return {
        "champion": _model_figures(counts, "c", 0),
        "challenger": _model_figures(counts, "s", 1),
        "discordant_frauds": discordant,
    }


def quality_report(
    window: DriftWindow,
    sums: QualitySums,
    champion: str,
    policy: QualityPolicy,
    now: datetime,
    *,
    mature: bool = True,
) -> dict[str, Any]:
    """Every version's realized and estimated quality in the window, each challenger against
    the champion it was scored beside, and the champion's verdict. `mature` False: an early
    window, whose labels have not all come back (QualityPolicy.early_days)."""
    versions = {}
    for version, counts in sorted(sums.predicted.items()):
        summed = QualityCounts.of(counts, sums.labelled.get(version, Counts()))
        versions[version] = {
            "predictions": summed.predictions,
            "realized": realized(summed, mature),
            "estimated": estimated(summed),
        }
    mine = versions.get(champion)
    if mine is None:
        status = "no_predictions"
    elif mine["realized"]["frauds_seen"] < policy.min_frauds:
        status = "insufficient_labels"
    elif mine["realized"]["recall_at_decline"] < policy.recall_threshold:
        status = "low_recall"
    else:
        status = "ok"
    return {
        "kind": QUALITY,
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "window_id": window.window_id,
        "checked_at": utc_iso_ms(now),
        "maturity_days": policy.maturity_days if mature else policy.early_days,
        "mature": mature,
        "champion": champion,
        "status": status,
        "recall_threshold": policy.recall_threshold,
        "min_frauds": policy.min_frauds,
        "versions": versions,
        "challengers": {
            f"{challenger}@{paired_with}": {
                "challenger": challenger,
                "champion": paired_with,
                **paired(counts),
            }
            for (challenger, paired_with), counts in sorted(sums.paired.items())
        },
        "challengers_bias": (
            "both models on the same transactions with an explicit label (reviews decided by "
            "analysts, chargebacks, disputes): the champion's decisions chose them (its reviews "
            "are all labelled, its declines only when reviewed instead, unweighted; unlabelled "
            "approvals are left out), so the figures are not the models' recall in production; "
            "compare them side by side"
        ),
        "bias": (
            "realized figures are among transactions that were not declined: a decline never "
            "settles, so its truth never comes back; unlabelled approvals of the window count "
            "as legitimate (its labels have had maturity_days to come back)"
            + (
                ""
                if mature
                else "; an early window: its labels have not all come back, so frauds are "
                "missing from every realized figure, and recall at decline is an upper bound "
                "of the mature figure (it can only fall as chargebacks arrive, a reversal aside)"
            )
        ),
        "estimate": (
            "from each decision's sum of scores: what a calibrated model expects, before any "
            "label; it assumes P(fraud | features) unchanged, so it cannot see a new fraud pattern"
        ),
    }


def quality_report_key(window: DriftWindow, *, mature: bool = True) -> str:
    """reports/quality/<end date>/<window>.json; an early window's under reports/quality/early/."""
    early = "" if mature else "early/"
    return f"{REPORTS_PREFIX}/{QUALITY}/{early}{window.end:%Y/%m/%d}/{window.window_id}.json"
