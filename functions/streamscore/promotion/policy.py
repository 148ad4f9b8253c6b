"""When a challenger in shadow becomes the champion: the promotion policy, pure.

A challenger is scored in shadow beside the champion (scoring/shadow.py); the labels that come
back for those transactions are counted for both models on the challenger's QUAL item paired
with the champion (core/quality.py `paired_label_attributes`), and every transaction both scored
is counted on the SHAD item (the pair of decisions). From those counts alone:

- **Enough evidence**: at least `min_hours` in shadow, `min_labelled` labelled transactions both
  scored and `min_frauds` frauds among them. Before that the verdict is `wait`; a challenger that
  has not gathered them in `max_days` is rejected (`insufficient_labels`), so a quiet stack does
  not keep a challenger for ever.
- **At least as good, within tolerance** (non-inferiority, paired on the same transactions):
  - recall at decline on the labelled frauds: the difference challenger - champion is
    (c - b) / n, b the frauds only the champion declines, c those only the challenger declines.
    Its one-sided confidence bounds: the Wald interval of a difference of paired proportions,
    variance (b + c - (c - b)^2 / n) / n^2, widened by a continuity correction of 1 / n;
  - the decline rate on every transaction both scored (the SHAD pairs, unlabelled ones too, so
    no label bias) at most `1 + decline_rate_tolerance` times the champion's: a challenger must
    not buy recall by declining more customers. Or, beyond that, at most `1 +
    decline_rate_tolerance` times the share its card expects it to decline (its test slice,
    weighted for the decline sample): a retrain's decline threshold is the lowest with 90 %
    precision on labelled traffic that already held the shift, so a challenger that declines a
    fraud wave the champion misses declines more than the champion, as its card said it would.
    Telling extra frauds from extra customers directly would need the chargebacks of the
    transactions only the challenger declines, and those take weeks (simulator/outcomes.py:
    median ~12 days), longer than a challenger should wait.
  The decline rate fails: `reject`. The recall bound clears the tolerance: `promote`; the
  upper bound is below it (clearly worse): `reject`; in between the evidence is inconclusive:
  `wait` for more labels, and `reject` once `max_days` have passed. Checked again as labels
  come in (daily), the bound is looked at repeatedly, which makes a promotion by chance more
  likely than the one-sided 5 % of a single look; `min_frauds` and the continuity correction
  keep the first looks conservative.

Recall is judged on labelled frauds, which the champion's decisions chose (its reviews are all
labelled, its declines only when sampled): biased the same way for both models, which is what a
paired comparison needs; the figures are not the models' recall in production.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from streamscore.core.monitoring import COUNT, SHADOW, Counts
from streamscore.core.monitoring import QUALITY as QUALITY_KIND

Verdict = Literal["wait", "promote", "reject"]
PROMOTE: Verdict = "promote"
REJECT: Verdict = "reject"
WAIT: Verdict = "wait"

_Z_ONE_SIDED_95 = 1.6448536269514722


@dataclass(frozen=True)
class PromotionPolicy:
    """The evidence a challenger needs and the tolerance it is judged with."""

    min_hours: float = 168.0  # a whole week in shadow: every weekday and night seen
    min_labelled: int = 1000
    min_frauds: int = 50
    max_days: float = 28.0  # then reject a challenger still short of evidence
    recall_tolerance: float = 0.02  # recall at decline may be this much lower (lower bound)
    decline_rate_tolerance: float = 0.25  # declines at most 1.25 times the champion's
    z: float = _Z_ONE_SIDED_95

    def __post_init__(self) -> None:
        if self.min_hours < 0 or self.max_days * 24 < self.min_hours:
            raise ValueError("min_hours must be in [0, max_days * 24]")
        if self.min_labelled < 1 or self.min_frauds < 1:
            raise ValueError("min_labelled and min_frauds must be at least 1")
        if not 0 <= self.recall_tolerance < 1 or self.decline_rate_tolerance < 0:
            raise ValueError("tolerances: recall in [0, 1), decline rate at least 0")


@dataclass
class ShadowCounts:
    """One challenger's shadow counts beside one champion, summed over hours."""

    shadow: Counts = field(default_factory=Counts)  # SHAD: every transaction both scored
    paired: Counts = field(default_factory=Counts)  # QUAL paired: labelled ones, both models
    first_hour: str | None = None  # the earliest hour with a SHAD item
    read: int = field(default=0, compare=False)  # items read, theirs or not


