"""Scoring domain: the shipped model (ONNX session, card, baseline edges), the feature matrix, decisions, bins.

Pure numpy apart from `load_model`, which reads the artifacts and imports
onnxruntime lazily, so this module is importable where the runtime is absent.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from streamscore.core.artifacts import (
    BASELINE_FILE,
    CARD_FILE,
    MODEL_FILE,
    SCORE,
    ModelCard,
    Thresholds,
    history_bounds_s,
    read_artifacts,
)
from streamscore.core.errors import InvalidRecordError, SystemicError
from streamscore.core.monitoring import (
    MAX_COUNT_ATTRIBUTES,
    MISSING,
    OUT_OF_RANGE,
    prediction_attributes,
    shadow_attributes,
)
from streamscore.scoring.reasons import Reasoner, reasoner_for

if TYPE_CHECKING:
    import onnxruntime


def bin_indexes(values: npt.NDArray[np.float64], edges: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Each value's bin over `edges` as np.histogram draws them (the last bin closed); NaN missing."""
    edges_array = np.asarray(edges, dtype=np.float64)
    index = np.searchsorted(edges_array, values, side="right") - 1
    index[values == edges_array[-1]] = len(edges_array) - 2
    index[(values < edges_array[0]) | (values > edges_array[-1])] = OUT_OF_RANGE
    index[np.isnan(values)] = MISSING
    return index.astype(np.int64)


DECISIONS: tuple[str, ...] = ("approve", "review", "decline")  # index = decision code
_NUMBERS = (float, int)  # bool is excluded: JSON true is not a feature value
_NUMBER_TYPES = frozenset(_NUMBERS)

FloatMatrix = npt.NDArray[np.float64]
FloatVector = npt.NDArray[np.float64]


def resolve_thresholds(
    recommended: Thresholds, review: float | None, decline: float | None
) -> Thresholds:
    """The configured thresholds, each falling back to the model card's; ValueError when inconsistent."""
    return Thresholds(
        recommended.review if review is None else review,
        recommended.decline if decline is None else decline,
    )


class ScoringModel:
    """An ONNX session with its card and baseline: features in model order in, positive-class score out."""

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        card: ModelCard,
        edges: Mapping[str, FloatVector],
        history_bounds: FloatVector | None = None,
    ):
        self.session = session
        self.card = card
        self.edges = dict(edges)  # baseline bin edges per feature and for SCORE
        # lower bounds (seconds) of the baseline's card-age strata; None: it has none
        self.history_bounds = history_bounds
        self.input_name, self.output_name = _io_names(session, card)
        self._check_shape()
        # reason codes (scoring/reasons.py); None with why in `reasons_note` when the model's
        # trees cannot be explained: the model serves all the same, without reasons
        self.reasoner: Reasoner | None = None
        self.reasons_note = "not built"

    def explain_with(self, model_bytes: bytes) -> None:
        """Build the reasoner from the model's own bytes, checked against the scores this
        session gives (the card's test vectors, else its background rows); a model that cannot
        be explained keeps serving, with `reasons_note` saying why."""
        vectors = self.card.vectors
        if vectors is not None:
            rows, scores, tolerance = vectors.rows, vectors.expected, vectors.tolerance
        else:
            rows = self.card.background or ((0.0,) * len(self.feature_names),)
            scores = tuple(self.predict(np.asarray(rows, dtype=np.float32)).tolist())
            tolerance = 1e-5
        try:
            self.reasoner = reasoner_for(model_bytes, self.card, rows, scores, tolerance)
            self.reasons_note = self.reasoner.method
        except Exception as error:  # whatever the trees hold, the model serves without reasons
            self.reasoner = None
            self.reasons_note = f"no reasons: {type(error).__name__}: {error}"

    @property
    def model_version(self) -> str:
        return self.card.model_version

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.card.feature_names

    @property
    def count_bins(self) -> list[int]:
        """Bins per counted variable: every feature in model order, then the score."""
        return [len(self.edges[name]) - 1 for name in (*self.feature_names, SCORE)]

    @property
    def strata(self) -> int:
        return 0 if self.history_bounds is None else len(self.history_bounds)

    def check_countable(self, champion: ScoringModel | None = None) -> None:
        """ValueError when this model's count items (as champion; as a challenger beside
        `champion`, its shadow count items) could hold more attributes than one DynamoDB update
        takes (core.monitoring.MAX_COUNT_ATTRIBUTES): its baseline has too many bins."""
        if champion is None:
            needed = prediction_attributes(self.count_bins, self.strata)
            what = "prediction count items"
        else:
            needed = shadow_attributes(self.count_bins, self.strata, champion.count_bins[-1])
            what = f"shadow count items beside {champion.model_version}"
        if needed > MAX_COUNT_ATTRIBUTES:
            raise ValueError(
                f"its {what} could need {needed} attributes, more than the "
                f"{MAX_COUNT_ATTRIBUTES} one DynamoDB update takes: its baseline has too many bins"
            )

    def predict(self, matrix: npt.NDArray[np.float32]) -> FloatVector:
        """Positive-class probability per row, as float64 (the value stored and compared)."""
        if matrix.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        (output,) = self.session.run([self.output_name], {self.input_name: matrix})
        output = np.asarray(output)
        scores = output[:, self.card.positive_class_index] if output.ndim == 2 else output
        scores = scores.astype(np.float64).reshape(-1)
        if not np.isfinite(scores).all():
            # finite inputs, non-finite output: the model is broken, not the record
            raise SystemicError(
                f"model {self.model_version} gave a non-finite score for "
                f"{int((~np.isfinite(scores)).sum())} of {scores.size} rows"
            )
        return scores

    def _check_shape(self) -> None:
        declared = self.session.get_inputs()
        shape = next(i.shape for i in declared if i.name == self.input_name)
        width = shape[-1] if shape else None
        if isinstance(width, int) and width != len(self.feature_names):
            raise ValueError(
                f"the model takes {width} features, the card names {len(self.feature_names)}"
            )
        probe = self.predict(np.zeros((1, len(self.feature_names)), dtype=np.float32))
        if probe.shape != (1,):
            raise ValueError(f"the model gave {probe.shape} scores for one row")
        vectors = self.card.vectors
        if vectors is not None:
            got = self.predict(np.asarray(vectors.rows, dtype=np.float32))
            worst = float(np.max(np.abs(got - np.asarray(vectors.expected))))
            if not worst <= vectors.tolerance:
                raise ValueError(
                    f"the model does not give its card's test vector scores: off by up to "
                    f"{worst:.3g} on {len(vectors.rows)} rows (tolerance {vectors.tolerance:g})"
                )


