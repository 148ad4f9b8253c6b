"""Tree models for the explainer's tests: shap's view of the trees read from ONNX, a LightGBM
model exported with onnxmltools (its covers filled from the booster), and an opset-5 copy."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from streamscore.scoring.onnx_trees import LEAF, LEQ, Trees


def shap_model(trees: Trees) -> dict[str, Any]:
    """The trees as shap's custom tree model: shap sends x <= threshold left, so the true
    child goes left (every split here is BRANCH_LEQ), with the same float32 thresholds, leaf
    values and covers the explainer reads."""
    if np.any((trees.mode != LEAF) & (trees.mode != LEQ)):
        raise ValueError("shap's trees only split on <=")
    converted = []
    for root in trees.roots.tolist():
        order, stack = [], [root]
        while stack:
            node = stack.pop()
            order.append(node)
            if trees.mode[node] != LEAF:
                stack += [int(trees.false_child[node]), int(trees.true_child[node])]
        index = {node: i for i, node in enumerate(order)}
        inner = [trees.mode[n] != LEAF for n in order]
        left = np.array(
            [
                index[int(trees.true_child[n])] if s else -1
                for n, s in zip(order, inner, strict=True)
            ]
        )
        right = np.array(
            [
                index[int(trees.false_child[n])] if s else -1
                for n, s in zip(order, inner, strict=True)
            ]
        )
        converted.append(
            {
                "children_left": left,
                "children_right": right,
                "children_default": left.copy(),
                "features": np.array(
                    [int(trees.feature[n]) if s else -2 for n, s in zip(order, inner, strict=True)]
                ),
                "thresholds": trees.threshold[order].astype(np.float64),
                "values": trees.value[order][:, None],
                "node_sample_weight": trees.cover[order].astype(np.float64),
            }
        )
    return {"trees": converted, "base_offset": trees.base, "input_dtype": np.float32}


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def lightgbm_onnx(
    seed: int = 3, n_rows: int = 4000, n_features: int = 8
) -> tuple[Any, bytes, np.ndarray]:
    """A LightGBM classifier on synthetic data, its ONNX export (onnxmltools) with every
    node's cover set from the booster's internal_count/leaf_count, and the float32 rows."""
    import lightgbm  # noqa: PLC0415 - test dependencies, loaded only where used
    from onnxmltools import convert_lightgbm  # noqa: PLC0415
    from onnxmltools.convert.common.data_types import FloatTensorType  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rows, n_features)).astype(np.float32)
    x[:, 3] = rng.integers(0, 4, n_rows)  # a discrete column: many ties at thresholds
    logit = 1.5 * x[:, 0] - x[:, 1] * x[:, 2] + 0.8 * (x[:, 3] == 2) + rng.normal(size=n_rows)
    y = (logit > 1.0).astype(int)
    model = lightgbm.LGBMClassifier(
        n_estimators=40, num_leaves=15, learning_rate=0.1, random_state=seed, verbose=-1
    ).fit(x, y)
    proto = convert_lightgbm(
        model,
        initial_types=[("features", FloatTensorType([None, n_features]))],
        zipmap=False,
        target_opset=15,
    )
    _set_lightgbm_covers(proto, model.booster_.dump_model()["tree_info"])
    return model, proto.SerializeToString(), x


def _set_lightgbm_covers(proto: onnx.ModelProto, trees: list[dict[str, Any]]) -> None:
    (node,) = [n for n in proto.graph.node if n.op_type == "TreeEnsembleClassifier"]
    a = _attributes(node)
    at = {
        (t, n): i
        for i, (t, n) in enumerate(zip(a["nodes_treeids"], a["nodes_nodeids"], strict=True))
    }
    covers = [1.0] * len(at)

    def walk(tree: int, onnx_node: int, native: dict[str, Any]) -> None:
        i = at[(tree, onnx_node)]
        if "leaf_value" in native:
            assert a["nodes_modes"][i] == b"LEAF"
            covers[i] = float(native["leaf_count"])
            return
        assert a["nodes_featureids"][i] == native["split_feature"]
        assert np.float32(a["nodes_values"][i]) == np.float32(native["threshold"])
        covers[i] = float(native["internal_count"])
        walk(tree, a["nodes_truenodeids"][i], native["left_child"])
        walk(tree, a["nodes_falsenodeids"][i], native["right_child"])

    for tree, info in enumerate(trees):
        walk(tree, 0, info["tree_structure"])
    for attribute in node.attribute:
        if attribute.name == "nodes_hitrates":
            del attribute.floats[:]
            attribute.floats.extend(covers)


def without_covers(model_bytes: bytes) -> bytes:
    """The model with every nodes_hitrates back at 1.0 (as exporters leave them)."""
    proto = onnx.load_model_from_string(model_bytes)
    for node in proto.graph.node:
        for attribute in node.attribute:
            if attribute.name == "nodes_hitrates":
                count = len(attribute.floats)
                del attribute.floats[:]
                attribute.floats.extend([1.0] * count)
    return proto.SerializeToString()


def as_tree_ensemble_v5(trees: Trees, n_features: int) -> bytes:
    """The ensemble as ai.onnx.ml TreeEnsemble (opset 5) followed by a Sigmoid: the newer op,
    leaves in arrays of their own, no base value (it becomes a leaf weight of the first tree)."""
    splits = np.flatnonzero(trees.mode != LEAF)
    leaves = np.flatnonzero(trees.mode == LEAF)
    split_at = {int(n): i for i, n in enumerate(splits)}
    leaf_at = {int(n): i for i, n in enumerate(leaves)}
    weights = trees.value[leaves].copy()
    first_tree_leaves = _leaves_under(trees, int(trees.roots[0]))
    weights[[leaf_at[n] for n in first_tree_leaves]] += trees.base

    def child(nodes: np.ndarray) -> tuple[list[int], list[int]]:
        ids = [leaf_at[int(c)] if trees.mode[c] == LEAF else split_at[int(c)] for c in nodes]
        return ids, [int(trees.mode[c] == LEAF) for c in nodes]

    true_ids, true_leafs = child(trees.true_child[splits])
    false_ids, false_leafs = child(trees.false_child[splits])
    node = helper.make_node(
        "TreeEnsemble",
        ["features"],
        ["margin"],
        domain="ai.onnx.ml",
        aggregate_function=1,
        post_transform=0,
        n_targets=1,
        tree_roots=[split_at[int(r)] for r in trees.roots],
        nodes_featureids=trees.feature[splits].tolist(),
        nodes_modes=numpy_helper.from_array(trees.mode[splits].astype(np.uint8)),
        nodes_splits=numpy_helper.from_array(trees.threshold[splits].astype(np.float32)),
        nodes_truenodeids=true_ids,
        nodes_trueleafs=true_leafs,
        nodes_falsenodeids=false_ids,
        nodes_falseleafs=false_leafs,
        leaf_targetids=[0] * len(leaves),
        leaf_weights=numpy_helper.from_array(weights.astype(np.float32)),
    )
    sigmoid = helper.make_node("Sigmoid", ["margin"], ["probabilities"])
    graph = helper.make_graph(
        [node, sigmoid],
        "v5",
        [helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)]
    )
    model.ir_version = 10
    return model.SerializeToString()


def _leaves_under(trees: Trees, root: int) -> list[int]:
    found, stack = [], [root]
    while stack:
        node = stack.pop()
        if trees.mode[node] == LEAF:
            found.append(node)
        else:
            stack += [int(trees.true_child[node]), int(trees.false_child[node])]
    return found
