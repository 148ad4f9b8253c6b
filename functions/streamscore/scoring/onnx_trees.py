"""The tree ensemble inside an ONNX model, read from its bytes: nodes, leaves, covers, margin.

ONNX Runtime runs the trees but shows none of them, and the `onnx` package (31 MB installed,
~130 ms to import) is not in the scoring layer. The model is a protobuf message; this module
reads the few fields a tree ensemble needs straight from the wire format (ModelProto.graph,
GraphProto.node, NodeProto.op_type/domain/attribute, AttributeProto, TensorProto: field numbers
from onnx.proto), and tests/unit/scoring/test_onnx_trees.py checks it against `onnx` itself.

Read: ai.onnx.ml TreeEnsembleClassifier and TreeEnsembleRegressor (opsets 1 and 3, the
`*_as_tensor` attributes included) and TreeEnsemble (opset 5), one ensemble per graph, with a
single margin to explain: a binary classifier (one class id, or the positive class's weights)
or a one-target regressor, summed (or averaged) leaf values, post-transform NONE or LOGISTIC.
Anything else raises UnsupportedModelError. What is read is not trusted: scoring/reasons.py
checks that the margin gives the model's own scores (ONNX Runtime's binary-classifier layouts
vary by exporter: base values, class ids, all-positive weights), and a model that fails serves
without reasons.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

LEAF = -1
# node comparison codes (TreeEnsemble opset 5 numbers them the same way)
LEQ, LT, GTE, GT, EQ, NEQ, MEMBER = range(7)
_MODES = {
    b"BRANCH_LEQ": LEQ,
    b"BRANCH_LT": LT,
    b"BRANCH_GTE": GTE,
    b"BRANCH_GT": GT,
    b"BRANCH_EQ": EQ,
    b"BRANCH_NEQ": NEQ,
    b"LEAF": LEAF,
}
IDENTITY, LOGISTIC = "identity", "logistic"
_ENSEMBLES = {"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"}


class UnsupportedModelError(ValueError):
    """The model's trees cannot be explained (no ensemble, or a shape this reader refuses)."""


