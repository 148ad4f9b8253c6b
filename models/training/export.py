"""ONNX export of the fitted model, with metadata, a content-derived version and a parity check."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx.helper import make_opsetid, set_model_props
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingClassifier

from training.calibration import IDENTITY, Recalibration

INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"  # [batch, 2]; column POSITIVE_CLASS_INDEX is P(fraud)
POSITIVE_CLASS_INDEX = 1
TARGET_OPSET: dict[str, int] = {"": 17, "ai.onnx.ml": 3}
MODEL_NAME = "cardfraud-gbdt"
PARITY_TOLERANCE = 1e-5
TEST_VECTORS = 200  # rows the model card carries with their expected scores
BACKGROUND_ROWS = 200  # training rows the card carries for interventional TreeSHAP


class ParityError(RuntimeError):
    """ONNX and the training framework disagree; the artifact must not be written."""


def to_onnx(model: GradientBoostingClassifier, n_features: int) -> onnx.ModelProto:
    """The model as ONNX: float32 input [None, n_features], plain probability tensor (no zipmap)."""
    proto = convert_sklearn(
        model,
        name=MODEL_NAME,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=TARGET_OPSET,
        options={id(model): {"zipmap": False}},
    )
    # skl2onnx collects opset imports in a set: their order follows string hashing, which varies
    # per process. Sorting by domain makes the bytes (and so the model version) reproducible.
    imports = sorted((opset.domain, opset.version) for opset in proto.opset_import)
    del proto.opset_import[:]
    proto.opset_import.extend(make_opsetid(domain, version) for domain, version in imports)
    outputs = [output.name for output in proto.graph.output]
    if OUTPUT_NAME not in outputs:
        raise RuntimeError(f"expected an output named {OUTPUT_NAME!r}, got {outputs}")
    return proto


class Calibrated:
    """The native model with a recalibration on its log-odds: what the folded ONNX model must
    reproduce (check_parity)."""

    def __init__(self, model: GradientBoostingClassifier, recalibration: Recalibration) -> None:
        self.model = model
        self.recalibration = recalibration

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        positive = self.recalibration.apply(self.model.decision_function(features))
        return np.column_stack([1.0 - positive, positive])


def _ensemble(proto: onnx.ModelProto) -> onnx.NodeProto:
    (node,) = [n for n in proto.graph.node if n.op_type == "TreeEnsembleClassifier"]
    return node


def fold_recalibration(proto: onnx.ModelProto, recalibration: Recalibration) -> None:
    """Fold score' = sigmoid(slope x log-odds + intercept) into the tree ensemble: every leaf
    value times the slope, the base value times the slope plus the intercept. The ensemble's
    LOGISTIC post-transform then yields the corrected probability (calibration.py)."""
    if recalibration == IDENTITY:
        return
    attributes = {a.name: a for a in _ensemble(proto).attribute}
    if attributes["post_transform"].s != b"LOGISTIC" or len(attributes["base_values"].floats) != 1:
        raise RuntimeError("expected one base value and a LOGISTIC post-transform")
    weights = attributes["class_weights"]
    scaled = [recalibration.slope * value for value in weights.floats]
    del weights.floats[:]
    weights.floats.extend(scaled)
    base = attributes["base_values"]
    (value,) = base.floats
    del base.floats[:]
    base.floats.append(recalibration.slope * value + recalibration.intercept)


def set_covers(proto: onnx.ModelProto, model: GradientBoostingClassifier) -> None:
    """Fill the tree ensemble's nodes_hitrates with each node's cover: the training samples
    (their weight) through it, scikit-learn's weighted_n_node_samples of the tree's own
    subsample. ONNX Runtime ignores hitrates; path-dependent TreeSHAP needs the covers
    (scoring/treeshap.py), and skl2onnx leaves them at 1.0.

    skl2onnx numbers tree t's nodes as scikit-learn does (node id = index in tree_); every
    split's feature is checked against it, so a converter that numbered them otherwise fails
    here instead of shipping wrong covers.
    """
    attributes = {a.name: a for a in _ensemble(proto).attribute}
    trees = list(attributes["nodes_treeids"].ints)
    ids = list(attributes["nodes_nodeids"].ints)
    features = list(attributes["nodes_featureids"].ints)
    modes = list(attributes["nodes_modes"].strings)
    estimators = [stage[0].tree_ for stage in model.estimators_]
    covers = []
    for tree, node_id, feature, mode in zip(trees, ids, features, modes, strict=True):
        native = estimators[tree]
        if mode != b"LEAF" and native.feature[node_id] != feature:
            raise ParityError(f"tree {tree} node {node_id}: ONNX and scikit-learn differ")
        covers.append(float(native.weighted_n_node_samples[node_id]))
    hitrates = attributes["nodes_hitrates"]
    del hitrates.floats[:]
    hitrates.floats.extend(covers)


def stamp_version(proto: onnx.ModelProto, metadata: dict[str, str]) -> tuple[str, bytes]:
    """Set `metadata` on the model, derive the version from those bytes, add it; return both.

    model_version = "<MODEL_NAME>-" + first 10 hex digits of the SHA-256 of the model serialized
    with every metadata entry except model_version itself (the version cannot hash itself).
    """
    set_model_props(proto, metadata)
    digest = hashlib.sha256(proto.SerializeToString()).hexdigest()[:10]
    version = f"{MODEL_NAME}-{digest}"
    set_model_props(proto, {**metadata, "model_version": version})
    return version, proto.SerializeToString()


def inference_session(model_bytes: bytes) -> ort.InferenceSession:
    """A single-threaded CPU session: deterministic sums, so artifacts derived from it reproduce."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def onnx_probabilities(session: ort.InferenceSession, features: np.ndarray) -> np.ndarray:
    """Both class probabilities from the ONNX model, [n, 2] float32."""
    (probabilities,) = session.run(
        [OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(features, dtype=np.float32)}
    )
    return np.asarray(probabilities)