def _io_names(session: onnxruntime.InferenceSession, card: ModelCard) -> tuple[str, str]:
    """Input and output names as the session declares them; the card picks when there are several."""
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if len(inputs) == 1:
        input_name = inputs[0]
    elif card.input_name in inputs:
        input_name = str(card.input_name)
    else:
        raise ValueError(f"the model has inputs {inputs}; the card's input_name is not one")
    if card.output_name in outputs:
        output_name = str(card.output_name)
    elif len(outputs) == 1:
        output_name = outputs[0]
    else:
        raise ValueError(f"the model has outputs {outputs}; the card's output_name is not one")
    return input_name, output_name


def load_model(
    model_dir: str | Path, intra_op_threads: int = 1, inter_op_threads: int = 1
) -> ScoringModel:
    """The model shipped in `model_dir`, checked by a probe run and its card's test vectors (when
    the card has them); SystemicError naming path and reason."""
    directory = Path(model_dir)
    path = directory / MODEL_FILE
    try:
        artifacts = read_artifacts(directory)
        card = ModelCard.from_dict(artifacts.card)
        edges = baseline_edges(artifacts.baseline, card.feature_names)
        history = history_bounds(artifacts.baseline)
        import onnxruntime as ort  # noqa: PLC0415 - only ScoreFunction pays for the runtime

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        model_bytes = path.read_bytes()
        session = ort.InferenceSession(
            model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
        model = ScoringModel(session, card, edges, history)
        model.explain_with(model_bytes)
        return model
    except SystemicError:
        raise
    except Exception as error:  # onnxruntime raises its own types; all mean "cannot serve"
        raise SystemicError(
            f"cannot load the model from {directory} ({path.name}, {CARD_FILE}, {BASELINE_FILE}): "
            f"{type(error).__name__}: {error}"
        ) from error


def baseline_edges(
    baseline: Mapping[str, Any], feature_names: Sequence[str]
) -> dict[str, FloatVector]:
    """Bin edges of every feature and of the score, ascending, from baseline.json."""
    features = baseline.get("features", baseline)
    entries = {name: features.get(name) for name in feature_names}
    entries[SCORE] = baseline.get(SCORE, features.get(SCORE))
    edges: dict[str, FloatVector] = {}
    for name, entry in entries.items():
        if not isinstance(entry, Mapping) or "edges" not in entry:
            raise ValueError(f"baseline.json has no bin edges for {name!r}")
        values = np.asarray(entry["edges"], dtype=np.float64)
        if values.ndim != 1 or values.size < 2 or np.any(np.diff(values) < 0):
            raise ValueError(f"baseline.json: the edges of {name!r} are not an ascending list")
        edges[name] = values
    return edges


def history_bounds(baseline: Mapping[str, Any]) -> FloatVector | None:
    """The lower bounds (seconds) of the baseline's card-age strata; None when it has none."""
    bounds = history_bounds_s(baseline)
    return None if bounds is None else np.asarray(bounds, dtype=np.float64)


def history_strata(ages: FloatVector, bounds: FloatVector) -> npt.NDArray[np.int64]:
    """Each card age's stratum (the last bound not above it); an unknown age (NaN) is the oldest.

    A record without an age comes from a preprocess that did not send one: its card was
    there before, so it counts with the cards of the longest history.
    """
    known = np.where(np.isnan(ages), np.inf, ages)
    return (np.searchsorted(bounds, known, side="right") - 1).astype(np.int64)


def feature_matrix(
    features: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> tuple[FloatMatrix, list[InvalidRecordError | None]]:
    """One row per record in model order (NaN where unusable) and each record's problem, if any.

    A value is usable when it is a JSON number that stays finite as float32 (the
    model's input type). Extra features are ignored.
    """
    problems: list[InvalidRecordError | None] = [None] * len(features)
    pick = operator.itemgetter(*names) if len(names) > 1 else lambda d: (d[names[0]],)
    rows: list[Sequence[Any]] = []
    for values in features:
        try:
            rows.append(pick(values))
        except KeyError:
            rows.append([values.get(name) for name in names])
    # one type check for the whole batch; rows are looked at one by one only when it fails
    if not set(map(type, itertools.chain.from_iterable(rows))) <= _NUMBER_TYPES:
        for index, row in enumerate(rows):
            if not set(map(type, row)) <= _NUMBER_TYPES:
                rows[index], problems[index] = _usable(row, names)
    try:
        matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    except OverflowError:  # an integer beyond any float: that record alone is unusable
        for index, row in enumerate(rows):
            rows[index], problem = _floats(row, names)
            problems[index] = problems[index] or problem
        matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    with np.errstate(over="ignore", invalid="ignore"):
        usable = np.isfinite(matrix.astype(np.float32))
    for index in np.flatnonzero(~usable.all(axis=1)).tolist():
        bad = [names[j] for j in np.flatnonzero(~usable[index]).tolist()]
        matrix[index, ~usable[index]] = np.nan
        if problems[index] is None:
            problems[index] = InvalidRecordError(
                "non_finite_feature",
                f"not finite as float32: {', '.join(bad[:10])}",
                [
                    {"field": f"features.{n}", "type": "non_finite", "message": "not finite"}
                    for n in bad
                ],
            )
    return matrix, problems


def _floats(
    row: Sequence[Any], names: Sequence[str]
) -> tuple[list[float], InvalidRecordError | None]:
    """The row as floats, NaN for integers too large for one, and the problem they make."""
    values, too_large = [], []
    for name, value in zip(names, row, strict=True):
        try:
            values.append(float(value))
        except OverflowError:
            values.append(math.nan)
            too_large.append(name)
    if not too_large:
        return values, None
    return values, InvalidRecordError(
        "non_finite_feature",
        f"too large for a float: {', '.join(too_large[:10])}",
        [
            {"field": f"features.{n}", "type": "too_large", "message": "too large"}
            for n in too_large
        ],
    )


def _usable(row: Sequence[Any], names: Sequence[str]) -> tuple[list[Any], InvalidRecordError]:
    missing = [n for n, v in zip(names, row, strict=True) if v is None]
    wrong = [
        n for n, v in zip(names, row, strict=True) if v is not None and type(v) not in _NUMBERS
    ]
    cleaned = [v if type(v) in _NUMBERS else math.nan for v in row]
    if missing:
        error = InvalidRecordError(
            "missing_feature",
            f"missing features: {', '.join(missing[:10])}",
            [{"field": f"features.{n}", "type": "missing", "message": "missing"} for n in missing],
        )
    else:
        error = InvalidRecordError(
            "invalid_feature",
            f"features that are not numbers: {', '.join(wrong[:10])}",
            [
                {"field": f"features.{n}", "type": "not_a_number", "message": "not a number"}
                for n in wrong
            ],
        )
    return cleaned, error


def decide(scores: FloatVector, thresholds: Thresholds) -> npt.NDArray[np.int8]:
    """Decision code per score, an index into DECISIONS."""
    return (scores >= thresholds.review).astype(np.int8) + (scores >= thresholds.decline)


def histogram(values: FloatVector, edges: FloatVector) -> dict[str, Any]:
    """Counts over `edges` (np.histogram's bins, the last one closed), NaN as missing, the rest out of range."""
    present = values[~np.isnan(values)]
    inside = (present >= edges[0]) & (present <= edges[-1])
    counts, _ = np.histogram(present[inside], bins=edges)
    return {
        "counts": counts.tolist(),
        "missing": int(values.size - present.size),
        "out_of_range": int(present.size - int(inside.sum())),
    }


def histograms(
    matrix: FloatMatrix, scores: FloatVector, model: ScoringModel
) -> dict[str, dict[str, Any]]:
    """Histograms of every feature (matrix columns, model order) and of the score (NaN = not scored)."""
    result = {
        name: histogram(matrix[:, j], model.edges[name])
        for j, name in enumerate(model.feature_names)
    }
    result[SCORE] = histogram(scores, model.edges[SCORE])
    return result
