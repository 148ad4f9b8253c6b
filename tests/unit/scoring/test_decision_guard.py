"""The decision-rate guard in the score stage: what the card expects of each batch, and the
review-only switch (declines reviewed, still alerting)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamscore.core.artifacts import DecisionRates, ModelCard, Thresholds
from streamscore.core.quality import SCORE_UNITS, in_decline_sample
from streamscore.scoring.batch import ScoreOutcome, ScorePolicy, score_batch
from streamscore.scoring.model import ScoringModel, load_model
from support.builders import feature_record, stream_records
from support.fakes import MemoryScorePorts
from support.tiny_model import write_model_dir

NOW = datetime(2026, 3, 5, 12, 30, tzinfo=UTC)
AMOUNTS = [0.0, 0.6, 1.2] * 10  # approve, review, decline at 0.5 / 0.9 (support.tiny_model)
ARTIFACTS = Path(__file__).resolve().parents[3] / "models" / "artifacts"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ScoringModel:
    return load_model(write_model_dir(tmp_path_factory.mktemp("model")))


def run(model: ScoringModel, policy: ScorePolicy, fakes: MemoryScorePorts) -> ScoreOutcome:
    docs = [json.dumps(feature_record(i, a)).encode() for i, a in enumerate(AMOUNTS)]
    records = stream_records(docs, "features", key="card")
    return score_batch(records, model, fakes.ports, policy, lambda: NOW)


def test_review_only_reviews_every_decline_and_still_alerts_it(model: ScoringModel) -> None:
    fakes = MemoryScorePorts()
    policy = ScorePolicy(Thresholds(0.5, 0.9), alert_on_review=False, review_only=True)

    outcome = run(model, policy, fakes)

    assert outcome.decisions == {"approve": 10, "review": 20}
    assert outcome.capped == 10
    capped = [p for p in fakes.predictions.items.values() if p.get("guard") == "review_only"]
    assert len(capped) == 10 and {p["decision"] for p in capped} == {"review"}
    # the would-be declines alert (as reviews, marked), the plain reviews do not
    assert len(fakes.alerts.sent) == 10
    assert {(a["decision"], a["guard"]) for a in fakes.alerts.sent} == {("review", "review_only")}


def test_each_batch_carries_what_the_card_expects_of_it(model: ScoringModel) -> None:
    fakes = MemoryScorePorts()
    rates = DecisionRates(review=0.1, decline=0.02)
    policy = ScorePolicy(Thresholds(0.5, 0.9), alert_on_review=False, expected=rates)

    outcome = run(model, policy, fakes)

    assert outcome.expected_reviews == pytest.approx(3.0)
    assert outcome.expected_declines == pytest.approx(0.6)


def test_the_shipped_card_expects_its_test_slices_flagged_shares() -> None:
    card = json.loads((ARTIFACTS / "model_card.json").read_text())
    at = card["metrics"]["test"]["at_thresholds"]

    rates = ModelCard.from_dict(card).expected_rates

    assert rates is not None
    assert rates.decline == at["decline"]["flagged_share"]
    assert rates.review == pytest.approx(
        at["review"]["flagged_share"] - at["decline"]["flagged_share"]
    )
    assert ModelCard.from_dict(card | {"metrics": {}}).expected_rates is None


def test_the_decline_sample_reviews_the_same_share_of_declines_on_every_replay(
    model: ScoringModel,
) -> None:
    policy = ScorePolicy(Thresholds(0.5, 0.9), alert_on_review=False, decline_sample=0.5)
    fakes = MemoryScorePorts()

    outcome = run(model, policy, fakes)
    replayed = run(model, policy, MemoryScorePorts())

    declines = [p for p in fakes.predictions.items.values() if p["score"] >= 0.9]
    chosen = {p["transaction_id"] for p in declines if in_decline_sample(p["transaction_id"], 0.5)}
    sampled = {p["transaction_id"] for p in declines if p.get("guard") == "decline_sample"}
    assert sampled == chosen and 0 < len(sampled) < len(declines)
    assert {p["decision"] for p in declines if p["transaction_id"] in sampled} == {"review"}
    assert outcome.sampled == len(sampled) == replayed.sampled and outcome.capped == 0
    # reviewed declines alert, marked; the rest of the declines alert as declines
    assert {(a["decision"], a.get("guard")) for a in fakes.alerts.sent} == {
        ("review", "decline_sample"),
        ("decline", None),
    }
    # counted as reviews, and for quality as declines: no approval bin, their scores summed
    # with the declines'
    total = fakes.predictions.total()
    assert total.decisions["review"] == 10 + len(sampled)
    assert total.quality["s"] == len(sampled)
    want = sum(round(p["score"] * SCORE_UNITS) for p in declines)
    assert total.quality["p_decline"] == want


@pytest.mark.parametrize("share", [0.0, 0.05, 0.2, 1.0])
def test_the_sample_takes_its_share_of_ids_and_nothing_at_zero(share: float) -> None:
    ids = [f"t{n:06d}" for n in range(20_000)]

    taken = sum(in_decline_sample(i, share) for i in ids)

    spread = 4 * (len(ids) * share * (1 - share)) ** 0.5  # four standard deviations
    assert abs(taken - len(ids) * share) <= spread
    assert [in_decline_sample(i, share) for i in ids[:50]] == [
        in_decline_sample(i, share) for i in ids[:50]
    ]


def test_the_decline_sample_moves_its_share_of_the_expected_declines_to_reviews(
    model: ScoringModel,
) -> None:
    rates = DecisionRates(review=0.1, decline=0.02)
    policy = ScorePolicy(
        Thresholds(0.5, 0.9), alert_on_review=False, expected=rates, decline_sample=0.25
    )

    outcome = run(model, policy, MemoryScorePorts())

    assert outcome.expected_declines == pytest.approx(30 * 0.02 * 0.75)
    assert outcome.expected_reviews == pytest.approx(30 * (0.1 + 0.02 * 0.25))


def test_the_review_only_switch_expects_no_decline(model: ScoringModel) -> None:
    rates = DecisionRates(review=0.1, decline=0.02)
    policy = ScorePolicy(
        Thresholds(0.5, 0.9), alert_on_review=False, expected=rates, review_only=True
    )

    outcome = run(model, policy, MemoryScorePorts())

    assert outcome.expected_declines == 0
    assert outcome.expected_reviews == pytest.approx(30 * 0.12)
