"""Counts written with the facts they count: hourly count items, exact under any retry or replay.

A fact is an item created once per thing counted: a prediction per scored transaction
(per model version), a quarantine item per bad record. The writer creates each fact
in one DynamoDB transaction with the counts it adds, on the condition that the fact
does not exist yet. A retry, a replay with other batch boundaries, a lost response,
a concurrent writer: each finds the fact and adds nothing; a transaction that does not
commit adds nothing either. So a count moves exactly when its fact is created. A label is
the one fact that changes: it is written over the label it replaces, on the condition that
the stored one is still that label, and takes that label's counts back in the same
transaction (labels/batch.py); its counts move exactly when the label in force changes.

Count items are keyed by kind, model version, UTC hour, source shard and writer slot
(the chunks of one batch are written side by side, each on its own item, so they never
conflict; with ParallelizationFactor > 1 each invocation also picks one of that many lanes), and found per hour through MonitoringTable's WindowIndex: a window of a day
reads a few items per hour and shard whatever the traffic. The hour is the fact's event
time: the transaction's own, or for a bad record the event time it carries when it has
one, else its arrival on the stream.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streamscore.core.quality import QUALITY_BINS, REVIEWED_DECLINE, SCORE_UNITS, quality_bin

PREDICTIONS = "PRED"  # one per scored transaction and model version
SHADOW = "SHAD"  # one per prediction a challenger scored in shadow, per challenger and champion
QUARANTINE = "QUAR"  # one per bad record (its record id: stream position, aggregate index)
QUALITY = "QUAL"  # one per labelled transaction (its label in force), per scoring model version
COUNT = "COUNT"  # the sort key and window-key prefix of count items
# the drift check's items (streamscore.drift, streamscore.aws.drift_stores)
MONITORING_SOURCE = "streamscore.monitoring"  # the events monitoring puts (drift, promotion)
REPORT = "REPORT"  # one per drift window: pk REPORT#start#end, sk and window-key prefix
RETRAIN = "RETRAIN"  # pk prefix of a model version's retraining cooldown item: RETRAIN#version
COOLDOWN = "COOLDOWN"  # its sort key
NO_VERSION = "-"
MISSING, OUT_OF_RANGE = -2, -1  # bin indexes of a missing and an out-of-range value
# One count item's update must fit DynamoDB's expression limits (Developer Guide, "Service,
# account, and table quotas", Expression parameters: "The maximum length of any expression string
# is 4 KB" and "The maximum number of operators or functions allowed in an UpdateExpression is
# 300"). aws/facts.py spends at most 13 bytes per counted attribute below 1,000 plus its SET
# clause of 8 assignments: 290 attributes keep both, even if each ADD action counted as an
# operator (tests/unit/aws/test_fact_writer.py checks the length against the writer). A model
# whose baseline could need more is refused before it scores (scoring/serving.py).
MAX_COUNT_ATTRIBUTES = 290


def _drift_attributes(bins_per_variable: Iterable[int], strata: int) -> int:
    """n, the three decisions, every bin of every variable with missing and out of range,
    every card-age stratum."""
    return 1 + 3 + sum(bins + 2 for bins in bins_per_variable) + strata


def prediction_attributes(bins_per_variable: Iterable[int], strata: int) -> int:
    """The most attributes one model's prediction count item can hold: the drift counts, and
    for quality (labels/): approvals per quality bin, each decision's sum of scores and the
    declines reviewed instead."""
    return _drift_attributes(bins_per_variable, strata) + QUALITY_BINS + 4


def shadow_attributes(
    bins_per_variable: Sequence[int], strata: int, champion_score_bins: int
) -> int:
    """The most a challenger's shadow count item can hold: its drift counts, the nine decision
    pairs, and the joint score bins (each side's bins, missing and out of range)."""
    joint = (champion_score_bins + 2) * (bins_per_variable[-1] + 2)
    return _drift_attributes(bins_per_variable, strata) + 9 + joint


def hour_of(moment: str) -> str:
    """The UTC hour of an ISO 8601 time with offset: 'YYYY-MM-DDTHH'."""
    parsed = datetime.fromisoformat(moment)
    offset = parsed.utcoffset()
    if offset is None:
        raise ValueError(f"{moment!r} has no UTC offset")
    if offset:
        parsed -= offset
    # formatted by hand: strftime was a third of this function's time, called per prediction
    return f"{parsed.year:04d}-{parsed.month:02d}-{parsed.day:02d}T{parsed.hour:02d}"


def source_of(stream_name: str, shard_id: str) -> str:
    """The writer a count item belongs to: one stream shard (one batch at a time per key order)."""
    return f"{stream_name}/{shard_id}"


def window_key(hour: str) -> str:
    """The WindowIndex partition of the count items of one hour."""
    return f"{COUNT}#{hour}"


@dataclass(frozen=True)
class CountKey:
    kind: str
    model_version: str
    hour: str  # YYYY-MM-DDTHH, UTC
    shard_id: (
        str  # the writer's source: "<stream name>/<shard id>" (shard ids repeat across streams)
    )
    slot: int = 0
    # with ParallelizationFactor > 1 a shard has that many batches in flight at once: each
    # invocation writes the items of one lane, so concurrent batches rarely share an item
    lane: int = 0
    # SHADOW items: the champion the challenger (`model_version`) was scored beside
    paired_with: str = ""

    @property
    def pk(self) -> str:
        slot = f"{self.lane}.{self.slot}" if self.lane else str(self.slot)
        version = (
            f"{self.model_version}@{self.paired_with}" if self.paired_with else self.model_version
        )
        return f"{COUNT}#{self.kind}#{version}#{self.hour}#{self.shard_id}#{slot}"


@dataclass
class Counts:
    """What count items add up: facts, decisions, quarantine reasons and histogram bins."""

    n: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)  # "stage/reason"
    bins: Counter[tuple[int, int]] = field(default_factory=Counter)  # (variable, bin index)
    history: Counter[int] = field(default_factory=Counter)  # predictions per card-age stratum
    # shadow counts only: (champion decision, challenger decision), and (champion score bin,
    # challenger score bin), each over its own model's baseline edges
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    joint: Counter[tuple[int, int]] = field(default_factory=Counter)
    # quality counts only (labels/batch.py): labelled transactions by label and score bin,
    # label and decision, and labels of transactions never scored; a label replaced by
    # another takes its counts back (negative)
    quality: Counter[str] = field(default_factory=Counter)

    def _counters(self) -> tuple[Counter[Any], ...]:
        return (
            self.decisions,
            self.reasons,
            self.bins,
            self.history,
            self.pairs,
            self.joint,
            self.quality,
        )

    def add(self, other: Counts | Tally) -> None:
        if isinstance(other, Tally):
            other = other.counts()
        self.n += other.n
        for mine, theirs in zip(self._counters(), other._counters(), strict=True):
            mine.update(theirs)

    def add_tally(self, tally: Tally) -> None:
        """Add what one fact counts."""
        self.add(tally.counts())

    def attributes(self) -> dict[str, int]:
        """The count item's numeric attributes this adds to (DynamoDB ADD, top-level only)."""
        values = {"n": self.n}
        values |= {f"d_{d}": c for d, c in self.decisions.items()}
        values |= {f"r_{r}": c for r, c in self.reasons.items()}
        values |= {f"b{v}_{_bin_name(b)}": c for (v, b), c in self.bins.items()}
        values |= {f"h{s}": c for s, c in self.history.items()}
        values |= {f"a_{mine}_{theirs}": c for (mine, theirs), c in self.pairs.items()}
        values |= {f"x{_bin_name(i)}_{_bin_name(j)}": c for (i, j), c in self.joint.items()}
        values |= {f"q{name}": c for name, c in self.quality.items()}
        return {name: count for name, count in values.items() if count}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Counts:
        counts = cls(n=int(item.get("n", 0)))
        for name, value in item.items():
            if name.startswith("q") and len(name) > 1:
                counts.quality[name[1:]] += int(value)
            elif name.startswith("d_"):
                counts.decisions[name[2:]] += int(value)
            elif name.startswith("r_"):
                counts.reasons[name[2:]] += int(value)
            elif name.startswith("b") and "_" in name and name[1 : name.index("_")].isdigit():
                variable, _, bin_name = name[1:].partition("_")
                counts.bins[int(variable), _bin_index(bin_name)] += int(value)
            elif name.startswith("h") and name[1:].isdigit():
                counts.history[int(name[1:])] += int(value)
            elif name.startswith("a_") and name.count("_") == 2:
                _, mine, theirs = name.split("_")
                counts.pairs[mine, theirs] += int(value)
            elif name.startswith("x") and name.count("_") == 1:
                mine, theirs = name[1:].split("_")
                counts.joint[_bin_index(mine), _bin_index(theirs)] += int(value)
        return counts

    def histogram(self, variable: int, bins: int) -> dict[str, Any]:
        """Variable `variable`'s histogram over `bins` bins: counts, missing, out of range."""
        return {
            "counts": [self.bins[variable, b] for b in range(bins)],
            "missing": self.bins[variable, MISSING],
            "out_of_range": self.bins[variable, OUT_OF_RANGE]
            + sum(c for (v, b), c in self.bins.items() if v == variable and b >= bins),
        }


