"""The training run: simulate, replay features, split by time, fit, export, check, describe."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import skl2onnx
import sklearn
from sklearn.ensemble import GradientBoostingClassifier

from simulator import TRAINING_PATTERNS, SimulationConfig, simulate
from streamscore.preprocess.contracts import format_event_time
from streamscore.preprocess.features import (
    CLOCK_FEATURES,
    COUNTER_RESOLUTION,
    DECAYED_COUNTERS,
    FEATURE_DESCRIPTIONS,
    FEATURE_NAMES,
    FEATURE_SCHEMA,
)
from training import calibration, export
from training.artifacts import (
    BASELINE_FILE,
    MODEL_CARD_FILE,
    MODEL_FILE,
    dump_json,
    round_floats,
    write_atomically,
)
from training.baseline import N_BINS, HistoryPool, build_baseline
from training.dataset import Dataset, build_dataset
from training.evaluation import THRESHOLD_RULE, choose_thresholds, evaluate

DAY = 86_400
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """Data size, time split and model settings. Slices are fractions of the simulated period:
    [0, warmup) only builds card state, [warmup, validation) trains, [validation, test)
    validates and sets thresholds and the drift reference, [test, end] is held out."""

    seed: int = 20260302
    n_cards: int = 4000
    days: float = 35.0
    fraud_rate: float = 0.015
    warmup: float = 0.2
    validation: float = 0.72
    test: float = 0.86
    n_estimators: int = 100
    max_depth: int = 3
    learning_rate: float = 0.1
    subsample: float = 0.5
    min_samples_leaf: int = 20
    positive_weight: float = 1.0  # sample weight of fraud rows; 1.0 keeps probabilities calibrated

    def __post_init__(self) -> None:
        if not 0.0 <= self.warmup < self.validation < self.test < 1.0:
            raise ValueError("need 0 <= warmup < validation < test < 1")

    def simulation(self) -> SimulationConfig:
        return SimulationConfig(
            seed=self.seed,
            n_cards=self.n_cards,
            days=self.days,
            fraud_rate=self.fraud_rate,
            scenario="baseline",
        )

    def estimator(self) -> GradientBoostingClassifier:
        return GradientBoostingClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            subsample=self.subsample,
            min_samples_leaf=self.min_samples_leaf,
            random_state=self.seed,
        )


@dataclass(frozen=True, slots=True)
class TrainingResult:
    """The three artifacts as bytes, plus what the summary prints (not part of the artifacts)."""

    model_version: str
    model: GradientBoostingClassifier  # the fitted native model, for checks; not an artifact
    recalibration: calibration.Recalibration  # folded into the ONNX model (IDENTITY: none)
    model_bytes: bytes
    model_card: dict[str, object]
    baseline: dict[str, object]
    model_card_bytes: bytes
    baseline_bytes: bytes
    durations: dict[str, float] = field(default_factory=dict)

    def files(self) -> dict[str, bytes]:
        return {
            MODEL_FILE: self.model_bytes,
            MODEL_CARD_FILE: self.model_card_bytes,
            BASELINE_FILE: self.baseline_bytes,
        }


def _iso(epoch: float) -> str:
    return format_event_time(datetime.fromtimestamp(int(epoch), tz=UTC))


def _slice_summary(data: Dataset, start: float, end: float | None) -> dict[str, object]:
    patterns = {name: int((data.patterns == name).sum()) for name in TRAINING_PATTERNS}
    return {
        "start": _iso(start),
        "end": _iso(end) if end is not None else _iso(data.timestamps.max()),
        "n_transactions": len(data),
        "n_fraud": int(data.is_fraud.sum()),
        "fraud_rate": float(data.is_fraud.mean()) if len(data) else 0.0,
        "fraud_by_pattern": patterns,
    }


def _silent(_: str) -> None:
    return None


def _export(
    model: GradientBoostingClassifier,
    calibrated: calibration.CalibrationDecision,
    test_set: Dataset,
) -> tuple[str, bytes, onnxruntime.InferenceSession, float]:
    """The model as ONNX with its recalibration folded in, versioned, and checked against the
    native model on the test slice: (version, bytes, session, max difference)."""
    proto = export.to_onnx(model, len(FEATURE_NAMES))
    export.fold_recalibration(proto, calibrated.recalibration)
    export.set_covers(proto, model)
    metadata = {
        "feature_schema": FEATURE_SCHEMA,
        "feature_names": ",".join(FEATURE_NAMES),
        "input_name": export.INPUT_NAME,
        "output_name": export.OUTPUT_NAME,
        "positive_class_index": str(export.POSITIVE_CLASS_INDEX),
    }
    model_version, model_bytes = export.stamp_version(proto, metadata)
    session = export.inference_session(model_bytes)
    parity = export.check_parity(
        session, export.Calibrated(model, calibrated.recalibration), test_set.features
    )
    return model_version, model_bytes, session, parity


class _Laps:
    """Seconds per step, in order."""

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}
        self.clock = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.durations[name] = now - self.clock
        self.clock = now


def train(config: TrainingConfig, progress: Progress = _silent) -> TrainingResult:
    """Simulate, train, export and check; nothing is written (see `run`). Raises ParityError
    on mismatch."""
    lap = _Laps()
    simulation = config.simulation()
    progress(f"simulating {config.n_cards} cards over {config.days:g} days (seed {config.seed})")
    batch = simulate(simulation)
    lap("simulate")
    progress(f"replaying features of {len(batch)} transactions")
    data = build_dataset(batch)
    lap("features")

    start = simulation.start_epoch
    bounds = [
        start + round(f * config.days * DAY)
        for f in (config.warmup, config.validation, config.test)
    ]
    source = {
        "simulator": {
            "seed": simulation.seed,
            "scenario": simulation.scenario,
            "n_cards": simulation.n_cards,
            "days": simulation.days,
            "start": simulation.start.isoformat(),
            "fraud_rate": simulation.fraud_rate,
        }
    }
    return fit(data, bounds, config, source, progress, lap)


def fit(
    data: Dataset,
    bounds: Sequence[float],
    config: TrainingConfig,
    source: Mapping[str, object],
    progress: Progress = _silent,
    lap: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Train on `data` split by event time at `bounds` (warm-up end, validation start, test
    start), export, check and describe; `source` says where the data came from (the card's
    training_data). Used by `train` (the simulator) and by retraining (the feature log)."""
    lap = lap or _Laps()
    ts = data.timestamps
    warmup_set = data.subset(ts < bounds[0])
    train_set = data.subset((ts >= bounds[0]) & (ts < bounds[1]))
    validation_set = data.subset((ts >= bounds[1]) & (ts < bounds[2]))
    test_set = data.subset(ts >= bounds[2])
    if min(int(s.is_fraud.sum()) for s in (train_set, validation_set, test_set)) == 0:
        raise ValueError("a time slice has no fraud; simulate more cards or days")

    progress(
        f"fitting {config.n_estimators} trees on {len(train_set)} rows "
        f"({int(train_set.is_fraud.sum())} fraud); validation {len(validation_set)}, "
        f"test {len(test_set)}"
    )
    model = config.estimator()
    train_x = train_set.features.astype(np.float32)
    weights = train_set.row_weights() * np.where(
        train_set.is_fraud == 1, config.positive_weight, 1.0
    )
    model.fit(train_x, train_set.is_fraud, sample_weight=weights)
    lap("fit")

    progress("measuring calibration")

    def labelled_log_odds(subset: Dataset) -> tuple[np.ndarray, np.ndarray]:
        return subset.is_fraud, model.decision_function(subset.features.astype(np.float32))

    calibrated = calibration.decide(labelled_log_odds(validation_set), labelled_log_odds(test_set))
    lap("calibrate")

    progress("exporting to ONNX and checking parity")
    model_version, model_bytes, session, parity = _export(model, calibrated, test_set)

    def scores(subset: Dataset) -> np.ndarray:
        probabilities = export.onnx_probabilities(session, subset.features)
        return probabilities[:, export.POSITIVE_CLASS_INDEX].astype(np.float64)

    validation_scores = scores(validation_set)
    test_scores = scores(test_set)
    lap("export")

    # weighted when the rows are (a retrain's reviewed declines stand for all declines): the
    # decline threshold's precision and each share flagged are then the population's
    thresholds = choose_thresholds(
        validation_set.is_fraud, validation_scores, validation_set.weights
    )
    metrics = {
        "validation": evaluate(
            validation_set.is_fraud,
            validation_scores,
            validation_set.patterns,
            thresholds,
            validation_set.weights,
        ),
        "test": evaluate(
            test_set.is_fraud, test_scores, test_set.patterns, thresholds, test_set.weights
        ),
    }
    reference = {
        "slice": "validation",
        "start": _iso(bounds[1]),
        "end": _iso(bounds[2]),
        "description": (
            "Features and ONNX scores of the validation slice: later than the training data "
            "and unseen by the model, so score proportions are what serving sees. "
            f"Quantile bins ({N_BINS}, de-duplicated); binary features use [0, 0.5, 1]. "
            "out_of_range_share is measured on the later test slice "
            f"({_iso(bounds[2])} onwards), 0 on the reference itself by construction. "
            f"Decayed counters' bins start with [0, {COUNTER_RESOLUTION:g}). history: the same "
            "bins among rows of each card-age stratum (time since the replay first saw the "
            "card), from the warm-up slice (state built from nothing, as on a fresh stack) and "
            "the validation slice; none of them trained the model."
        ),
    }
    pool = HistoryPool(
        values=np.column_stack(
            [
                np.vstack([warmup_set.features, validation_set.features]),
                np.concatenate([scores(warmup_set), validation_scores]),
            ]
        ),
        card_ages=np.concatenate([warmup_set.card_ages, validation_set.card_ages]),
    )
    baseline = {
        "model_version": model_version,
        "feature_schema": FEATURE_SCHEMA,
        "sample_size": len(validation_set),
        "reference": reference,
        "out_of_range_sample_size": len(test_set),
        **build_baseline(
            FEATURE_NAMES,
            validation_set.features,
            validation_scores,
            test_set.features,
            test_scores,
            floors=dict.fromkeys(DECAYED_COUNTERS, COUNTER_RESOLUTION),
            clock=sorted(CLOCK_FEATURES),
            reference_ages=validation_set.card_ages,
            pool=pool,
        ),
    }
    model_onnx = onnx.load_model_from_string(model_bytes)
    card: dict[str, object] = {
        "model_version": model_version,
        "model_name": export.MODEL_NAME,
        "feature_schema": FEATURE_SCHEMA,
        "feature_names": list(FEATURE_NAMES),
        "input_name": export.INPUT_NAME,
        "output_name": export.OUTPUT_NAME,
        "positive_class_index": export.POSITIVE_CLASS_INDEX,
        "onnx": {
            "opset": {domain.domain or "": domain.version for domain in model_onnx.opset_import},
            "target_opset": export.TARGET_OPSET,
            "ir_version": model_onnx.ir_version,
            "input_shape": [None, len(FEATURE_NAMES)],
            "input_type": "float32",
        },
        "framework": {
            "estimator": "sklearn.ensemble.GradientBoostingClassifier",
            "params": {
                key: value
                for key, value in sorted(model.get_params().items())
                if isinstance(value, int | float | str | bool) or value is None
            },
            "positive_weight": config.positive_weight,
            "versions": {
                "python": ".".join(platform.python_version_tuple()[:2]),
                "numpy": np.__version__,
                "scikit-learn": sklearn.__version__,
                "skl2onnx": skl2onnx.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
            },
        },
        "training_data": round_floats(
            {
                **source,
                "n_transactions": len(data),
                "fraud_rate": float(data.is_fraud.mean()),
                "time_span": {"start": _iso(ts.min()), "end": _iso(ts.max())},
                "slices": {
                    "warmup": {
                        "start": _iso(ts.min()),
                        "end": _iso(bounds[0]),
                        "purpose": "builds card state only; not trained on",
                    },
                    "train": _slice_summary(train_set, bounds[0], bounds[1]),
                    "validation": _slice_summary(validation_set, bounds[1], bounds[2]),
                    "test": _slice_summary(test_set, bounds[2], None),
                },
            }
        ),
        "class_imbalance": (
            "No resampling; fraud rows weighted by positive_weight. Evaluation uses PR-AUC and "
            "recall at a fixed false-positive rate, and the thresholds are set on validation."
        ),
        "metrics": round_floats(metrics),
        "calibration": round_floats(
            {
                **calibrated.record,
                "served": {
                    "description": "the exported model's scores, after any correction",
                    "validation": calibration.measure(validation_set.is_fraud, validation_scores),
                    "test": calibration.measure(test_set.is_fraud, test_scores),
                },
            }
        ),
        "thresholds": thresholds,
        "threshold_rule": THRESHOLD_RULE,
        "feature_importances": round_floats(
            dict(zip(FEATURE_NAMES, model.feature_importances_.tolist(), strict=True))
        ),
        "parity": {
            "tolerance": export.PARITY_TOLERANCE,
            "max_abs_difference": float(f"{parity:.2g}"),
            "rows": len(test_set),
            "slice": "test",
        },
        "feature_descriptions": {name: FEATURE_DESCRIPTIONS[name] for name in FEATURE_NAMES},
        "test_vectors": export.test_vectors(test_set.features, test_scores),
        "explanation": export.explanation(train_x, config.seed),
    }
    lap("describe")
    return TrainingResult(
        model_version=model_version,
        model=model,
        recalibration=calibrated.recalibration,
        model_bytes=model_bytes,
        model_card=card,
        baseline=baseline,
        model_card_bytes=dump_json(card),
        baseline_bytes=dump_json(baseline),
        durations=lap.durations if isinstance(lap, _Laps) else {},
    )


def write_artifacts(result: TrainingResult, out_dir: Path) -> dict[str, Path]:
    """Write the three artifacts into `out_dir`; returns their paths."""
    paths = {}
    for name, content in result.files().items():
        paths[name] = out_dir / name
        write_atomically(paths[name], content)
    return paths


def run(config: TrainingConfig, out_dir: Path, progress: Progress = _silent) -> TrainingResult:
    """Train and, only if every check passed, write the artifacts."""
    result = train(config, progress)
    write_artifacts(result, out_dir)
    return result
