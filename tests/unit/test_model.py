"""The shipped model artifacts, and the training run's parity, refusal and reproducibility."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx.helper import set_model_props
from onnxruntime import InferenceSession
from sklearn.metrics import average_precision_score, roc_auc_score

from simulator import SimulationConfig, simulate
from streamscore.preprocess.features import FEATURE_NAMES, FEATURE_SCHEMA
from streamscore.scoring.model import load_model
from training import (
    Dataset,
    ParityError,
    TrainingConfig,
    TrainingResult,
    build_dataset,
    export,
    run,
    train,
)
from training.baseline import histogram

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "models" / "artifacts"
# Small enough for a unit test (about a second), large enough for every slice to hold fraud.
SMALL = TrainingConfig(seed=11, n_cards=300, days=16.0, n_estimators=20)
# The committed model scored ROC-AUC 0.9949-0.9969 and PR-AUC 0.921-0.943 on the later half of
# eight fresh simulations (seeds 1-8, 1500 cards, 21 days); the floors leave room for seed noise
# and still catch a broken model (wrong feature order, wrong output column, stale features).
ROC_AUC_FLOOR = 0.98
PR_AUC_FLOOR = 0.8


@pytest.fixture(scope="module")
def card() -> dict[str, object]:
    return json.loads((ARTIFACTS / "model_card.json").read_text())


@pytest.fixture(scope="module")
def baseline() -> dict[str, object]:
    return json.loads((ARTIFACTS / "baseline.json").read_text())


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return (ARTIFACTS / "model.onnx").read_bytes()


@pytest.fixture(scope="module")
def fresh() -> Dataset:
    """A later slice of a simulation the model never saw (other seed), after card warm-up."""
    config = SimulationConfig(seed=4, n_cards=1500, days=21.0)
    data = build_dataset(simulate(config))
    return data.subset(data.timestamps >= config.start_epoch + 10 * 86_400)


@pytest.fixture(scope="module")
def small_result() -> TrainingResult:
    return train(SMALL)


def _scores(model: bytes, features: np.ndarray) -> np.ndarray:
    session = export.inference_session(model)
    return export.onnx_probabilities(session, features)[:, export.POSITIVE_CLASS_INDEX]


# ---- the committed artifacts -------------------------------------------------------------


def test_committed_model_loads_with_named_input_and_dynamic_batch(
    model_bytes: bytes, card: dict[str, object], fresh: Dataset
) -> None:
    session = export.inference_session(model_bytes)
    (model_input,) = session.get_inputs()
    assert model_input.name == card["input_name"] == "features"
    assert model_input.type == "tensor(float)"
    assert model_input.shape[1] == len(FEATURE_NAMES)
    assert not isinstance(model_input.shape[0], int)  # dynamic batch axis
    outputs = {output.name: output for output in session.get_outputs()}
    assert card["output_name"] in outputs
    assert card["positive_class_index"] == 1
    for size in (1, 1000):
        batch = fresh.features[:size].astype(np.float32)
        (probabilities,) = session.run([str(card["output_name"])], {"features": batch})
        assert probabilities.shape == (size, 2)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_card_describes_every_feature_and_the_model_gives_its_test_vectors() -> None:
    # given
    card = json.loads((ARTIFACTS / "model_card.json").read_text())

    # when: loading checks the test vectors (scoring.model.load_model)
    model = load_model(ARTIFACTS)

    # then
    assert list(card["feature_descriptions"]) == sorted(FEATURE_NAMES)
    assert all(len(text.split()) >= 4 for text in card["feature_descriptions"].values())
    assert model.card.vectors is not None and len(model.card.vectors.rows) == 200
    expected = np.asarray(model.card.vectors.expected)
    assert expected.min() < 0.01 and expected.max() > 0.99  # the score's whole range


def test_card_names_the_features_and_schema(card: dict[str, object]) -> None:
    assert card["feature_names"] == list(FEATURE_NAMES)
    assert card["feature_schema"] == FEATURE_SCHEMA


def test_model_version_is_in_the_onnx_metadata_and_derived_from_its_content(
    model_bytes: bytes, card: dict[str, object], baseline: dict[str, object]
) -> None:
    proto = onnx.load_model_from_string(model_bytes)
    metadata = {prop.key: prop.value for prop in proto.metadata_props}
    assert metadata["model_version"] == card["model_version"] == baseline["model_version"]
    assert metadata["feature_schema"] == FEATURE_SCHEMA
    assert metadata["feature_names"].split(",") == list(FEATURE_NAMES)
    # the version hashes the model as it was before the version itself was added
    without = {key: value for key, value in metadata.items() if key != "model_version"}
    del proto.metadata_props[:]
    set_model_props(proto, without)
    digest = hashlib.sha256(proto.SerializeToString()).hexdigest()[:10]
    assert card["model_version"] == f"cardfraud-gbdt-{digest}"


def test_onnx_opsets_are_loadable_and_stored_in_a_stable_order(model_bytes: bytes) -> None:
    proto = onnx.load_model_from_string(model_bytes)
    onnx.checker.check_model(proto)
    domains = [opset.domain for opset in proto.opset_import]
    assert domains == sorted(domains)
    versions = {opset.domain: opset.version for opset in proto.opset_import}
    assert versions[""] <= export.TARGET_OPSET[""]
    assert versions["ai.onnx.ml"] <= export.TARGET_OPSET["ai.onnx.ml"]


def test_card_thresholds_and_metrics_are_consistent(card: dict[str, object]) -> None:
    thresholds = card["thresholds"]
    assert isinstance(thresholds, dict)
    assert 0 < thresholds["review"] <= thresholds["decline"] < 1
    metrics = card["metrics"]
    assert isinstance(metrics, dict)
    test = metrics["test"]
    assert test["roc_auc"] > ROC_AUC_FLOOR
    assert test["at_thresholds"]["review"]["threshold"] == thresholds["review"]
    assert (
        test["at_thresholds"]["decline"]["precision"]
        >= test["at_thresholds"]["review"]["precision"]
    )
    data = card["training_data"]
    assert isinstance(data, dict)
    slices = data["slices"]
    assert slices["train"]["end"] == slices["validation"]["start"]
    assert slices["validation"]["end"] == slices["test"]["start"]
    for name in ("train", "validation", "test"):
        assert set(slices[name]["fraud_by_pattern"]) == {
            "card_testing",
            "account_takeover",
            "high_risk_mcc",
        }
        assert all(count > 0 for count in slices[name]["fraud_by_pattern"].values())


def test_baseline_covers_every_feature_and_the_score(
    baseline: dict[str, object], card: dict[str, object]
) -> None:
    features = baseline["features"]
    assert isinstance(features, dict)
    assert set(features) == set(FEATURE_NAMES)
    assert baseline["feature_schema"] == FEATURE_SCHEMA
    assert isinstance(baseline["sample_size"], int) and baseline["sample_size"] > 1000
    for name, spec in [*features.items(), ("score", baseline["score"])]:
        edges, proportions = spec["edges"], spec["proportions"]
        assert len(proportions) == len(edges) - 1 >= 1, name
        assert all(a < b for a, b in itertools.pairwise(edges)), name
        assert sum(proportions) == pytest.approx(1.0, abs=1e-9), name
        assert all(p >= 0 for p in proportions), name
        assert spec["missing_share"] == 0.0, name
        assert 0.0 <= spec["out_of_range_share"] <= 1.0, name
        if spec["kind"] == "binary":
            assert edges == [0.0, 0.5, 1.0], name
    assert features["is_night"]["kind"] == "binary"
    assert features["amount_log"]["kind"] == "quantile"
    assert len(features["amount_log"]["edges"]) == 11
    score = baseline["score"]
    assert isinstance(score, dict)
    assert score["edges"][-1] <= 1.0


def test_baseline_proportions_match_numpy_histogram_of_the_reference() -> None:
    # given a reference with a point mass, and a later slice partly outside it
    reference = np.concatenate([np.zeros(500), np.linspace(1.0, 2.0, 500)])
    later = np.array([-1.0, 0.0, 1.5, 2.0, 3.0])
    # when
    spec = histogram(reference, later)
    # then
    edges = spec["edges"]
    assert isinstance(edges, list)
    assert edges[0] == 0.0 and edges[-1] == 2.0
    expected = np.histogram(reference, bins=np.array(edges))[0] / reference.size
    assert spec["proportions"] == pytest.approx(expected.tolist())
    assert spec["out_of_range_share"] == pytest.approx(2 / 5)
    assert histogram(np.ones(10), np.ones(3))["edges"] == [0.0, 0.5, 1.0]


def test_committed_model_ranks_a_fresh_later_slice_well(model_bytes: bytes, fresh: Dataset) -> None:
    scores = _scores(model_bytes, fresh.features)
    assert fresh.is_fraud.sum() > 100
    assert roc_auc_score(fresh.is_fraud, scores) > ROC_AUC_FLOOR
    assert average_precision_score(fresh.is_fraud, scores) > PR_AUC_FLOOR


# ---- training: parity, refusal, reproducibility --------------------------------------------


def test_small_training_onnx_matches_native_model(small_result: TrainingResult) -> None:
    data = build_dataset(simulate(SMALL.simulation()))
    features = data.features.astype(np.float32)
    native = export.Calibrated(small_result.model, small_result.recalibration)
    native = native.predict_proba(features)[:, 1]
    exported = _scores(small_result.model_bytes, features)
    assert np.max(np.abs(exported - native)) <= export.PARITY_TOLERANCE
    parity = small_result.model_card["parity"]
    assert isinstance(parity, dict)
    assert parity["max_abs_difference"] <= export.PARITY_TOLERANCE


def test_parity_failure_refuses_to_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an ONNX runtime path that drifts from the native model by 1e-3
    original = export.onnx_probabilities

    def perturbed(session: InferenceSession, features: np.ndarray) -> np.ndarray:
        return original(session, features) + np.float32(1e-3)

    monkeypatch.setattr(export, "onnx_probabilities", perturbed)
    # when / then
    with pytest.raises(ParityError, match="refusing to write"):
        run(SMALL, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_small_training_is_byte_reproducible(small_result: TrainingResult, tmp_path: Path) -> None:
    again = run(SMALL, tmp_path)
    assert again.files() == small_result.files()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == small_result.files()
    other = train(TrainingConfig(seed=SMALL.seed + 1, n_cards=300, days=16.0, n_estimators=20))
    assert other.model_bytes != small_result.model_bytes


@pytest.mark.slow
def test_cli_in_another_process_reproduces_the_bytes(
    small_result: TrainingResult, tmp_path: Path
) -> None:
    # another interpreter with another string-hash seed: set iteration order must not leak in
    env = {
        **os.environ,
        "PYTHONHASHSEED": "12345",
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("functions", "local", "models")),
    }
    command = [
        sys.executable, "-m", "training", "--quiet", "--out", str(tmp_path),
        "--seed", str(SMALL.seed), "--cards", str(SMALL.n_cards), "--days", str(SMALL.days),
        "--trees", str(SMALL.n_estimators),
    ]  # fmt: skip
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert small_result.model_version in completed.stdout
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == small_result.files()
