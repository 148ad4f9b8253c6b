"""Exact TreeSHAP from the ONNX trees, validated against the shap package.

* against shap run on the trees read back from the ONNX graph (a custom tree model: the
  same float32 thresholds, leaf values and covers): at most 1e-6 per feature, in the
  feature_perturbation the model uses (and the other one);
* against shap on the native model (scikit-learn through the project's own training code,
  and LightGBM through onnxmltools): at most 1e-5 on rows whose margins agree within the ONNX
  parity tolerance, the share of rows left out asserted small and printed;
* additivity (contributions + expected value = the margin ONNX Runtime's score comes from)
  on every row of every model here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from streamscore.core.artifacts import ModelCard
from streamscore.scoring.onnx_trees import read_trees
from streamscore.scoring.reasons import method_for, reasoner_for
from streamscore.scoring.treeshap import (
    INTERVENTIONAL,
    PATH_DEPENDENT,
    NoCoverError,
    TreeExplainer,
    has_cover,
)
from tests.support.tree_models import (
    lightgbm_onnx,
    shap_model,
    without_covers,
)
from training import TrainingConfig, export, train

shap = pytest.importorskip("shap")

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "models" / "artifacts"
EXACT = 1e-6  # against shap on the same trees
NATIVE = 1e-5  # against shap on the native model, rows whose margins agree
MARGIN_AGREEMENT = export.PARITY_TOLERANCE
MAX_EXCLUDED_SHARE = 0.05


def _card() -> dict:
    return json.loads((ARTIFACTS / "model_card.json").read_text())


@pytest.fixture(scope="module")
def project() -> tuple[bytes, dict, np.ndarray]:
    """The committed model, its card, and rows: the card's test vectors and background."""
    card = _card()
    rows = np.vstack(
        [card["test_vectors"]["rows"], card["explanation"]["background"]["rows"]]
    ).astype(np.float32)
    return (ARTIFACTS / "model.onnx").read_bytes(), card, rows


def _runtime_scores(model_bytes: bytes, rows: np.ndarray) -> np.ndarray:
    """ONNX Runtime's positive-class probabilities (float32: compared on the probability scale,
    as the parity check does; a logit of them loses precision near 0)."""
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {session.get_inputs()[0].name: rows})
    return np.asarray(probabilities, dtype=np.float64)[:, -1]


def _sigmoid(margin: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-margin))


def _shap_values(explainer: object, rows: np.ndarray) -> np.ndarray:
    values = np.asarray(explainer.shap_values(rows.astype(np.float64)))
    return values[1] if values.ndim == 3 and values.shape[0] == 2 else values


def test_the_committed_model_carries_covers_and_its_card_names_path_dependent(project) -> None:
    model_bytes, card, _ = project
    trees = read_trees(model_bytes)
    assert has_cover(trees)
    assert card["explanation"]["method"] == PATH_DEPENDENT
    assert method_for(trees, ModelCard.from_dict(card)) == PATH_DEPENDENT
    # the covers are training counts: every tree's root saw the same subsample size
    roots = trees.cover[trees.roots]
    assert np.all(roots == roots[0]) and roots[0] > 1000


def test_the_reader_gives_the_runtime_scores_of_the_committed_model(project) -> None:
    model_bytes, _, rows = project
    trees = read_trees(model_bytes)
    scores = export.onnx_probabilities(export.inference_session(model_bytes), rows)[:, 1]
    assert np.max(np.abs(trees.score(trees.margin(rows)) - scores)) <= export.PARITY_TOLERANCE


@pytest.mark.parametrize("method", [PATH_DEPENDENT, INTERVENTIONAL])
def test_the_committed_model_against_shap_on_the_same_trees(project, method: str) -> None:
    model_bytes, card, rows = project
    trees = read_trees(model_bytes)
    background = np.asarray(card["explanation"]["background"]["rows"], dtype=np.float32)
    ours = TreeExplainer(trees, rows.shape[1], method, background)
    mine = ours.shap_values(rows)
    data = None
    if method == INTERVENTIONAL:
        data = shap.maskers.Independent(background.astype(np.float64), max_samples=len(background))
    theirs = shap.TreeExplainer(
        shap_model(trees), data=data, feature_perturbation=method, model_output="raw"
    )
    assert np.max(np.abs(mine - _shap_values(theirs, rows))) <= EXACT
    assert abs(ours.expected_value - float(np.ravel(theirs.expected_value)[0])) <= EXACT
    # additivity: to the margin the trees give, and to the runtime's score through the link
    sums = mine.sum(axis=1) + ours.expected_value
    assert np.max(np.abs(sums - trees.margin(rows))) <= EXACT
    assert np.max(np.abs(_sigmoid(sums) - _runtime_scores(model_bytes, rows))) <= MARGIN_AGREEMENT


