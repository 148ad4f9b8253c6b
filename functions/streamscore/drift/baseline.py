"""The shipped model's drift baseline: reference bins of every feature and of the score (baseline.json)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamscore.core.artifacts import BASELINE_FILE, CARD_FILE, SCORE, read_artifacts
from streamscore.core.errors import SystemicError

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
        version = str(card["model_version"])  # read_artifacts checked the baseline's
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
        artifacts = read_artifacts(directory)
        return DriftBaseline.from_dicts(artifacts.card, artifacts.baseline)
    except (SystemicError, ValueError, KeyError, TypeError) as error:
        raise SystemicError(
            f"cannot load the drift baseline from {directory} ({CARD_FILE}, {BASELINE_FILE}): "
            f"{type(error).__name__}: {error}"
        ) from error
