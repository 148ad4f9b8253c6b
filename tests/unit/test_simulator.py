"""The simulator: contract-valid, ordered, deterministic traffic whose fraud and drift look as claimed."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime

import numpy as np
import pytest
from pydantic import ValidationError

from simulator import (
    COUNTRIES,
    HIGH_RISK_MCCS,
    INVALID_CATEGORIES,
    PATTERNS,
    Scenario,
    SimulatedBatch,
    SimulationConfig,
    encode_transaction,
    inject_invalid,
    invalid_payloads,
    simulate,
)
from streamscore.preprocess.contracts import Transaction

SMALL = SimulationConfig(seed=3, n_cards=600, days=14.0)
UNITS_PER_EUR = {c.code: c.units_per_eur for c in COUNTRIES}
OFFSETS = {c.code: c.utc_offset_minutes for c in COUNTRIES}


@pytest.fixture(scope="module")
def batch() -> SimulatedBatch:
    return simulate(SMALL)


def _scenario(scenario: Scenario) -> SimulatedBatch:
    return simulate(
        SimulationConfig(seed=SMALL.seed, n_cards=SMALL.n_cards, days=SMALL.days, scenario=scenario)
    )


DRIFTS: tuple[Scenario, ...] = ("amount-inflation", "channel-shift", "new-fraud-pattern")


@pytest.fixture(scope="module")
def drifted() -> dict[str, SimulatedBatch]:
    return {scenario: _scenario(scenario) for scenario in DRIFTS}


def _number(value: object) -> float:
    assert isinstance(value, float)
    return value


def _eur(txn: dict[str, object]) -> float:
    return _number(txn["amount"]) / UNITS_PER_EUR[str(txn["country"])]


def _local_hour(txn: dict[str, object]) -> int:
    return datetime.fromisoformat(str(txn["event_time"])).hour


def _rows(batch: SimulatedBatch, pattern: str) -> list[dict[str, object]]:
    return [
        t
        for t, label in zip(batch.transactions, batch.labels, strict=True)
        if label.pattern == pattern
    ]


def _legit_median_eur(batch: SimulatedBatch) -> dict[str, float]:
    amounts: dict[str, list[float]] = defaultdict(list)
    for txn in _rows(batch, "legit"):
        amounts[str(txn["card_id"])].append(_eur(txn))
    return {card: float(np.median(values)) for card, values in amounts.items()}


def _after(batch: SimulatedBatch, rows: list[dict[str, object]]) -> list[dict[str, object]]:
    start = batch.config.drift_epoch
    assert start is not None
    return [t for t in rows if datetime.fromisoformat(str(t["event_time"])).timestamp() >= start]


def _before(batch: SimulatedBatch, rows: list[dict[str, object]]) -> list[dict[str, object]]:
    start = batch.config.drift_epoch
    assert start is not None
    return [t for t in rows if datetime.fromisoformat(str(t["event_time"])).timestamp() < start]


# ---- determinism, contract, order, labels ------------------------------------------------


def test_same_seed_same_output_different_seed_different(batch: SimulatedBatch) -> None:
    # given the same configuration again, and one with another seed
    again = simulate(SMALL)
    other = simulate(SimulationConfig(seed=SMALL.seed + 1, n_cards=SMALL.n_cards, days=SMALL.days))
    # then
    assert again.transactions == batch.transactions
    assert again.labels == batch.labels
    assert other.transactions[:100] != batch.transactions[:100]
    assert {t["transaction_id"] for t in other.transactions}.isdisjoint(
        t["transaction_id"] for t in batch.transactions
    )


def test_size_follows_the_configuration(batch: SimulatedBatch) -> None:
    expected = SMALL.n_cards * SMALL.days * SMALL.mean_daily_txns
    assert 0.75 * expected < len(batch) < 1.25 * expected


def test_every_transaction_is_exactly_the_contract(batch: SimulatedBatch) -> None:
    fields = set(Transaction.model_fields)
    for raw in batch.transactions:
        assert set(raw) == fields
        txn = Transaction.model_validate_json(encode_transaction(raw))
        assert txn.model_dump(mode="json", exclude={"event_time"}) == {
            k: v for k, v in raw.items() if k != "event_time"
        }


def test_amounts_respect_currency_minor_units(batch: SimulatedBatch) -> None:
    yen = [_number(t["amount"]) for t in batch.transactions if t["currency"] == "JPY"]
    cents = [_number(t["amount"]) for t in batch.transactions if t["currency"] == "EUR"]
    assert yen and cents
    assert all(a == round(a) for a in yen)
    assert all(abs(a * 100 - round(a * 100)) < 1e-6 for a in cents)
    assert any(a != round(a) for a in cents)


def test_event_time_order_and_timestamps(batch: SimulatedBatch) -> None:
    parsed = [datetime.fromisoformat(str(t["event_time"])).timestamp() for t in batch.transactions]
    assert parsed == sorted(parsed)
    assert parsed == batch.timestamps.tolist()


def test_event_time_carries_the_home_country_offset(batch: SimulatedBatch) -> None:
    for txn in batch.transactions:
        moment = datetime.fromisoformat(str(txn["event_time"]))
        home = batch.cards[str(txn["card_id"])].home_country
        offset = moment.utcoffset()
        assert offset is not None
        assert offset.total_seconds() == 60 * OFFSETS[home]
    assert "+05:30" in {str(t["event_time"])[-6:] for t in batch.transactions}  # India


def test_labels_parallel_and_apart_from_payload(batch: SimulatedBatch) -> None:
    assert len(batch.labels) == len(batch.transactions)
    assert [label.transaction_id for label in batch.labels] == [
        t["transaction_id"] for t in batch.transactions
    ]
    assert all(label.is_fraud == (label.pattern != "legit") for label in batch.labels)
    assert {label.pattern for label in batch.labels} <= set(PATTERNS)
    assert not any({"is_fraud", "pattern", "label"} & set(t) for t in batch.transactions)


def test_ids_unique_tokens_and_deterministic(batch: SimulatedBatch) -> None:
    ids = [str(t["transaction_id"]) for t in batch.transactions]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "t3-b-00000000"
    assert all(re.fullmatch(r"card_\d{6}", str(t["card_id"])) for t in batch.transactions)
    scenario_ids = {str(t["transaction_id"]) for t in _scenario("channel-shift").transactions}
    assert scenario_ids.isdisjoint(ids)


def test_fraud_rate_near_the_parameter(batch: SimulatedBatch) -> None:
    rate = float(batch.is_fraud.mean())
    assert SMALL.fraud_rate * 0.8 < rate < SMALL.fraud_rate * 1.25
    none = simulate(SimulationConfig(seed=1, n_cards=100, days=5.0, fraud_rate=0.0))
    assert not none.is_fraud.any()


def test_daily_rhythm_quiet_nights_busy_days(batch: SimulatedBatch) -> None:
    hours = np.bincount([_local_hour(t) for t in _rows(batch, "legit")], minlength=24)
    share = hours / hours.sum()
    assert share[0:6].sum() < 0.1
    assert 10 <= int(np.argmax(share)) <= 20
    assert share[12:20].sum() > 0.35


def test_card_population_has_a_home_mix(batch: SimulatedBatch) -> None:
    homes = [card.home_country for card in batch.cards.values()]
    counts = {code: homes.count(code) for code in set(homes)}
    assert len(counts) >= 10
    assert max(counts, key=counts.__getitem__) == "US"


# ---- fraud signatures --------------------------------------------------------------------


def test_card_testing_is_bursts_of_small_ecom_at_new_merchants(batch: SimulatedBatch) -> None:
    probes = _rows(batch, "card_testing")
    assert len(probes) >= 30
    assert all(t["channel"] == "ecom" for t in probes)
    assert np.mean([_eur(t) <= 5.0 for t in probes]) > 0.6
    # bursts: per card, at least 3 probes within 15 minutes
    times: dict[str, list[float]] = defaultdict(list)
    for t in probes:
        times[str(t["card_id"])].append(datetime.fromisoformat(str(t["event_time"])).timestamp())
    for card_times in times.values():
        ts = np.array(card_times)
        in_window = [(np.abs(ts - x) <= 900).sum() for x in ts]
        assert max(in_window) >= 3
    # mostly merchants the card does not use legitimately
    usual = defaultdict(set)
    for t in _rows(batch, "legit"):
        usual[t["card_id"]].add(t["merchant_id"])
    assert np.mean([t["merchant_id"] not in usual[t["card_id"]] for t in probes]) > 0.7


def test_account_takeover_is_large_foreign_night_after_history(batch: SimulatedBatch) -> None:
    rows = _rows(batch, "account_takeover")
    assert len(rows) >= 15
    homes = {cid: card.home_country for cid, card in batch.cards.items()}
    foreign = np.mean([t["country"] != homes[str(t["card_id"])] for t in rows])
    legit_foreign = np.mean(
        [t["country"] != homes[str(t["card_id"])] for t in _rows(batch, "legit")]
    )
    assert foreign > 0.6
    assert legit_foreign < 0.1
    assert np.mean([_local_hour(t) < 6 for t in rows]) > 0.6
    typical = _legit_median_eur(batch)
    ratios = [_eur(t) / typical[str(t["card_id"])] for t in rows]
    assert np.median(ratios) > 5
    # every victim had a legitimate history before the takeover
    legit_times: dict[str, list[float]] = defaultdict(list)
    for t, label in zip(batch.transactions, batch.labels, strict=True):
        if not label.is_fraud:
            legit_times[str(t["card_id"])].append(
                datetime.fromisoformat(str(t["event_time"])).timestamp()
            )
    for t in rows:
        moment = datetime.fromisoformat(str(t["event_time"])).timestamp()
        assert sum(x < moment for x in legit_times[str(t["card_id"])]) >= 3


def test_high_risk_mcc_pattern_uses_risky_categories_and_larger_amounts(
    batch: SimulatedBatch,
) -> None:
    rows = _rows(batch, "high_risk_mcc")
    assert len(rows) >= 15
    assert {t["mcc"] for t in rows} <= set(HIGH_RISK_MCCS)
    legit = _rows(batch, "legit")
    assert np.median([_eur(t) for t in rows]) > 3 * np.median([_eur(t) for t in legit])
    # legitimate use of those categories exists (look-alikes), but it is rare
    assert 0 < np.mean([t["mcc"] in HIGH_RISK_MCCS for t in legit]) < 0.02


def test_baseline_has_no_new_pattern(batch: SimulatedBatch) -> None:
    assert batch.pattern_counts()["moto_burst"] == 0
    assert batch.config.drift_epoch is None


# ---- drift scenarios ---------------------------------------------------------------------


def test_amount_inflation_raises_amounts_after_start_only(
    batch: SimulatedBatch, drifted: dict[str, SimulatedBatch]
) -> None:
    inflated = drifted["amount-inflation"]
    before_base = [_eur(t) for t in _before(inflated, _rows(batch, "legit"))]
    before_drift = [_eur(t) for t in _before(inflated, _rows(inflated, "legit"))]
    assert before_base == before_drift  # same seed: identical until the drift starts
    after_base = np.median([_eur(t) for t in _after(inflated, _rows(batch, "legit"))])
    after_drift = np.median([_eur(t) for t in _after(inflated, _rows(inflated, "legit"))])
    assert after_drift / after_base == pytest.approx(inflated.config.inflation_factor, rel=0.1)


def test_channel_shift_moves_the_mix_to_ecom(
    batch: SimulatedBatch, drifted: dict[str, SimulatedBatch]
) -> None:
    shifted = drifted["channel-shift"]

    def ecom_share(rows: list[dict[str, object]]) -> float:
        return float(np.mean([t["channel"] == "ecom" for t in rows]))

    before = ecom_share(_before(shifted, _rows(shifted, "legit")))
    assert before == ecom_share(_before(shifted, _rows(batch, "legit")))
    after_base = ecom_share(_after(shifted, _rows(batch, "legit")))
    after = ecom_share(_after(shifted, _rows(shifted, "legit")))
    assert after - after_base > 0.25
    assert abs(after_base - before) < 0.03


def test_new_fraud_pattern_appears_after_start_with_its_signature(
    drifted: dict[str, SimulatedBatch],
) -> None:
    novel = drifted["new-fraud-pattern"]
    rows = _rows(novel, "moto_burst")
    assert len(rows) >= 20
    assert len(_after(novel, rows)) == len(rows)
    assert all(t["channel"] == "moto" for t in rows)
    assert all(55 <= _eur(t) <= 405 for t in rows)
    assert len({t["merchant_id"] for t in rows}) <= 3
    homes = {cid: card.home_country for cid, card in novel.cards.items()}
    assert all(t["country"] == homes[str(t["card_id"])] for t in rows)  # domestic
    per_card = defaultdict(list)
    for t in rows:
        per_card[t["card_id"]].append(datetime.fromisoformat(str(t["event_time"])).timestamp())
    assert all(len(ts) >= 3 for ts in per_card.values())
    # the trained patterns still occur at the base rate
    assert novel.pattern_counts()["card_testing"] > 0


def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        SimulationConfig(scenario="sunspots")  # type: ignore[arg-type]


# ---- invalid payloads --------------------------------------------------------------------


def test_invalid_payloads_fail_the_contract() -> None:
    payloads = invalid_payloads(np.random.default_rng(5), 300)
    assert {category for _, category in payloads} == set(INVALID_CATEGORIES)
    for payload, category in payloads:
        assert isinstance(payload, bytes)
        with pytest.raises(ValidationError):
            Transaction.model_validate_json(payload)
        assert category in INVALID_CATEGORIES
    assert payloads == invalid_payloads(np.random.default_rng(5), 300)


def test_inject_invalid_keeps_valid_order_at_the_rate(batch: SimulatedBatch) -> None:
    valid = batch.payloads()[:2000]
    mixed = inject_invalid(valid, np.random.default_rng(1), rate=0.1)
    assert [p for p, category in mixed if category is None] == valid
    n_invalid = sum(category is not None for _, category in mixed)
    assert 140 < n_invalid < 260