@pytest.fixture(scope="module")
def small_training():
    """The project's own training code, small: the native scikit-learn model beside its ONNX."""
    return train(TrainingConfig(seed=5, n_cards=300, days=16.0, n_estimators=30))


def test_the_project_training_against_shap_on_the_native_model(small_training, capsys) -> None:
    result = small_training
    rows = np.asarray(result.model_card["test_vectors"]["rows"], dtype=np.float32)
    trees = read_trees(result.model_bytes)
    ours = TreeExplainer(trees, rows.shape[1])
    theirs = shap.TreeExplainer(result.model, feature_perturbation=PATH_DEPENDENT)
    native_margin = result.model.decision_function(rows)
    agree = np.abs(trees.margin(rows) - native_margin) <= MARGIN_AGREEMENT
    excluded = 1 - agree.mean()
    with capsys.disabled():
        print(f"\nscikit-learn: {excluded:.1%} of {len(rows)} rows excluded (margins differ)")
    assert excluded <= MAX_EXCLUDED_SHARE
    mine = ours.shap_values(rows)
    assert np.max(np.abs(mine[agree] - _shap_values(theirs, rows)[agree])) <= NATIVE
    assert np.max(np.abs(mine.sum(axis=1) + ours.expected_value - trees.margin(rows))) <= EXACT


@pytest.fixture(scope="module")
def lightgbm():
    return lightgbm_onnx()


def test_a_lightgbm_model_against_shap_on_its_onnx_trees_and_natively(lightgbm, capsys) -> None:
    model, model_bytes, rows = lightgbm
    trees = read_trees(model_bytes)
    assert has_cover(trees)
    sample = rows[:400]
    ours = TreeExplainer(trees, rows.shape[1])
    mine = ours.shap_values(sample)
    same_trees = shap.TreeExplainer(shap_model(trees), feature_perturbation=PATH_DEPENDENT)
    assert np.max(np.abs(mine - _shap_values(same_trees, sample))) <= EXACT
    sums = mine.sum(axis=1) + ours.expected_value
    assert np.max(np.abs(sums - trees.margin(sample))) <= EXACT
    assert np.max(np.abs(_sigmoid(sums) - _runtime_scores(model_bytes, sample))) <= MARGIN_AGREEMENT
    # natively: LightGBM keeps its thresholds as doubles, ONNX as float32
    native = shap.TreeExplainer(model, feature_perturbation=PATH_DEPENDENT)
    native_margin = model.predict(sample, raw_score=True)
    agree = np.abs(trees.margin(sample) - native_margin) <= MARGIN_AGREEMENT
    excluded = 1 - agree.mean()
    with capsys.disabled():
        print(f"\nLightGBM: {excluded:.1%} of {len(sample)} rows excluded (margins differ)")
    assert excluded <= MAX_EXCLUDED_SHARE
    assert np.max(np.abs(mine[agree] - _shap_values(native, sample)[agree])) <= NATIVE


def test_a_lightgbm_model_without_covers_is_explained_against_a_background(lightgbm) -> None:
    _, model_bytes, rows = lightgbm
    trees = read_trees(without_covers(model_bytes))
    assert not has_cover(trees)
    with pytest.raises(NoCoverError):
        TreeExplainer(trees, rows.shape[1], PATH_DEPENDENT)
    background, sample = rows[:100], rows[1000:1060]
    ours = TreeExplainer(trees, rows.shape[1], INTERVENTIONAL, background)
    theirs = shap.TreeExplainer(
        shap_model(trees),
        data=shap.maskers.Independent(background.astype(np.float64), max_samples=100),
        feature_perturbation=INTERVENTIONAL,
        model_output="raw",
    )
    mine = ours.shap_values(sample)
    assert np.max(np.abs(mine - _shap_values(theirs, sample))) <= EXACT
    assert np.max(np.abs(mine.sum(axis=1) + ours.expected_value - trees.margin(sample))) <= EXACT


def test_the_reasoner_refuses_trees_that_do_not_give_the_model_scores(project) -> None:
    model_bytes, card_dict, _ = project
    card = ModelCard.from_dict(card_dict)
    vectors = card.vectors
    assert vectors is not None
    reasoner = reasoner_for(model_bytes, card, vectors.rows, vectors.expected, vectors.tolerance)
    assert reasoner.method == PATH_DEPENDENT
    shifted = [s + 1e-3 for s in vectors.expected]
    with pytest.raises(ValueError, match="do not give its scores"):
        reasoner_for(model_bytes, card, vectors.rows, shifted, vectors.tolerance)
