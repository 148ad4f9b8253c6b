"""The tree reader (scoring/onnx_trees.py) against the onnx package and ONNX Runtime: every node
array of two exporters' models, the protobuf encodings it must read (packed and unpacked,
negative and 10-byte varints), the newer TreeEnsemble op, and models it must refuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from streamscore.core.artifacts import ModelCard
from streamscore.scoring.model import load_model
from streamscore.scoring.onnx_trees import (
    LEAF,
    UnsupportedModelError,
    _attribute,
    _packed_varints,
    read_trees,
)
from streamscore.scoring.reasons import reasoner_for
from streamscore.scoring.treeshap import INTERVENTIONAL, TreeExplainer, has_cover
from support.tree_models import as_tree_ensemble_v5, lightgbm_onnx

ARTIFACTS = Path(__file__).resolve().parents[3] / "models" / "artifacts"


@pytest.fixture(scope="module")
def project() -> tuple[bytes, dict, np.ndarray]:
    card = json.loads((ARTIFACTS / "model_card.json").read_text())
    rows = np.asarray(card["test_vectors"]["rows"], dtype=np.float32)
    return (ARTIFACTS / "model.onnx").read_bytes(), card, rows


def _ensemble(model_bytes: bytes) -> dict:
    proto = onnx.load_model_from_string(model_bytes)
    (node,) = [n for n in proto.graph.node if n.op_type == "TreeEnsembleClassifier"]
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _sigmoid(margin: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-margin))


@pytest.mark.parametrize("exporter", ["skl2onnx", "onnxmltools (LightGBM)"])
def test_every_node_array_is_what_onnx_reads(project, exporter: str) -> None:
    model_bytes = project[0] if exporter == "skl2onnx" else lightgbm_onnx()[1]
    a = _ensemble(model_bytes)
    trees = read_trees(model_bytes)
    at = {
        (t, n): i
        for i, (t, n) in enumerate(zip(a["nodes_treeids"], a["nodes_nodeids"], strict=True))
    }
    assert trees.feature.tolist() == list(a["nodes_featureids"])
    assert np.array_equal(trees.threshold, np.asarray(a["nodes_values"], np.float32))
    assert np.array_equal(trees.cover, np.asarray(a["nodes_hitrates"], np.float32))
    assert trees.missing_true.tolist() == [bool(v) for v in a["nodes_missing_value_tracks_true"]]
    leaves = trees.mode == LEAF
    assert leaves.tolist() == [m == b"LEAF" for m in a["nodes_modes"]]
    for i, (tree, mode) in enumerate(zip(a["nodes_treeids"], a["nodes_modes"], strict=True)):
        if mode != b"LEAF":
            assert trees.true_child[i] == at[(tree, a["nodes_truenodeids"][i])]
            assert trees.false_child[i] == at[(tree, a["nodes_falsenodeids"][i])]
    expected = np.zeros(len(trees.mode))
    for tree, node, weight in zip(
        a["class_treeids"], a["class_nodeids"], a["class_weights"], strict=True
    ):
        expected[at[(tree, node)]] += np.float32(weight)
    assert np.array_equal(trees.value, expected)
    assert sorted(trees.roots.tolist()) == sorted(i for (_, n), i in at.items() if n == 0)


def _int_attribute(values: list[int], packed: bool) -> bytes:
    """An AttributeProto of int64s, packed (one length-delimited field) or not (onnx's own)."""
    if not packed:
        return helper.make_attribute("xs", values).SerializeToString()
    from google.protobuf.internal import encoder  # noqa: PLC0415 - building bytes by hand

    body = b"".join(encoder._VarintBytes(v & (2**64 - 1)) for v in values)
    name = helper.make_attribute("xs", [0]).SerializeToString()[:4]  # field 1, "xs"
    return name + b"\x42" + encoder._VarintBytes(len(body)) + body + b"\xa0\x01\x07"


@pytest.mark.parametrize("packed", [False, True])
def test_ints_in_every_encoding_read_back(packed: bool) -> None:
    values = [0, 1, 127, 128, 300, 2**35, 2**62, -1, -(2**63), 2**63 - 1, 5, -7, 0]
    name, read = _attribute(_int_attribute(values, packed))
    assert (name, read) == ("xs", values)


def test_runs_of_negative_ints_read_in_linear_time() -> None:
    """Unpacked 10-byte varints stay inside one run (the reader once rescanned per value)."""
    values = [-1] * 40_000
    _, read = _attribute(helper.make_attribute("xs", values).SerializeToString())
    assert read == values


def test_floats_and_tensors_read_back() -> None:
    floats = [0.5, -1.25, float("nan"), 3.4e38]
    _, read = _attribute(helper.make_attribute("fs", floats).SerializeToString())
    assert np.array_equal(read, np.asarray(floats, np.float32), equal_nan=True)
    for values, dtype in (
        ([1.5, -2.0], np.float32),
        ([1.5, -2.0], np.float64),
        ([3, -4], np.int64),
    ):
        tensor = onnx.numpy_helper.from_array(np.asarray(values, dtype))
        _, read = _attribute(helper.make_attribute("t", tensor).SerializeToString())
        assert read.dtype == dtype and read.tolist() == values


def test_a_malformed_packed_list_is_refused() -> None:
    with pytest.raises(UnsupportedModelError):
        _packed_varints(b"\x80\x80")  # a varint that never ends


def test_the_newer_tree_ensemble_op_reads_the_same_trees(project) -> None:
    model_bytes, card, rows = project
    trees = read_trees(model_bytes)
    v5_bytes = as_tree_ensemble_v5(trees, rows.shape[1])
    v5 = read_trees(v5_bytes)
    session = ort.InferenceSession(v5_bytes, providers=["CPUExecutionProvider"])
    (scores,) = session.run(None, {"features": rows})
    # the Sigmoid is a node of its own after the ensemble: the margin is its input
    assert np.max(np.abs(_sigmoid(v5.margin(rows)) - np.ravel(scores))) <= 1e-6
    assert np.max(np.abs(v5.margin(rows) - trees.margin(rows))) <= 1e-5
    # opset 5 has no leaf covers: interventional only, and the same values as the original
    assert not has_cover(v5)
    background = rows[:50]
    a = TreeExplainer(trees, rows.shape[1], INTERVENTIONAL, background).shap_values(rows[:40])
    b = TreeExplainer(v5, rows.shape[1], INTERVENTIONAL, background).shap_values(rows[:40])
    assert np.max(np.abs(a - b)) <= 1e-6
    # a card that names no method: the reasoner finds the logistic link and the background
    plain = ModelCard.from_dict(
        {**card, "explanation": {"background": card["explanation"]["background"]}}
    )
    vectors = plain.vectors
    assert vectors is not None
    reasoner = reasoner_for(v5_bytes, plain, vectors.rows, vectors.expected, vectors.tolerance)
    assert reasoner.method == INTERVENTIONAL


def test_a_graph_without_one_ensemble_is_unsupported() -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 2])],
    )
    with pytest.raises(UnsupportedModelError, match="0 tree ensembles"):
        read_trees(helper.make_model(graph).SerializeToString())


