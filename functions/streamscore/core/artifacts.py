"""The model artifacts a function ships with (/opt/model): file names, the model card, one loader for card and baseline."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamscore.core.errors import SystemicError

MODEL_FILE = "model.onnx"
CARD_FILE = "model_card.json"
BASELINE_FILE = "baseline.json"
SCORE = "score"  # the baseline's and the histograms' name for the model's output


@dataclass(frozen=True)
class Thresholds:
    """score >= decline declines, else score >= review reviews, else approves."""

    review: float
    decline: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= self.decline <= 1.0:
            raise ValueError(
                f"thresholds must satisfy 0 <= review <= decline <= 1, "
                f"got review={self.review}, decline={self.decline}"
            )


@dataclass(frozen=True)
class DecisionRates:
    """Shares of transactions a model reviews and declines at its card's thresholds (on the
    card's test slice): what a decision-rate guard compares live rates with."""

    review: float
    decline: float

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> DecisionRates | None:
        """From `metrics.test.at_thresholds` (each threshold's flagged share: score at or above
        it); None when the card does not have them."""
        try:
            at = card["metrics"]["test"]["at_thresholds"]
            flagged_review = float(at["review"]["flagged_share"])
            flagged_decline = float(at["decline"]["flagged_share"])
        except (KeyError, TypeError, ValueError):
            return None
        return cls(max(0.0, flagged_review - flagged_decline), flagged_decline)


@dataclass(frozen=True)
class ScoreVectors:
    """The card's test vectors: rows in model order and the score the model must give each."""

    rows: tuple[tuple[float, ...], ...]
    expected: tuple[float, ...]
    tolerance: float

    @classmethod
    def from_dict(cls, vectors: Mapping[str, Any], width: int) -> ScoreVectors:
        rows = tuple(tuple(float(v) for v in row) for row in vectors["rows"])
        expected = tuple(float(v) for v in vectors["expected_scores"])
        tolerance = float(vectors["tolerance"])
        if not rows or len(rows) != len(expected):
            raise ValueError("test_vectors: rows and expected_scores must be as many, and some")
        if any(len(row) != width for row in rows):
            raise ValueError(f"test_vectors: every row must have the card's {width} features")
        if not (math.isfinite(tolerance) and tolerance > 0):
            raise ValueError("test_vectors: tolerance must be a positive number")
        return cls(rows, expected, tolerance)


@dataclass(frozen=True)
class ModelCard:
    """What scoring needs from model_card.json."""

    model_version: str
    feature_schema: str
    feature_names: tuple[str, ...]
    input_name: str | None
    output_name: str | None
    positive_class_index: int
    thresholds: Thresholds
    vectors: ScoreVectors | None = None  # a card written by `make model` has them
    expected_rates: DecisionRates | None = None  # at `thresholds`; `make model` writes them
    descriptions: Mapping[str, str] = field(default_factory=dict)  # a sentence per feature
    # how reasons are computed (scoring/treeshap.py METHODS; None: the card does not say) and
    # the background rows interventional TreeSHAP averages over (model order)
    explanation_method: str | None = None
    background: tuple[tuple[float, ...], ...] = ()
    explanation_problem: str = ""  # a malformed `explanation`: no reasons, the model serves

    @classmethod
    def from_dict(cls, card: Mapping[str, Any]) -> ModelCard:
        thresholds = card["thresholds"]
        names = tuple(str(n) for n in card["feature_names"])
        if not names or len(set(names)) != len(names):
            raise ValueError("feature_names must be a non-empty list of distinct names")
        return cls(
            model_version=str(card["model_version"]),
            feature_schema=str(card["feature_schema"]),
            feature_names=names,
            input_name=card.get("input_name"),
            output_name=card.get("output_name"),
            positive_class_index=int(card.get("positive_class_index", 1)),
            thresholds=Thresholds(float(thresholds["review"]), float(thresholds["decline"])),
            vectors=(
                ScoreVectors.from_dict(card["test_vectors"], len(names))
                if "test_vectors" in card
                else None
            ),
            expected_rates=DecisionRates.from_card(card),
            descriptions={str(k): str(v) for k, v in card.get("feature_descriptions", {}).items()},
            **_explanation(card.get("explanation"), len(names)),
        )


def _explanation(explanation: Any, width: int) -> dict[str, Any]:
    """The card's `explanation`: its method and background rows. A malformed one is kept as
    `explanation_problem`: it costs the model its reasons, not its serving."""
    if explanation is None:
        return {}
    try:
        method = explanation.get("method")
        background = explanation.get("background") or {}
        rows = tuple(tuple(float(v) for v in row) for row in background.get("rows") or [])
    except (AttributeError, TypeError, ValueError) as error:
        return {"explanation_problem": f"malformed ({type(error).__name__}: {error})"}
    if any(len(row) != width for row in rows):
        return {"explanation_problem": f"background rows must have the card's {width} features"}
    return {"explanation_method": None if method is None else str(method), "background": rows}


def history_bounds_s(baseline: Mapping[str, Any]) -> tuple[float, ...] | None:
    """baseline.json's card-age strata: their lower bounds in seconds, ascending from 0; None
    when the baseline has none. ValueError when they are not that."""
    history = baseline.get("history")
    if not history:
        return None
    raw = history.get("strata_s") if isinstance(history, Mapping) else None
    bounds = tuple(float(b) for b in raw) if isinstance(raw, list) else ()
    if not bounds or bounds[0] != 0 or any(b <= a for a, b in itertools.pairwise(bounds)):
        raise ValueError("baseline.json: history.strata_s is not an ascending list from 0")
    return bounds


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except OSError as error:
        raise SystemicError(f"cannot read {path}: {error.strerror or error}") from error
    except json.JSONDecodeError as error:
        raise SystemicError(f"{path} is not JSON: {error}") from error
    if not isinstance(value, dict):
        raise SystemicError(f"{path} is not a JSON object")
    return value


@dataclass(frozen=True)
class Artifacts:
    """model_card.json and baseline.json of one model directory, checked to be of one model version."""

    directory: Path
    card: Mapping[str, Any]
    baseline: Mapping[str, Any]


def read_artifacts(model_dir: str | Path) -> Artifacts:
    """The card and the baseline shipped in `model_dir`.

    SystemicError when a file cannot be read or is not a JSON object; ValueError when
    the card has no version or the baseline is of another model version. Callers say
    what they were loading (the model, the drift baseline) around it.
    """
    directory = Path(model_dir)
    card = read_json(directory / CARD_FILE)
    baseline = read_json(directory / BASELINE_FILE)
    artifacts_version(card, baseline)
    return Artifacts(directory, card, baseline)


def artifacts_version(card: Mapping[str, Any], baseline: Mapping[str, Any]) -> str:
    """The model version a card and its baseline are of; ValueError when the card has none or
    the baseline names another."""
    if "model_version" not in card:
        raise ValueError(f"{CARD_FILE} has no model_version")
    version = str(card["model_version"])
    if str(baseline.get("model_version", version)) != version:
        raise ValueError(
            f"{BASELINE_FILE} is of model {baseline['model_version']}, the card of {version}"
        )
    return version