def _bin_name(index: int) -> str:
    return {MISSING: "m", OUT_OF_RANGE: "o"}.get(index, str(index))


def _bin_index(name: str) -> int:
    return {"m": MISSING, "o": OUT_OF_RANGE}.get(name) or int(name)


@dataclass(slots=True, frozen=True)
class Tally:
    """What one fact adds to its count item: n 1, and at most one of each count (a prediction's
    decision, its bin per variable and its stratum; a quarantined record's reason; a shadow
    score's decision pair and joint score bins). Facts are counted per count item in one pass
    (`summed`); a Counts per fact cost the score domain a fifth of its CPU at batch 500."""

    decision: str | None = None
    bins: Sequence[int] = ()  # one bin index per variable (features, then score), Python ints
    stratum: int | None = None
    reason: str | None = None  # "stage/reason"
    pair: tuple[str, str] | None = None
    joint: tuple[int, int] | None = None
    # quality attributes (Counts.quality): each name adds 1, each (name, amount) of `sums` its
    # amount; a label replaced takes back its own with weight -1 (the weight moves n and the
    # quality attributes, nothing else)
    quality: tuple[str, ...] = ()
    sums: tuple[tuple[str, int], ...] = ()
    weight: int = 1

    def counts(self) -> Counts:
        return _tallied([self])