def _with_attribute(model_bytes: bytes, name: str, values: list) -> bytes:
    proto = onnx.load_model_from_string(model_bytes)
    (node,) = [n for n in proto.graph.node if n.op_type == "TreeEnsembleClassifier"]
    for attribute in list(node.attribute):
        if attribute.name == name:
            node.attribute.remove(attribute)
    node.attribute.append(helper.make_attribute(name, values))
    return proto.SerializeToString()


def test_node_arrays_that_do_not_fit_are_refused_and_the_model_still_serves(
    project, tmp_path: Path
) -> None:
    """ONNX Runtime scores a model whose hitrates are the wrong length (it ignores them); the
    reader refuses it, and the model serves without reasons."""
    model_bytes = project[0]
    short = _with_attribute(model_bytes, "nodes_hitrates", [1.0])
    with pytest.raises(UnsupportedModelError, match="another length"):
        read_trees(short)
    cyclic = _ensemble(model_bytes)
    true = list(cyclic["nodes_truenodeids"])
    true[1] = 0  # node 1's true branch back to its root
    with pytest.raises(UnsupportedModelError, match="cycle"):
        read_trees(_with_attribute(model_bytes, "nodes_truenodeids", true))
    directory = tmp_path / "model"
    shutil.copytree(ARTIFACTS, directory)
    (directory / "model.onnx").write_bytes(short)

    model = load_model(directory)

    assert model.reasoner is None and "another length" in model.reasons_note
    assert model.predict(project[2][:3]).shape == (3,)


def test_a_malformed_explanation_costs_the_reasons_not_the_model(tmp_path: Path) -> None:
    directory = tmp_path / "model"
    shutil.copytree(ARTIFACTS, directory)
    card = json.loads((directory / "model_card.json").read_text())
    card["explanation"]["background"]["rows"] = [[0.0, 1.0]]
    (directory / "model_card.json").write_text(json.dumps(card))

    model = load_model(directory)

    assert model.reasoner is None and "background rows" in model.reasons_note