def check_parity(
    session: ort.InferenceSession,
    model: GradientBoostingClassifier | Calibrated,
    features: np.ndarray,
) -> float:
    """Max |ONNX - native| over both probability columns on `features`; ParityError above tolerance.

    Both sides get the same float32 matrix: the ONNX input is float32, and the native model
    must see those very values, or a threshold between a float64 value and its float32 rounding
    would send the two down different branches.
    """
    as_float32 = np.asarray(features, dtype=np.float32)
    native = model.predict_proba(as_float32)
    exported = onnx_probabilities(session, as_float32).astype(np.float64)
    difference = float(np.max(np.abs(exported - native)))
    if not difference <= PARITY_TOLERANCE:
        raise ParityError(
            f"ONNX and scikit-learn probabilities differ by up to {difference:.3g} on "
            f"{len(as_float32)} rows (tolerance {PARITY_TOLERANCE:g}); refusing to write artifacts"
        )
    return difference


def test_vectors(
    features: np.ndarray, scores: np.ndarray, rows: int = TEST_VECTORS
) -> dict[str, object]:
    """Rows at evenly spaced score quantiles with the ONNX scores computed for them here.

    A served copy of the model must reproduce each score within PARITY_TOLERANCE (the scoring
    function checks when it loads a model): a corrupted or substituted model.onnx, or a runtime
    that computes the trees differently, fails it. The rows are float32, as the model sees them;
    JSON keeps their float64 expansion, which reads back as the same float32.
    """
    order = np.argsort(scores, kind="stable")
    picks = np.unique(
        order[np.linspace(0, len(order) - 1, min(rows, len(order))).round().astype(int)]
    )
    matrix = np.asarray(features[picks], dtype=np.float32)
    return {
        "description": (
            f"{len(picks)} rows of the test slice at evenly spaced score quantiles, float32 in "
            "model order, and the positive-class scores ONNX Runtime gave them at export; a "
            "served copy of the model must give each within the tolerance"
        ),
        "tolerance": PARITY_TOLERANCE,
        "rows": matrix.astype(np.float64).tolist(),
        "expected_scores": np.asarray(scores[picks], dtype=np.float64).tolist(),
    }


def explanation(train_features: np.ndarray, seed: int) -> dict[str, object]:
    """The model card's `explanation`: how scoring computes reasons, and a background sample.

    The exported trees carry their covers (set_covers), so the method is path-dependent
    TreeSHAP; the background (training rows drawn with `seed`) is what a copy of the model
    without covers would be explained against (interventional TreeSHAP).
    """
    rng = np.random.default_rng(seed)
    picks = np.sort(
        rng.choice(len(train_features), min(BACKGROUND_ROWS, len(train_features)), replace=False)
    )
    return {
        "method": "tree_path_dependent",
        "output": "log_odds",
        "cover": (
            "nodes_hitrates: each node's training samples (scikit-learn weighted_n_node_samples "
            "of its tree's subsample)"
        ),
        "description": (
            "A reason is a feature's Shapley value: its contribution to the model's log-odds "
            "for this transaction, against the expected log-odds over the training data; the "
            "contributions and the expected value add up to the transaction's log-odds."
        ),
        "background": {
            "description": (
                f"{len(picks)} training rows drawn at random (seed {seed}), float32 in model order"
            ),
            "rows": np.asarray(train_features[picks], dtype=np.float32).astype(np.float64).tolist(),
        },
    }
