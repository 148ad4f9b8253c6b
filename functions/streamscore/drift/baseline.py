"""The shipped model's drift baseline: reference bins of every feature and of the score (baseline.json)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamscore.core.artifacts import (
    BASELINE_FILE,
    CARD_FILE,
    SCORE,
    history_bounds_s,
    read_artifacts,
)
from streamscore.core.errors import SystemicError

# ---------------------------------------------------------------- the baseline


@dataclass(frozen=True)
class VariableBaseline:
    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    missing_share: float
    out_of_range_share: float
    # the proportions among the reference's rows of each card-age stratum (history.strata_s)
    by_history: tuple[tuple[float, ...], ...] | None = None
    follows_clock: bool = False  # its distribution follows the time of day

    def expected(self, weights: Sequence[float] | None) -> tuple[float, ...]:
        """In-range proportions a window should show: the strata's, mixed by the window's own
        shares of each stratum (`weights`); the flat reference without strata or weights."""
        if weights is None or self.by_history is None:
            return self.proportions
        mixed = [0.0] * len(self.proportions)
        for weight, proportions in zip(weights, self.by_history, strict=True):
            for b, share in enumerate(proportions):
                mixed[b] += weight * share
        total = sum(mixed)
        return tuple(p / total for p in mixed) if total > 0 else self.proportions


@dataclass(frozen=True)
class HistoryStrata:
    """Card-age strata: the reference conditioned on how long the pipeline has known the card.

    A card's features depend on its history: a card first seen an hour ago has no 24-hour
    counts yet, whether it is new or the stack is. Each stratum has its own reference, and a
    window is compared with the mixture of them in the window's own proportions, so a fresh
    stack or a new population of cards is not drift, while a shift within the strata is.
    """

    bounds_s: tuple[float, ...]  # lower bounds in seconds, from 0
    labels: tuple[str, ...]
    reference_shares: tuple[float, ...]  # the strata's shares in the flat reference
    settled_s: float  # cards known at least this long count as settled

    def settled_index(self) -> int:
        return max(i for i, bound in enumerate(self.bounds_s) if bound <= self.settled_s)

    @classmethod
    def from_baseline(cls, baseline: Mapping[str, Any]) -> HistoryStrata | None:
        bounds = history_bounds_s(baseline)
        if bounds is None:
            return None
        entry = baseline["history"]
        labels = tuple(str(x) for x in entry.get("labels", [f"{b:g}s" for b in bounds]))
        shares = tuple(float(x) for x in entry.get("reference_shares", [0.0] * len(bounds)))
        if len(labels) != len(bounds) or len(shares) != len(bounds):
            raise ValueError("baseline.json: history labels and shares must match strata_s")
        return cls(bounds, labels, shares, float(entry.get("settled_s", bounds[-1])))


@dataclass(frozen=True)
class DriftBaseline:
    """baseline.json of the shipped model: reference bins of every feature (model order) and the score."""

    model_version: str
    feature_schema: str
    sample_size: int
    features: tuple[str, ...]
    variables: Mapping[str, VariableBaseline]
    history: HistoryStrata | None = None

    @classmethod
    def from_dicts(cls, card: Mapping[str, Any], baseline: Mapping[str, Any]) -> DriftBaseline:
        version = str(card["model_version"])  # read_artifacts checked the baseline's
        features = tuple(str(name) for name in card["feature_names"])
        entries = dict(baseline.get("features", {}))
        entries[SCORE] = baseline.get(SCORE)
        history = HistoryStrata.from_baseline(baseline)
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
            by_history = None
            if history is not None:
                by_history = tuple(tuple(float(p) for p in row) for row in entry["by_history"])
                if len(by_history) != len(history.bounds_s) or any(
                    len(row) != len(proportions) for row in by_history
                ):
                    raise ValueError(
                        f"baseline.json: {name!r} needs one row of {len(proportions)} "
                        f"proportions per history stratum"
                    )
            variables[name] = VariableBaseline(
                edges,
                proportions,
                float(entry.get("missing_share", 0.0)),
                float(entry.get("out_of_range_share", 0.0)),
                by_history,
                bool(entry.get("follows_clock", False)),
            )
        return cls(
            model_version=version,
            feature_schema=str(card.get("feature_schema", baseline.get("feature_schema", ""))),
            sample_size=int(baseline.get("sample_size", 0)),
            features=features,
            variables=variables,
            history=history,
        )


def load_baseline(model_dir: str | Path) -> DriftBaseline:
    """The baseline shipped in `model_dir` with its model card; SystemicError naming the file and reason."""
    directory = Path(model_dir)
    try:
        artifacts = read_artifacts(directory)
        return DriftBaseline.from_dicts(artifacts.card, artifacts.baseline)
    except (SystemicError, ValueError, KeyError, TypeError) as error:
        raise SystemicError(
            f"cannot load the drift baseline from {directory} ({CARD_FILE}, {BASELINE_FILE}): "
            f"{type(error).__name__}: {error}"
        ) from error