@dataclass(frozen=True)
class Trees:
    """The ensemble as flat node arrays: a node's children are indexes into the same arrays.

    margin(x) = base + sum over trees of the value of the leaf x reaches; the model's score is
    `transform` of the margin (sigmoid for LOGISTIC).
    """

    feature: npt.NDArray[np.int64]
    threshold: npt.NDArray[np.float32]
    mode: npt.NDArray[np.int64]  # LEQ..NEQ, LEAF
    true_child: npt.NDArray[np.int64]
    false_child: npt.NDArray[np.int64]
    missing_true: npt.NDArray[np.bool_]  # NaN goes the true way
    cover: npt.NDArray[np.float64]  # nodes_hitrates as stored (1.0 when the exporter left them)
    value: npt.NDArray[np.float64]  # a leaf's contribution to the margin; 0 at split nodes
    roots: npt.NDArray[np.int64]
    base: float
    transform: str

    def margin(self, matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """The raw margin per row, walking every tree at once, a level per step (used to check
        the reader against ONNX Runtime when a model loads, not to score)."""
        rows = np.asarray(matrix, dtype=np.float32)
        node = np.broadcast_to(self.roots, (len(rows), len(self.roots))).copy()
        index = np.arange(len(rows))[:, None]
        while True:
            inner = self.mode[node] != LEAF
            if not inner.any():
                break
            goes = follows_true(
                rows[index, self.feature[node]],
                self.threshold[node],
                self.mode[node],
                self.missing_true[node],
            )
            node = np.where(
                inner, np.where(goes, self.true_child[node], self.false_child[node]), node
            )
        return self.base + self.value[node].sum(axis=1)

    def score(self, margin: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if self.transform == LOGISTIC:
            return 1.0 / (1.0 + np.exp(-margin))
        return margin


def follows_true(
    values: npt.NDArray[np.float32],
    threshold: npt.NDArray[np.float32],
    mode: npt.NDArray[np.int64],
    missing_true: npt.NDArray[np.bool_],
) -> npt.NDArray[np.bool_]:
    """Whether each value takes its node's true branch (float32 comparisons, as the runtime)."""
    result = np.zeros(np.broadcast_shapes(values.shape, threshold.shape), dtype=bool)
    with np.errstate(invalid="ignore"):
        for code, compare in (
            (LEQ, np.less_equal),
            (LT, np.less),
            (GTE, np.greater_equal),
            (GT, np.greater),
            (EQ, np.equal),
            (NEQ, np.not_equal),
        ):
            chosen = mode == code
            if chosen.any():
                result |= chosen & compare(values, threshold)
    return result | (missing_true & np.isnan(values))


def read_trees(model_bytes: bytes, positive_class_index: int = 1) -> Trees:
    """The one tree ensemble of the ONNX model in `model_bytes`; UnsupportedModelError otherwise."""
    graph = _first(_fields(model_bytes), 7)
    if graph is None:
        raise UnsupportedModelError("the model has no graph")
    ensembles = []
    for _, node_bytes in _of(_fields(graph), 1):
        node = dict(_node(node_bytes))
        if node.get("domain") == "ai.onnx.ml" and node.get("op_type") in _ENSEMBLES:
            ensembles.append(node)
    if len(ensembles) != 1:
        raise UnsupportedModelError(f"the graph has {len(ensembles)} tree ensembles, not one")
    node = ensembles[0]
    attributes: dict[str, Any] = node["attributes"]
    if node["op_type"] == "TreeEnsemble":
        return _ensemble_v5(attributes)
    return _ensemble_v1(node["op_type"], attributes, positive_class_index)


# -- the protobuf wire format -------------------------------------------------------------


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def _field(data: bytes, position: int) -> tuple[int, int, Any, int]:
    """The field at `position`: its number, wire type, value and the position after it."""
    key, position = _varint(data, position)
    number, wire = key >> 3, key & 7
    value: Any
    if wire == 0:
        value, position = _varint(data, position)
    elif wire == 2:
        size, position = _varint(data, position)
        value, position = data[position : position + size], position + size
    elif wire in (1, 5):
        width = 8 if wire == 1 else 4
        value, position = data[position : position + width], position + width
    else:
        raise UnsupportedModelError(f"unexpected protobuf wire type {wire}")
    return number, wire, value, position


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field of one message, in order."""
    position = 0
    while position < len(data):
        number, wire, value, position = _field(data, position)
        yield number, wire, value


def _first(fields: Iterator[tuple[int, int, Any]], number: int) -> Any:
    return next((value for n, _, value in fields if n == number), None)


def _of(fields: Iterator[tuple[int, int, Any]], number: int) -> Iterator[tuple[int, Any]]:
    return ((wire, value) for n, wire, value in fields if n == number)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


MAX_VARINT = 10  # bytes of an int64 (a negative one takes all ten)


def _varint_values(raw: npt.NDArray[np.uint8], groups: int) -> npt.NDArray[np.int64]:
    """The first `groups` varints of `raw` as int64 (each at most 10 bytes: the 64 bits
    wrap as protobuf's two's complement does, so a negative int64 reads back negative)."""
    ends = np.flatnonzero(raw < 0x80)[:groups]
    starts = np.r_[0, ends[:-1] + 1]
    used = int(ends[-1]) + 1
    group = np.repeat(np.arange(groups), ends - starts + 1)
    shift = ((np.arange(used) - starts[group]) * 7).astype(np.uint64)
    parts = (raw[:used] & 0x7F).astype(np.uint64) << shift
    return np.add.reduceat(parts, starts).view(np.int64)


def _packed_varints(data: bytes) -> list[int]:
    """A packed repeated int64, decoded with numpy (node arrays hold thousands)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size == 0:
        return []
    ends = np.flatnonzero(raw < 0x80)
    if ends.size == 0 or ends[-1] != raw.size - 1 or np.diff(np.r_[-1, ends]).max() > MAX_VARINT:
        raise UnsupportedModelError("a malformed packed varint list")
    return _varint_values(raw, ends.size).tolist()


def _varint_run(data: bytes, position: int) -> tuple[list[int], int]:
    """A run of unpacked int64 fields of one number (skl2onnx writes node arrays so), from
    `position` while the one-byte key repeats; and the position after."""
    raw = np.frombuffer(data, dtype=np.uint8, offset=position)
    ends = np.flatnonzero(raw < 0x80)
    lengths = np.diff(np.r_[-1, ends])
    pairs = ends.size // 2
    keys = raw[np.r_[0, ends[:-1] + 1][0 : 2 * pairs : 2]]
    fits = (lengths[0 : 2 * pairs : 2] == 1) & (keys == raw[0])
    fits &= lengths[1 : 2 * pairs : 2] <= MAX_VARINT
    count = int(np.argmin(fits)) if not fits.all() else pairs
    if count == 0:
        return [], position
    values = _varint_values(raw, 2 * count)[1::2]
    return values.tolist(), position + int(ends[2 * count - 1]) + 1


def _fixed32_run(data: bytes, position: int) -> tuple[list[float], int]:
    """A run of unpacked float fields of one number (key byte, 4 bytes each), from `position`."""
    raw = np.frombuffer(data, dtype=np.uint8, offset=position)
    count = raw.size // 5
    different = np.flatnonzero(raw[: 5 * count : 5] != raw[0])
    count = int(different[0]) if different.size else count
    values = raw[: 5 * count].reshape(count, 5)[:, 1:].copy().view("<f4").ravel()
    return values.astype(np.float64).tolist(), position + 5 * count


def _floats_of(value: bytes, wire: int) -> list[float]:
    if wire == 2:
        return np.frombuffer(value, "<f4").astype(np.float64).tolist()
    return [struct.unpack("<f", value)[0]]


def _doubles_of(value: bytes, wire: int) -> list[float]:
    return np.frombuffer(value, "<f8").tolist() if wire == 2 else [struct.unpack("<d", value)[0]]


def _ints_of(value: Any, wire: int) -> list[int]:
    return _packed_varints(value) if wire == 2 else [_signed(value)]


# TensorProto.data_type -> numpy dtype of raw_data (onnx.proto's DataType numbers)
_TENSOR_TYPES = {1: "<f4", 2: "<u1", 3: "<i1", 6: "<i4", 7: "<i8", 11: "<f8"}
# TensorProto's typed repeated fields: float_data, int32_data, int64_data, double_data
_TENSOR_LISTS: dict[int, Callable[[Any, int], list[Any]]] = {
    4: _floats_of,
    5: _ints_of,
    7: _ints_of,
    10: _doubles_of,
}


def _tensor(data: bytes) -> npt.NDArray[Any]:
    data_type, raw = 0, None
    listed: list[Any] = []
    for number, wire, value in _fields(data):
        if number == 2:
            data_type = value
        elif number == 9:
            raw = value
        elif number in _TENSOR_LISTS:
            listed.extend(_TENSOR_LISTS[number](value, wire))
        elif number == 14 and value == 1:
            raise UnsupportedModelError("a tensor with external data")
    if data_type not in _TENSOR_TYPES:
        raise UnsupportedModelError(f"a tensor of ONNX data type {data_type}")
    dtype = np.dtype(_TENSOR_TYPES[data_type])
    if raw is not None:
        return np.frombuffer(raw, dtype).copy()
    return np.asarray(listed, dtype=dtype)


def _node(data: bytes) -> Iterator[tuple[str, Any]]:
    attributes: dict[str, Any] = {}
    for number, _, value in _fields(data):
        if number == 4:
            yield "op_type", value.decode()
        elif number == 7:
            yield "domain", value.decode()
        elif number == 5:
            name, parsed = _attribute(value)
            attributes[name] = parsed
    yield "attributes", attributes


# AttributeProto: its scalar fields and its repeated ones (onnx.proto numbers)
_ATTRIBUTE_SCALARS: dict[int, Callable[[Any], Any]] = {
    2: lambda v: struct.unpack("<f", v)[0],
    3: _signed,
    4: bytes,
    5: _tensor,
}
_ATTRIBUTE_LISTS: dict[int, Callable[[Any, int], list[Any]]] = {
    7: _floats_of,
    8: _ints_of,
    9: lambda v, _: [bytes(v)],
}
_RUNS: dict[tuple[int, int], Callable[[bytes, int], tuple[list[Any], int]]] = {
    (7, 5): _fixed32_run,
    (8, 0): _varint_run,
}


def _attribute(data: bytes) -> tuple[str, Any]:
    """An AttributeProto's name and value (a float, int, bytes, list or numpy array)."""
    name, scalar, lists = "", None, {number: list[Any]() for number in _ATTRIBUTE_LISTS}
    position = 0
    while position < len(data):
        number, wire, value, after = _field(data, position)
        run = _RUNS.get((number, wire))
        if run is not None:
            values, position = run(data, position)
            if values:
                lists[number].extend(values)
                continue
        position = after
        if number == 1:
            name = value.decode()
        elif number in _ATTRIBUTE_SCALARS:
            scalar = _ATTRIBUTE_SCALARS[number](value)
        elif number in _ATTRIBUTE_LISTS:
            lists[number].extend(_ATTRIBUTE_LISTS[number](value, wire))
    if lists[7]:
        return name, np.asarray(lists[7], dtype=np.float32)
    return name, lists[8] or lists[9] or scalar


# -- the ensembles --------------------------------------------------------------------------


def _floats(attributes: Mapping[str, Any], name: str) -> npt.NDArray[np.float64] | None:
    for key in (f"{name}_as_tensor", name):
        if key in attributes:
            return np.asarray(attributes[key], dtype=np.float64)
    return None


def _ints(attributes: Mapping[str, Any], name: str) -> npt.NDArray[np.int64]:
    if name not in attributes:
        raise UnsupportedModelError(f"the ensemble has no {name}")
    return np.asarray(attributes[name], dtype=np.int64).reshape(-1)


def _transform(value: Any) -> str:
    name = value.decode() if isinstance(value, bytes) else str(value)
    codes = {"NONE": IDENTITY, "LOGISTIC": LOGISTIC, "0": IDENTITY, "2": LOGISTIC}
    if name not in codes:
        raise UnsupportedModelError(f"post_transform {name} (NONE or LOGISTIC explained)")
    return codes[name]


def _ensemble_v1(op_type: str, attributes: Mapping[str, Any], positive: int) -> Trees:
    """TreeEnsembleClassifier / TreeEnsembleRegressor: nodes addressed by (tree id, node id)."""
    trees, nodes = _ints(attributes, "nodes_treeids"), _ints(attributes, "nodes_nodeids")
    index = {(t, n): i for i, (t, n) in enumerate(zip(trees.tolist(), nodes.tolist(), strict=True))}
    modes = np.array([_MODES.get(bytes(m), -2) for m in attributes.get("nodes_modes", [])])
    if len(modes) != len(trees) or (modes == -2).any():
        raise UnsupportedModelError("node modes other than BRANCH_* and LEAF")

    def children(name: str) -> npt.NDArray[np.int64]:
        local = _ints(attributes, name).tolist()
        return np.array(
            [
                index.get((t, c), -1) if m != LEAF else -1
                for t, c, m in zip(trees.tolist(), local, modes.tolist(), strict=True)
            ]
        )

    size = len(trees)
    thresholds = _floats(attributes, "nodes_values")
    covers = _floats(attributes, "nodes_hitrates")
    missing = attributes.get("nodes_missing_value_tracks_true")
    value, base, sign = _leaf_values(op_type, attributes, index, size, positive)
    roots = np.array(sorted({i for (t, n), i in index.items() if n == 0}), dtype=np.int64)
    if len(roots) != len(set(trees.tolist())):
        raise UnsupportedModelError("a tree without a node 0")
    _aggregate(value, attributes.get("aggregate_function", b"SUM"), len(roots))
    return _checked(
        feature=_ints(attributes, "nodes_featureids"),
        threshold=(np.zeros(size) if thresholds is None else thresholds).astype(np.float32),
        mode=modes.astype(np.int64),
        true_child=children("nodes_truenodeids"),
        false_child=children("nodes_falsenodeids"),
        missing_true=np.zeros(size, bool) if missing is None else np.asarray(missing, bool),
        cover=np.ones(size) if covers is None else covers,
        value=value,
        roots=roots,
        base=sign * base,
        transform=_transform(attributes.get("post_transform", b"NONE")),
    )


def _checked(**fields: Any) -> Trees:
    """The Trees, once every node array has one entry per node, every split's children are
    nodes, and every root reaches its leaves without a cycle; UnsupportedModelError else (ONNX
    Runtime checks less: a model can score and still carry arrays a reader cannot trust)."""
    size = len(fields["mode"])
    arrays = ("feature", "threshold", "true_child", "false_child", "missing_true", "cover", "value")
    short = [name for name in arrays if len(fields[name]) != size]
    if short:
        raise UnsupportedModelError(f"node arrays of another length than the nodes': {short}")
    trees = Trees(**fields)
    inner = trees.mode != LEAF
    children = np.concatenate([trees.true_child[inner], trees.false_child[inner]])
    if np.any((children < 0) | (children >= size)) or np.any(trees.feature[inner] < 0):
        raise UnsupportedModelError("a split whose child or feature is not in the model")
    if np.any((trees.roots < 0) | (trees.roots >= size)):
        raise UnsupportedModelError("a tree root that is not a node")
    node, steps = trees.roots.copy(), 0
    while np.any(trees.mode[node] != LEAF):  # every root's walk, all branches at once
        split = node[trees.mode[node] != LEAF]
        node = np.concatenate([trees.true_child[split], trees.false_child[split]])
        steps += 1
        if steps > size or node.size > 2 * size:
            raise UnsupportedModelError("a tree with a cycle")
    return trees


def _leaf_values(
    op_type: str,
    attributes: Mapping[str, Any],
    index: Mapping[tuple[int, int], int],
    size: int,
    positive: int,
) -> tuple[npt.NDArray[np.float64], float, float]:
    """Each node's share of the margin (the leaves' weights of the explained target), the base
    value and the margin's sign."""
    prefix = "class" if op_type == "TreeEnsembleClassifier" else "target"
    ids = _ints(attributes, f"{prefix}_ids")
    weights = _floats(attributes, f"{prefix}_weights")
    if weights is None:
        raise UnsupportedModelError(f"the ensemble has no {prefix}_weights")
    target, sign = _target(op_type, attributes, ids, positive)
    value = np.zeros(size, dtype=np.float64)
    leaves = zip(
        _ints(attributes, f"{prefix}_treeids").tolist(),
        _ints(attributes, f"{prefix}_nodeids").tolist(),
        ids.tolist(),
        weights.tolist(),
        strict=True,
    )
    for tree, node, target_id, weight in leaves:
        if target_id == target:
            if (tree, node) not in index:
                raise UnsupportedModelError(
                    f"a leaf weight for node {node} of tree {tree}, no node"
                )
            value[index[(tree, node)]] += sign * weight
    base_values = _floats(attributes, "base_values")
    base = 0.0 if base_values is None or base_values.size == 0 else float(base_values[0])
    if base_values is not None and base_values.size > 1:
        base = float(base_values[target])
    return value, base, sign


def _aggregate(value: npt.NDArray[np.float64], function: Any, trees: int) -> None:
    """Leaf values as the sum they make: AVERAGE divides each by the trees' count."""
    name = function.decode() if isinstance(function, bytes) else str(function)
    if name in ("AVERAGE", "0"):
        value /= trees
    elif name not in ("SUM", "1"):
        raise UnsupportedModelError("aggregate_function other than SUM or AVERAGE")


def _target(
    op_type: str, attributes: Mapping[str, Any], ids: npt.NDArray[np.int64], positive: int
) -> tuple[int, float]:
    """Which weights make the margin, and its sign: a binary classifier with one class id
    scores the second label (the first gets the negated margin); otherwise the positive
    class's own weights; a regressor's one target."""
    distinct = sorted(set(ids.tolist()))
    if op_type == "TreeEnsembleRegressor":
        if int(attributes.get("n_targets", 1)) != 1 or len(distinct) != 1:
            raise UnsupportedModelError("a regressor with more than one target")
        return distinct[0], 1.0
    labels = attributes.get("classlabels_int64s", attributes.get("classlabels_strings", []))
    if len(labels) == 2 and len(distinct) == 1:
        return distinct[0], 1.0 if positive == 1 else -1.0
    if positive not in distinct:
        raise UnsupportedModelError(f"no weights for class {positive}")
    return positive, 1.0


def _ensemble_v5(attributes: Mapping[str, Any]) -> Trees:
    """TreeEnsemble (ai.onnx.ml opset 5): split nodes and leaves in separate arrays."""
    features = _ints(attributes, "nodes_featureids")
    splits = _floats(attributes, "nodes_splits")
    modes = np.asarray(attributes.get("nodes_modes", []), dtype=np.int64).reshape(-1)
    if splits is None or len(modes) != len(features) or ((modes < LEQ) | (modes > NEQ)).any():
        raise UnsupportedModelError(
            "node modes other than LEQ..NEQ (set membership is not explained)"
        )
    weights = _floats(attributes, "leaf_weights")
    targets = _ints(attributes, "leaf_targetids")
    if weights is None or set(targets.tolist()) - {0}:
        raise UnsupportedModelError("a TreeEnsemble with more than one target")
    splits_count, leaves = len(features), len(weights)

    def child(kind: str) -> npt.NDArray[np.int64]:
        ids, is_leaf = (
            _ints(attributes, f"nodes_{kind}nodeids"),
            _ints(attributes, f"nodes_{kind}leafs"),
        )
        return np.where(is_leaf == 1, splits_count + ids, ids)

    covers = _floats(attributes, "nodes_hitrates")
    missing = attributes.get("nodes_missing_value_tracks_true")
    roots = _ints(attributes, "tree_roots")
    values = np.concatenate([np.zeros(splits_count), weights])
    _aggregate(values, attributes.get("aggregate_function", 1), len(roots))
    base_values = _floats(attributes, "base_values")  # not an attribute of opset 5: no offset
    return _checked(
        feature=np.concatenate([features, np.zeros(leaves, np.int64)]),
        threshold=np.concatenate([splits, np.zeros(leaves)]).astype(np.float32),
        mode=np.concatenate([modes, np.full(leaves, LEAF)]),
        true_child=np.concatenate([child("true"), np.full(leaves, -1)]),
        false_child=np.concatenate([child("false"), np.full(leaves, -1)]),
        missing_true=np.concatenate(
            [
                np.zeros(splits_count, bool) if missing is None else np.asarray(missing, bool),
                np.zeros(leaves, bool),
            ]
        ),
        # opset 5 has no hitrates for leaves: no cover to explain by path (NaN), interventional only
        cover=np.concatenate(
            [np.ones(splits_count) if covers is None else covers, np.full(leaves, np.nan)]
        ),
        value=values,
        roots=roots,
        base=0.0 if base_values is None or base_values.size == 0 else float(base_values[0]),
        transform=_transform(attributes.get("post_transform", 0)),
    )
