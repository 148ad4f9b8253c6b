"""The labels production would see: outcomes that depend on the decision, with their delays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulator import Label
from simulator.outcomes import CHARGEBACK_MAX_DAYS, OutcomeConfig, production_labels

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _traffic(n: int) -> tuple[list[dict], dict[str, Label]]:
    predictions, truth = [], {}
    for i in range(n):
        txn = f"t{i:05d}"
        predictions.append(
            {
                "transaction_id": txn,
                "decision": ("approve", "review", "decline")[i % 3],
                "event_time": (T0 + timedelta(minutes=i)).isoformat(),
            }
        )
        truth[txn] = Label(txn, i % 2 == 0, "card_testing" if i % 2 == 0 else "legit")
    return predictions, truth


def test_declines_get_no_label_reviews_an_outcome_and_approvals_only_chargebacks() -> None:
    predictions, truth = _traffic(3000)
    decision = {p["transaction_id"]: p["decision"] for p in predictions}
    when = {p["transaction_id"]: datetime.fromisoformat(p["event_time"]) for p in predictions}

    outcomes = production_labels(predictions, truth, OutcomeConfig(seed=3, unreported=0.2))

    by_decision = {d: [x for x in outcomes.labels if decision[x["transaction_id"]] == d] for d in
                   ("approve", "review", "decline")}  # fmt: skip
    assert by_decision["decline"] == []
    assert len(by_decision["review"]) == 1000
    assert all(
        x["label"] == ("fraud" if truth[x["transaction_id"]].is_fraud else "legit")
        for x in by_decision["review"]
    )
    chargebacks = by_decision["approve"]
    assert all(x["label"] == "fraud" and x["source"] == "chargeback" for x in chargebacks)
    approved_frauds = sum(1 for t, d in decision.items() if d == "approve" and truth[t].is_fraud)
    assert len(chargebacks) + outcomes.unreported == approved_frauds
    assert 0.12 < outcomes.unreported / approved_frauds < 0.28  # 20 % asked, 500 draws
    delays = [
        (datetime.fromisoformat(x["labelled_at"]) - when[x["transaction_id"]]).total_seconds()
        / 86400
        for x in chargebacks
    ]
    assert min(delays) >= 1.0 and max(delays) <= CHARGEBACK_MAX_DAYS
    assert 8 < sorted(delays)[len(delays) // 2] < 18  # the median of 1 + Gamma(2, 7): ~12.7
    assert outcomes.declined_frauds + outcomes.declined_legit == 1000
    assert outcomes.labels == sorted(
        outcomes.labels, key=lambda x: (x["labelled_at"], x["transaction_id"])
    )


def test_the_same_seed_gives_the_same_labels() -> None:
    predictions, truth = _traffic(300)
    assert production_labels(predictions, truth) == production_labels(predictions, truth)
