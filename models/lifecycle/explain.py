"""`python -m models explain TRANSACTION_ID`: every feature's contribution to one scored
transaction, from the model version that scored it (any transaction, approvals too).

The features are read from FeaturesTable, the version from the transaction's prediction in
PredictionsTable; the model comes from `--model-dir`, else the registry (downloaded and checked
against its manifest), else the committed models/artifacts when it is that version.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from streamscore.aws.dynamodb import deserialize, serialize
from streamscore.aws.registry import S3ModelVersions
from streamscore.core.registry import RegistryError
from streamscore.scoring.model import load_model

SHIPPED = Path(__file__).resolve().parents[1] / "artifacts"


def _item(dynamodb: Any, table: str, transaction_id: str) -> dict[str, Any] | None:
    found = dynamodb.get_item(
        TableName=table, Key=serialize({"transaction_id": transaction_id}), ConsistentRead=True
    ).get("Item")
    return None if found is None else dict(deserialize(found))


def _model_dir(version: str, model_dir: Path | None, s3: Any, bucket: str | None) -> Path:
    if model_dir is not None:
        return model_dir
    if bucket:
        versions = S3ModelVersions(s3, bucket)
        if versions.read_manifest(version) is not None:
            return versions.download(version, Path(tempfile.mkdtemp()) / version)
    card = SHIPPED / "model_card.json"
    if card.exists() and json.loads(card.read_text()).get("model_version") == version:
        return SHIPPED
    raise RegistryError(f"model {version} is neither in the registry nor the committed one")


def explain(
    transaction_id: str,
    dynamodb: Any,
    s3: Any,
    tables: Mapping[str, str | None],
    model_dir: Path | None = None,
    top: int = 3,
) -> dict[str, Any]:
    """The transaction's features, score and every contribution (largest first), and the
    reasons the score function stores for a review or decline (the top `top` positive ones)."""
    features_table = tables.get("features")
    if not features_table:
        raise RegistryError("FeaturesTable is not known: --stack-name or --features-table")
    record = _item(dynamodb, features_table, transaction_id)
    if record is None:
        raise RegistryError(f"no features stored for {transaction_id} (expired, or never scored)")
    prediction = None
    if tables.get("predictions"):
        prediction = _item(dynamodb, str(tables["predictions"]), transaction_id)
    version = str(prediction["model_version"]) if prediction else None
    if version is None and model_dir is None:
        raise RegistryError(f"{transaction_id} has no prediction: name a model with --model-dir")
    model = load_model(_model_dir(version or "", model_dir, s3, tables.get("bucket")))
    if model.reasoner is None:
        raise RegistryError(
            f"model {model.model_version} cannot be explained: {model.reasons_note}"
        )
    values = record["features"]
    row = np.array([[float(values[name]) for name in model.feature_names]], dtype=np.float32)
    contributions = model.reasoner.contributions(row)[0]
    expected = model.reasoner.explainer.expected_value
    order = np.argsort(-contributions, kind="stable")
    return {
        "transaction_id": transaction_id,
        "model_version": model.model_version,
        "method": model.reasoner.method,
        "score": float(model.predict(row)[0]),
        "decision": prediction.get("decision") if prediction else None,
        "stored_reasons": prediction.get("reasons") if prediction else None,
        "expected_log_odds": round(expected, 6),
        "log_odds": round(expected + float(contributions.sum()), 6),
        "contributions": [
            {
                "feature": model.feature_names[j],
                "value": round(float(row[0, j]), 6),
                "contribution": round(float(contributions[j]), 6),
                "phrase": model.card.descriptions.get(model.feature_names[j], ""),
            }
            for j in order.tolist()
        ],
        "reasons": model.reasoner.top(row, top)[0],
    }


def describe(found: Mapping[str, Any]) -> str:
    decision = f", {found['decision']}" if found.get("decision") else ""
    lines = [
        f"{found['transaction_id']}: score {found['score']:.6f}{decision} by "
        f"{found['model_version']} ({found['method']} TreeSHAP)",
        f"log-odds {found['log_odds']:+.4f} = expected {found['expected_log_odds']:+.4f} "
        "+ the contributions below",
    ]
    for c in found["contributions"]:
        lines.append(
            f"  {c['contribution']:+9.4f}  {c['feature']:<24} {c['value']:>12.6g}  {c['phrase']}"
        )
    reasons = ", ".join(r["feature"] for r in found["reasons"]) or "(none positive)"
    lines.append(f"reasons (top {len(found['reasons'])} positive): {reasons}")
    return "\n".join(lines)