def sum_shadow_items(
    items: Iterable[Mapping[str, Any]], challenger: str, champion: str
) -> ShadowCounts:
    """The SHAD and paired QUAL count items of `challenger` beside `champion`, each item once."""
    sums = ShadowCounts()
    seen: set[Any] = set()
    for item in items:
        sums.read += 1
        if item.get("sk") != COUNT or item.get("pk") in seen:
            continue
        if item.get("model_version") != challenger or item.get("paired_with") != champion:
            continue
        seen.add(item.get("pk"))
        kind = item.get("kind")
        if kind == SHADOW:
            sums.shadow.add(Counts.from_item(item))
            hour = str(item.get("hour"))
            sums.first_hour = hour if sums.first_hour is None else min(sums.first_hour, hour)
        elif kind == QUALITY_KIND:
            sums.paired.add(Counts.from_item(item))
    return sums


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    why: str
    figures: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_recall_bounds(
    only_champion: int, only_challenger: int, n: int, z: float
) -> tuple[float, float]:
    """One-sided confidence bounds (lower, upper) of recall(challenger) - recall(champion) on
    n frauds, b of which only the champion flags and c only the challenger."""
    if n <= 0:
        return -1.0, 1.0
    b, c = only_champion, only_challenger
    difference = (c - b) / n
    margin = z * math.sqrt(max(b + c - (c - b) ** 2 / n, 0.0)) / n + 1.0 / n
    return max(-1.0, difference - margin), min(1.0, difference + margin)


def _labelled(paired: Counts) -> dict[str, int]:
    """Frauds and legit labelled; frauds only one model declines, per model."""
    figures = {"frauds": 0, "legit": 0, "frauds_only_champion_declines": 0}
    figures["frauds_only_challenger_declines"] = 0
    figures["frauds_champion_declines"] = 0
    figures["frauds_challenger_declines"] = 0
    for name, value in paired.quality.items():
        if len(name) != 4 or name[0] != "j" or name[1] not in "fl":
            continue
        count = int(value)
        if name[1] == "l":
            figures["legit"] += count
            continue
        champion, challenger = name[2] == "d", name[3] == "d"
        figures["frauds"] += count
        figures["frauds_champion_declines"] += count * champion
        figures["frauds_challenger_declines"] += count * challenger
        if champion and not challenger:
            figures["frauds_only_champion_declines"] += count
        elif challenger and not champion:
            figures["frauds_only_challenger_declines"] += count
    return figures


def _declines(shadow: Counts) -> dict[str, Any]:
    scored = sum(shadow.pairs.values())
    champion = sum(n for (mine, _), n in shadow.pairs.items() if mine == "decline")
    challenger = sum(n for (_, theirs), n in shadow.pairs.items() if theirs == "decline")
    ratio = None if champion == 0 else challenger / champion
    return {
        "scored_in_shadow": scored,
        "champion_declines": champion,
        "challenger_declines": challenger,
        "decline_ratio": ratio,
    }


def judge(
    counts: ShadowCounts,
    hours_in_shadow: float,
    policy: PromotionPolicy,
    card_decline_share: float | None = None,
) -> Judgement:
    """The verdict on a challenger from its shadow counts (see the module docstring);
    `card_decline_share` is the share its card expects it to decline (None: not known)."""
    figures: dict[str, Any] = {"hours_in_shadow": round(hours_in_shadow, 2)}
    figures |= _labelled(counts.paired) | _declines(counts.shadow)
    figures["challenger_card_decline_share"] = card_decline_share
    figures["labelled"] = figures["frauds"] + figures["legit"]
    expired = hours_in_shadow >= policy.max_days * 24
    short = _short_of(figures, hours_in_shadow, policy)
    if short and expired:
        why = f"insufficient_labels: after {policy.max_days:g} days in shadow only {short}"
        return Judgement(REJECT, why, figures)
    if short:
        return Judgement(WAIT, f"waiting for evidence: {short}", figures)
    too_many = _declines_too_many(figures, policy)
    if too_many:
        return Judgement(REJECT, too_many, figures)
    return _recall_verdict(figures, policy, expired)


