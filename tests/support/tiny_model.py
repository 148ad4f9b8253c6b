"""A tiny logistic model written as a registry-shaped model directory (ONNX, card, baseline),
for tests of scoring: its score is sigmoid(4 * amount_log - 2), every other feature ignored."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from streamscore.preprocess.features import FEATURE_NAMES, FEATURE_SCHEMA

FEATURE_EDGES = [-1.0, -0.5, 0.0, 0.5, 1.0]
SCORE_EDGES = [round(x, 1) for x in np.linspace(0, 1, 11)]
# the tiny model: the score is sigmoid(WEIGHT * amount_log + BIAS), the other features ignored
WEIGHT = 4.0
BIAS = -2.0


def write_model_dir(
    directory: Path,
    version: str = "tiny-1",
    review: float = 0.5,
    decline: float = 0.9,
    names: Sequence[str] = FEATURE_NAMES,
    weight: float = WEIGHT,
) -> Path:
    """A logistic model as ONNX (input "features", output "probabilities"), its card and baseline;
    `names` are its features in its order, `weight` the one of amount_log (when among them)."""
    n = len(names)
    weights = np.zeros((n, 1), dtype=np.float32)
    if "amount_log" in names:
        weights[list(names).index("amount_log"), 0] = weight
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["z0"]),
        helper.make_node("Add", ["z0", "B"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        [
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(np.array([BIAS], np.float32), "B"),
            numpy_helper.from_array(np.array([1.0], np.float32), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(model, directory / "model.onnx")
    card = {
        "model_version": version,
        "feature_schema": FEATURE_SCHEMA,
        "feature_names": list(names),
        "input_name": "features",
        "output_name": "probabilities",
        "positive_class_index": 1,
        "thresholds": {"review": review, "decline": decline},
    }
    (directory / "model_card.json").write_text(json.dumps(card))
    entry = {"edges": FEATURE_EDGES, "proportions": [0.25] * 4}
    baseline = {
        "features": dict.fromkeys(names, entry),
        "score": {"edges": SCORE_EDGES, "proportions": [0.1] * 10},
    }
    (directory / "baseline.json").write_text(json.dumps(baseline))
    return directory


def tiny_score(amount_log: float, weight: float = WEIGHT) -> float:
    z = np.float32(amount_log) * np.float32(weight) + np.float32(BIAS)
    return float(np.float32(1.0) / (np.float32(1.0) + np.exp(-z)))
