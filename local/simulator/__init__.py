"""Card-transaction simulator: legitimate traffic, labelled fraud, drift scenarios, invalid records.

Used by training, the local run, the tests and the benchmarks. Everything is deterministic for
`SimulationConfig.seed` (one numpy Generator drives the whole run).

Public API::

    simulate(config: SimulationConfig | None = None) -> SimulatedBatch
    SimulationConfig(seed=7, n_cards=2000, days=14.0, start=date(2026, 3, 2), fraud_rate=0.015,
                     scenario="baseline", drift_start=0.5, inflation_factor=1.8, ecom_shift=0.5,
                     new_pattern_rate=0.006, mean_daily_txns=1.5, id_prefix=None)
    SimulatedBatch.transactions: list[dict]    # event-time order, exactly the Transaction contract
    SimulatedBatch.labels: list[Label]         # Label(transaction_id, is_fraud, pattern), parallel
    SimulatedBatch.timestamps: np.ndarray      # UTC epoch seconds of each event_time
    SimulatedBatch.cards: dict[str, CardProfile]
    SimulatedBatch.is_fraud / .patterns / .pattern_counts() / .payloads()
    encode_transaction(transaction: dict) -> bytes            # compact UTF-8 JSON
    invalid_payloads(rng, n) -> list[tuple[bytes, str]]       # (payload, INVALID_CATEGORIES name)
    inject_invalid(payloads, rng, rate) -> list[tuple[bytes, str | None]]
    outcomes.production_labels(predictions, truth, OutcomeConfig()) -> Outcomes  # what comes back

The world: cards (`card_000123` tokens) issued in 15 countries by a weighted mix, each with its
currency and a fixed UTC offset (no daylight saving); a log-normal spend profile in EUR converted
to the merchant country's currency; a channel mix over pos/ecom/atm/moto; a handful of usual
merchants. `event_time` is the card's home local time with its offset; activity follows a daily
rhythm and a mild weekly one. Some cards travel, shop at foreign web shops, gamble legitimately,
buy tiny digital goods, live at night or are issued mid-period: the look-alikes of fraud.

Fraud patterns (`pattern` of a Label; `fraud_rate` is their share of all transactions):

- `card_testing`: bursts of 3-40 tiny (0.5-5 EUR) e-commerce probes seconds to minutes apart,
  mostly at digital-goods merchants new to the card, sometimes followed by one larger purchase.
- `account_takeover`: after a normal history, 1-4 large purchases abroad, mostly ecom/moto, at
  the card's local night.
- `high_risk_mcc`: 1-6 elevated amounts at MCCs 7995, 6051, 4829, 5967, 7801.

Scenarios (drift from `drift_start`, a fraction of the period; `baseline` has none):

- `amount-inflation`: legitimate amounts multiplied by `inflation_factor`.
- `channel-shift`: each card's channel mix moves `ecom_shift` of its weight to ecom.
- `new-fraud-pattern`: adds `moto_burst`, a pattern absent from training: bursts of 3-12
  mid-size (60-400 EUR) moto purchases at one of three compromised domestic merchants, daytime.

Amounts are in the merchant country's currency, so a JPY or INR purchase is nominally much larger
than the same purchase in EUR; the card-testing probes are small in EUR, not in nominal units.
"""

from simulator.fraud import PATTERNS, TRAINING_PATTERNS
from simulator.invalid import INVALID_CATEGORIES, inject_invalid, invalid_payloads
from simulator.population import CHANNELS, CardProfile
from simulator.simulation import (
    SCENARIOS,
    Label,
    Scenario,
    SimulatedBatch,
    SimulationConfig,
    encode_transaction,
    simulate,
)
from simulator.world import COUNTRIES, HIGH_RISK_MCCS, Country

__all__ = [
    "CHANNELS",
    "COUNTRIES",
    "HIGH_RISK_MCCS",
    "INVALID_CATEGORIES",
    "PATTERNS",
    "SCENARIOS",
    "TRAINING_PATTERNS",
    "CardProfile",
    "Country",
    "Label",
    "Scenario",
    "SimulatedBatch",
    "SimulationConfig",
    "encode_transaction",
    "inject_invalid",
    "invalid_payloads",
    "simulate",
]