# Counts' counters of at most one value per fact, and the Tally field each takes it from
_ONE_PER_FACT = (
    ("decisions", "decision"),
    ("reasons", "reason"),
    ("history", "stratum"),
    ("pairs", "pair"),
    ("joint", "joint"),
)


def _tallied(tallies: Sequence[Tally]) -> Counts:
    """The Counts of `tallies` added up; bins are counted per variable, column by column."""
    counts = Counts(n=sum(t.weight for t in tallies))
    for tally in tallies:
        for name in tally.quality:
            counts.quality[name] += tally.weight
        for name, amount in tally.sums:
            counts.quality[name] += amount * tally.weight
    for total, one in _ONE_PER_FACT:
        values = (getattr(t, one) for t in tallies)
        getattr(counts, total).update(v for v in values if v is not None)
    _count_bins(counts.bins, [t.bins for t in tallies if t.bins])
    return counts


def _count_bins(bins: Counter[tuple[int, int]], rows: list[Sequence[int]]) -> None:
    if len({len(r) for r in rows}) > 1:  # rows of different lengths: one by one
        bins.update(cell for r in rows for cell in enumerate(r))
        return
    for variable, column in enumerate(zip(*rows, strict=True)):
        for index, count in Counter(column).items():
            bins[variable, index] = count


