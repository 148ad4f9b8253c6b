"""Training of the card-fraud model: simulated data through the streaming features, ONNX export.

Run it with `make model` or `python -m training --seed N --out DIR [--cards N --days D --trees N]`
(with functions/, local/ and models/ on PYTHONPATH).

Public API::

    TrainingConfig(seed=20260302, n_cards=4000, days=35.0, fraud_rate=0.015, warmup=0.2,
                   validation=0.72, test=0.86, n_estimators=100, max_depth=3,
                   learning_rate=0.1, subsample=0.5, min_samples_leaf=20, positive_weight=1.0)
    train(config, progress=...) -> TrainingResult     # everything in memory, nothing written
    run(config, out_dir, progress=...) -> TrainingResult   # train, then write the artifacts
    write_artifacts(result, out_dir) -> dict[str, Path]
    TrainingResult.model_version / .model_bytes / .model_card / .baseline / .files()
    build_dataset(batch: SimulatedBatch) -> Dataset    # contract parse + replay_features
    ParityError                                        # ONNX != scikit-learn; nothing written

Artifacts (models/artifacts/): model.onnx (input "features" float32 [None, n_features], output
"probabilities" [None, 2], P(fraud) in column 1; metadata_props carry model_version,
feature_schema, feature_names), model_card.json and baseline.json, byte-identical for a seed.
"""

from training.dataset import Dataset, build_dataset
from training.export import ParityError
from training.pipeline import TrainingConfig, TrainingResult, run, train, write_artifacts

__all__ = [
    "Dataset",
    "ParityError",
    "TrainingConfig",
    "TrainingResult",
    "build_dataset",
    "run",
    "train",
    "write_artifacts",
]
