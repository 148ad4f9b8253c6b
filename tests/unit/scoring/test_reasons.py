"""Reasons in the score stage: on every review and decline (never an approval), the top
contributions of exact TreeSHAP, on the prediction and its alert; a model that cannot be
explained, or an explainer that fails, costs the batch its reasons only."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from streamscore.core.artifacts import Thresholds
from streamscore.scoring.batch import ScoreOutcome, ScorePolicy, alert_detail, score_batch
from streamscore.scoring.model import ScoringModel, load_model
from streamscore.scoring.treeshap import INTERVENTIONAL, PATH_DEPENDENT
from support.builders import feature_record, stream_records
from support.fakes import MemoryScorePorts
from support.tiny_model import write_model_dir
from support.tree_models import without_covers

NOW = datetime(2026, 3, 5, 12, 30, tzinfo=UTC)
ARTIFACTS = Path(__file__).resolve().parents[3] / "models" / "artifacts"


@pytest.fixture(scope="module")
def model() -> ScoringModel:
    return load_model(ARTIFACTS)


def _rows(model: ScoringModel) -> np.ndarray:
    vectors = model.card.vectors
    assert vectors is not None
    return np.asarray(vectors.rows, dtype=np.float32)


def run(model: ScoringModel, reasons: int, fakes: MemoryScorePorts) -> ScoreOutcome:
    """The card's test vectors (scores spread over every quantile) as one batch; reviewed
    from a score of 0.01 (a few times the card's review rate), declined at the card's."""
    docs = []
    for i, row in enumerate(_rows(model).tolist()):
        record = feature_record(i, 0.0)
        record["features"] = dict(zip(model.feature_names, row, strict=True))
        docs.append(json.dumps(record).encode())
    records = stream_records(docs, "features", key="card")
    # a review threshold below the card's: more of the quantile rows are flagged
    thresholds = Thresholds(0.01, model.card.thresholds.decline)
    policy = ScorePolicy(thresholds, alert_on_review=True, reasons=reasons)
    return score_batch(records, model, fakes.ports, policy, lambda: NOW)


def test_the_committed_model_explains_by_path_with_its_covers(model: ScoringModel) -> None:
    assert model.reasoner is not None
    assert model.reasoner.method == PATH_DEPENDENT == model.reasons_note


def test_every_review_and_decline_carries_its_top_reasons_and_no_approval_does(
    model: ScoringModel,
) -> None:
    fakes = MemoryScorePorts()
    outcome = run(model, 3, fakes)

    predictions = fakes.predictions.items
    flagged = [p for p in predictions.values() if p["decision"] != "approve"]
    assert len(flagged) >= 5 and outcome.explained == len(flagged)
    assert outcome.reasons_missing == 0
    assert all("reasons" not in p for p in predictions.values() if p["decision"] == "approve")
    assert model.reasoner is not None
    rows = _rows(model)
    descriptions = model.card.descriptions
    for prediction in flagged:
        reasons = prediction["reasons"]
        row = rows[int(prediction["transaction_id"][1:])]
        contributions = model.reasoner.contributions(row[None])[0]
        # the top 3 positive contributions, largest first, each with its value and phrase
        expected = [
            j for j in np.argsort(-contributions, kind="stable")[:3] if contributions[j] > 0
        ]
        assert [r["feature"] for r in reasons] == [model.feature_names[j] for j in expected]
        for reason, j in zip(reasons, expected, strict=True):
            assert reason["value"] == pytest.approx(float(row[j]), abs=1e-6)
            assert reason["contribution"] == pytest.approx(contributions[j], abs=1e-6)
            assert reason["phrase"] == descriptions[reason["feature"]]
        assert reasons == sorted(reasons, key=lambda r: -r["contribution"])
    # the alerts carry the same reasons
    sent = {a["transaction_id"]: a for a in fakes.alerts.sent}
    assert len(sent) == len(flagged)
    for prediction in flagged:
        assert sent[prediction["transaction_id"]]["reasons"] == prediction["reasons"]
        assert alert_detail(prediction)["reasons"] == prediction["reasons"]


def test_a_declined_transaction_is_explained_by_what_raised_its_log_odds(
    model: ScoringModel,
) -> None:
    """Contributions and the expected log-odds add up to the score's log-odds."""
    fakes = MemoryScorePorts()
    run(model, 10, fakes)
    assert model.reasoner is not None
    declined = [p for p in fakes.predictions.items.values() if p["decision"] == "decline"]
    assert declined
    rows = _rows(model)
    for prediction in declined:
        row = rows[int(prediction["transaction_id"][1:])]
        contributions = model.reasoner.contributions(row[None])[0]
        log_odds = model.reasoner.explainer.expected_value + contributions.sum()
        assert 1 / (1 + np.exp(-log_odds)) == pytest.approx(prediction["score"], abs=1e-5)
        # the 10 reasons asked are all the positive contributions there are (18 features)
        positive = np.sort(contributions[contributions > 0])[::-1][:10]
        listed = [r["contribution"] for r in prediction["reasons"]]
        assert listed == pytest.approx(positive.tolist(), abs=1e-6)


def test_no_reasons_when_none_are_asked(model: ScoringModel) -> None:
    fakes = MemoryScorePorts()
    outcome = run(model, 0, fakes)

    assert outcome.explained == 0 and outcome.reasons_missing == 0
    assert all("reasons" not in p for p in fakes.predictions.items.values())
    assert all("reasons" not in a for a in fakes.alerts.sent)


def test_a_model_that_is_not_trees_serves_without_reasons_and_says_why(tmp_path: Path) -> None:
    tiny = load_model(write_model_dir(tmp_path))
    assert tiny.reasoner is None and "0 tree ensembles" in tiny.reasons_note
    fakes = MemoryScorePorts()
    docs = [json.dumps(feature_record(i, a)).encode() for i, a in enumerate([0.0, 0.6, 1.2])]
    policy = ScorePolicy(Thresholds(0.5, 0.9), alert_on_review=True, reasons=3)
    outcome = score_batch(
        stream_records(docs, "features", key="card"), tiny, fakes.ports, policy, lambda: NOW
    )

    assert outcome.scored == 3 and outcome.reasons_missing == 2
    assert "0 tree ensembles" in outcome.reasons_error
    assert len(fakes.alerts.sent) == 2


def test_an_explainer_that_raises_costs_the_batch_its_reasons_only(
    model: ScoringModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert model.reasoner is not None

    def broken(matrix: object, k: int) -> list[list[dict[str, object]]]:
        raise FloatingPointError("boom")

    monkeypatch.setattr(model.reasoner, "top", broken)
    fakes = MemoryScorePorts()
    outcome = run(model, 3, fakes)

    assert outcome.scored == len(_rows(model)) and not outcome.failed
    assert outcome.reasons_missing > 0 and "boom" in outcome.reasons_error
    assert all("reasons" not in p for p in fakes.predictions.items.values())


def test_a_model_without_covers_falls_back_to_its_background(tmp_path: Path) -> None:
    """A copy of the model whose exporter left nodes_hitrates at 1.0, with a card that names
    no method: interventional TreeSHAP against the card's background sample."""
    directory = tmp_path / "model"
    shutil.copytree(ARTIFACTS, directory)
    (directory / "model.onnx").write_bytes(without_covers((ARTIFACTS / "model.onnx").read_bytes()))
    card = json.loads((directory / "model_card.json").read_text())
    del card["explanation"]["method"]
    (directory / "model_card.json").write_text(json.dumps(card))

    model = load_model(directory)

    assert model.reasoner is not None and model.reasoner.method == INTERVENTIONAL
    # a card that names path-dependent for trees without covers: no reasons, and why
    card["explanation"]["method"] = PATH_DEPENDENT
    (directory / "model_card.json").write_text(json.dumps(card))
    refused = load_model(directory)
    assert refused.reasoner is None and "not covers" in refused.reasons_note