def _declines_too_many(figures: dict[str, Any], policy: PromotionPolicy) -> str:
    """Why the challenger declines too many, or "": at most 1 + tolerance times the champion's
    declines, or else at most 1 + tolerance times the share its card expects (its decline
    threshold was chosen for a precision on labelled data that already held the traffic it
    is now declining: a fraud wave the champion misses)."""
    ratio = figures["decline_ratio"]
    limit = 1 + policy.decline_rate_tolerance
    if ratio is not None and ratio <= limit:
        return ""
    scored, expected = figures["scored_in_shadow"], figures["challenger_card_decline_share"]
    share = figures["challenger_declines"] / scored if scored else 0.0
    figures["challenger_decline_share"] = share
    if ratio is None and not figures["challenger_declines"]:
        return ""
    if expected is not None and share <= limit * expected:
        figures["declines_judged_by"] = "card"
        return ""
    champion = (
        "where the champion declines none"
        if ratio is None
        else f"{ratio:.2f} times the champion's (at most {limit:g})"
    )
    card = (
        "its card gives no decline share"
        if expected is None
        else f"{share:.4f} of transactions against its card's {expected:.4f} (at most x{limit:g})"
    )
    return f"declines {champion}, and {card}"


def _recall_verdict(figures: dict[str, Any], policy: PromotionPolicy, expired: bool) -> Judgement:
    n_frauds = figures["frauds"]
    low, high = paired_recall_bounds(
        figures["frauds_only_champion_declines"],
        figures["frauds_only_challenger_declines"],
        n_frauds,
        policy.z,
    )
    difference = (
        figures["frauds_challenger_declines"] - figures["frauds_champion_declines"]
    ) / n_frauds
    figures |= {"recall_difference": difference, "recall_difference_bounds": [low, high]}
    recall = f"recall at decline {difference:+.3f} [{low:+.3f}, {high:+.3f}]"
    tolerance = f"tolerance {policy.recall_tolerance:g}"
    if low >= -policy.recall_tolerance:
        ratio = figures["decline_ratio"] or 0.0
        declines = f"declines x{ratio:.2f}"
        if figures.get("declines_judged_by") == "card":
            declines += (
                f" the champion's, {figures['challenger_decline_share']:.4f} of transactions "
                f"as its card expects ({figures['challenger_card_decline_share']:.4f})"
            )
        why = f"at least as good within {tolerance}: {recall}, {declines}"
        return Judgement(PROMOTE, why, figures)
    if high < -policy.recall_tolerance:
        return Judgement(REJECT, f"worse beyond {tolerance}: {recall}", figures)
    if expired:
        return Judgement(REJECT, f"inconclusive after {policy.max_days:g} days: {recall}", figures)
    return Judgement(WAIT, f"inconclusive so far ({tolerance}): {recall}", figures)


def _short_of(figures: dict[str, Any], hours: float, policy: PromotionPolicy) -> str:
    """What the evidence still lacks, or '' when it is enough to judge."""
    return ", ".join(
        text
        for text, missing in (
            (f"{hours:.0f} of {policy.min_hours:g} hours", hours < policy.min_hours),
            (
                f"{figures['labelled']} of {policy.min_labelled} labelled",
                figures["labelled"] < policy.min_labelled,
            ),
            (
                f"{figures['frauds']} of {policy.min_frauds} frauds",
                figures["frauds"] < policy.min_frauds,
            ),
        )
        if missing
    )


def hours_between(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds() / 3600.0, 0.0)