def prediction_counts(
    decision: str,
    row_bins: Sequence[int],
    stratum: int | None = None,
    score: float | None = None,
    reviewed_decline: bool = False,
) -> Tally:
    """What one prediction adds: one fact, its decision, one bin per variable (features, then
    score; Python ints), and its card-age stratum when the model's baseline has strata; with its
    `score`, what quality needs of it: an approval's quality bin (`a<bin>`: approvals are the
    implicit negatives once their labels have matured) and its score in millionths added to
    its model's decision's sum (`p_<decision>`: the expected frauds among them,
    core/quality.py). A decline production reviewed instead (`reviewed_decline`, decision
    review) is counted a review and, for quality, a decline (`s`, `p_decline`)."""
    if score is None:
        return Tally(decision=decision, bins=row_bins, stratum=stratum)
    if reviewed_decline:
        quality: tuple[str, ...] = (REVIEWED_DECLINE,)
    else:
        quality = (f"a{quality_bin(score)}",) if decision == "approve" else ()
    summed = "decline" if reviewed_decline else decision
    return Tally(
        decision=decision,
        bins=row_bins,
        stratum=stratum,
        quality=quality,
        sums=((f"p_{summed}", round(score * SCORE_UNITS)),),
    )


def shadow_counts(
    decision: str,
    row_bins: Sequence[int],
    stratum: int | None,
    champion_decision: str,
    score_bins: tuple[int, int],
) -> Tally:
    """What a challenger's shadow score of one prediction adds: its own prediction counts (bins
    over its own baseline), the pair of decisions, and the pair of score bins (champion's bin
    over the champion's edges, challenger's over its own)."""
    return Tally(
        decision=decision,
        bins=row_bins,
        stratum=stratum,
        pair=(champion_decision, decision),
        joint=score_bins,
    )


def quarantine_counts(stage: str, reason: str) -> Tally:
    return Tally(reason=f"{stage}/{reason}")


def quarantine_hour(item: Mapping[str, Any]) -> str:
    """The hour a quarantine item counts in: the event time its payload carries, else its arrival."""
    moment = _payload_event_time(str(item.get("payload_b64", "")))
    return hour_of(moment or str(item["arrived_at"]))


def _payload_event_time(payload_b64: str) -> str | None:
    try:
        doc = json.loads(base64.b64decode(payload_b64, validate=True))
        moment = datetime.fromisoformat(doc["event_time"]) if isinstance(doc, dict) else None
    except (ValueError, TypeError, KeyError, RecursionError, binascii.Error):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return moment.isoformat()


@dataclass
class Fact:
    """An item to create once, the key of its table, and what it adds to which count item."""

    item: dict[str, Any]
    key: str  # the item's key value (transaction_id, record_id)
    count_key: CountKey
    counts: Tally
    # what else it adds, to other count items (a prediction's shadow score)
    also: tuple[tuple[CountKey, Tally], ...] = ()

    def adds(self) -> Iterator[tuple[CountKey, Tally]]:
        yield self.count_key, self.counts
        yield from self.also

    def rekeyed(self, change: Callable[[CountKey], CountKey]) -> None:
        """Every count key it adds to replaced by `change(key)` (its slot, its lane)."""
        self.count_key = change(self.count_key)
        if self.also:
            self.also = tuple((change(key), counts) for key, counts in self.also)


def summed(facts: Iterable[Fact]) -> dict[CountKey, Counts]:
    """The counts the facts add, per count item."""
    grouped: dict[CountKey, list[Tally]] = {}
    for one in facts:
        group = grouped.get(one.count_key)
        if group is None:
            group = grouped[one.count_key] = []
        group.append(one.counts)
        for key, tally in one.also:
            grouped.setdefault(key, []).append(tally)
    return {key: _tallied(tallies) for key, tallies in grouped.items()}
