"""The score bins quality counts use: fine, fixed, the same for every model version.

Realized quality (precision and recall at a threshold, the precision-recall curve and its area)
is computed from counts of labelled transactions per score bin, so the bins must be fine where a
fraud model's scores are: near 0, where almost every transaction is, and across the review and
decline thresholds. The edges are evenly spaced in log-odds from -10 to 10 (p from 4.5e-5 to
0.99995), 63 edges and 64 bins; a bin spans 0.32 in log-odds, a factor of 1.38 in odds. Fixed
edges keep every version's counts comparable and need nothing from the model card; the error
they leave in the area under the curve is bounded from the counts themselves
(streamscore.drift: each bin's frauds ranked first, then last).
"""

from __future__ import annotations

import bisect
import hashlib
import math

# the fields a challenger scored in shadow adds to the champion's prediction (scoring/shadow.py),
# which a label joins (labels/batch.py)
CHALLENGER_VERSION = "challenger_version"
CHALLENGER_SCORE = "challenger_score"
CHALLENGER_DECISION = "challenger_decision"
# why a decline was reviewed instead (scoring/batch.py), which a label keeps too
GUARD = "guard"
QUALITY_BINS = 64
# sums of scores are counted in millionths (integers, so DynamoDB's ADD keeps them exact); a
# sum of n scores is off by at most n / 2,000,000
SCORE_UNITS = 1_000_000
_LOW, _HIGH = -10.0, 10.0
QUALITY_EDGES: tuple[float, ...] = tuple(
    1.0 / (1.0 + math.exp(-(_LOW + (_HIGH - _LOW) * k / (QUALITY_BINS - 2))))
    for k in range(QUALITY_BINS - 1)
)


def quality_bin(score: float) -> int:
    """The bin of a score in [0, 1]: 0 below the first edge, QUALITY_BINS - 1 from the last on."""
    return bisect.bisect_right(QUALITY_EDGES, score)


# a decline production reviewed instead (scoring: the decline sample, or the registry's guard
# switch): PRED counts it under `s` beside its decision, review; its label under `fs` / `ls`
REVIEWED_DECLINE = "s"


def in_decline_sample(transaction_id: str, share: float) -> bool:
    """Whether a would-be decline of this transaction is reviewed instead (DeclineSampleShare):
    the first 8 bytes of its id's BLAKE2b below `share` of 2**64. A retry or replay decides the
    same, and the sample is independent of the score."""
    digest = hashlib.blake2b(transaction_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


def label_attributes(
    fraud: bool, decision: str, score: float, reviewed_decline: bool = False
) -> tuple[str, ...]:
    """The quality count attributes (Counts.quality) a label of a scored transaction adds: by
    label, decision and quality bin for an approval or a review (`fa12`, `lr30`: the
    precision-recall curve among transactions not declined), and by label and decision
    (`fd_decline`). A decline's bin is not kept: declines are labelled too rarely to draw a
    curve of, and leaving them out keeps a count item within 2 x 2 x 64 + 8 attributes. A
    decline production reviewed instead (`reviewed_decline`) counts only as such (`fs`, `ls`):
    its label measures the declines' precision, not the reviews'."""
    mark = "f" if fraud else "l"
    if reviewed_decline:
        return (f"{mark}{REVIEWED_DECLINE}",)
    by_decision = f"{mark}d_{decision}"
    if decision in ("approve", "review"):
        return (f"{mark}{decision[0]}{quality_bin(score)}", by_decision)
    return (by_decision,)


def paired_label_attributes(
    fraud: bool,
    champion: tuple[str, float],
    challenger: tuple[str, float],
) -> tuple[str, str, str]:
    """What a label adds to the count item of a challenger paired with its champion, for a
    transaction both scored ((decision, score) each): the pair of decisions by label (`jfar`:
    fraud, champion approved, challenger reviewed), and each model's quality bin by label (`cf12`
    champion, `sf15` challenger). Both models are then judged on the same labelled transactions.
    At most 2 x 3 x 3 + 2 x 2 x 64 = 274 attributes an item, within MAX_COUNT_ATTRIBUTES."""
    mark = "f" if fraud else "l"
    (champion_decision, champion_score), (challenger_decision, challenger_score) = (
        champion,
        challenger,
    )
    return (
        f"j{mark}{champion_decision[0]}{challenger_decision[0]}",
        f"c{mark}{quality_bin(champion_score)}",
        f"s{mark}{quality_bin(challenger_score)}",
    )
