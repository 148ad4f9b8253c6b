"""Simulated card traffic: legitimate spend with a daily rhythm, fraud episodes, drift scenarios."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Literal, get_args

import numpy as np

from simulator.fraud import (
    LEGIT,
    PATTERNS,
    FraudContext,
    Rows,
    fraud_rows,
    moto_burst,
    moto_burst_merchants,
)
from simulator.population import (
    ATM,
    CHANNELS,
    ECOM,
    POS,
    CardProfile,
    Population,
    build_population,
)
from simulator.world import (
    COUNTRIES,
    UTC_OFFSET_SECONDS,
    MerchantCatalog,
    build_catalog,
    to_cash_amount,
    to_local_amount,
)

Scenario = Literal["baseline", "amount-inflation", "channel-shift", "new-fraud-pattern"]
SCENARIOS: tuple[str, ...] = get_args(Scenario)
_SCENARIO_CODES = {
    "baseline": "b",
    "amount-inflation": "ai",
    "channel-shift": "cs",
    "new-fraud-pattern": "nf",
}
DAY = 86_400

# Relative activity by local hour (quiet nights, lunch and evening peaks) and by weekday (Mon..Sun).
HOUR_PROFILE = np.array(
    [0.8, 0.5, 0.3, 0.2, 0.2, 0.4, 1.2, 2.5, 3.5, 4.0, 4.5, 5.0,
     6.0, 5.5, 4.8, 4.8, 5.0, 5.8, 6.2, 5.8, 4.8, 3.8, 2.6, 1.6]
)  # fmt: skip
WEEKDAY_PROFILE = np.array([1.0, 0.97, 1.0, 1.03, 1.12, 1.18, 0.9])
NIGHT_SHIFT_HOURS = 10
USUAL_MERCHANT_SHARE = 0.8  # at home, the rest goes to other merchants of the same country
CROSS_BORDER_ECOM_SHARE = 0.06  # legitimate e-commerce at foreign merchants
SMALL_DIGITAL_SHARE = 0.05  # legitimate tiny e-commerce (apps, songs): card-testing look-alikes
SMALL_DIGITAL_EUR = np.array([0.99, 1.99, 2.99, 4.99])
HIGH_RISK_USE_SHARE = 0.15  # of a high-risk user's transactions (betting, crypto, wires)
CASH_EUR = np.array([20.0, 50.0, 100.0, 200.0, 300.0])
CASH_P = np.array([0.25, 0.3, 0.25, 0.15, 0.05])
_ID_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What to simulate. Expect about n_cards * days * mean_daily_txns legitimate transactions."""

    seed: int = 7
    n_cards: int = 2000
    days: float = 14.0
    start: date = date(2026, 3, 2)  # a Monday; local midnight of every card's home country
    fraud_rate: float = 0.015  # share of fraudulent transactions among all (trained patterns)
    scenario: Scenario = "baseline"
    drift_start: float = 0.5  # fraction of the period after which the scenario's drift applies
    inflation_factor: float = 1.8  # amount-inflation: legitimate amounts are multiplied by it
    ecom_shift: float = 0.5  # channel-shift: weight moved from each card's mix to e-commerce
    new_pattern_rate: float = 0.006  # new-fraud-pattern: extra moto_burst rows per legit row
    mean_daily_txns: float = 1.5
    id_prefix: str | None = None  # transaction ids "<prefix>-<index>"; default from seed, scenario

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; expected one of {SCENARIOS}")
        if self.n_cards < 1 or self.days < 3:
            raise ValueError("simulate at least one card over at least 3 days")
        if not 0.0 <= self.fraud_rate < 0.5 or not 0.0 <= self.new_pattern_rate < 0.5:
            raise ValueError("fraud rates must be in [0, 0.5)")
        if not 0.0 <= self.drift_start <= 1.0 or not 0.0 <= self.ecom_shift <= 1.0:
            raise ValueError("drift_start and ecom_shift are fractions in [0, 1]")
        if self.inflation_factor <= 0:
            raise ValueError("inflation_factor must be positive")
        if self.id_prefix is not None and not _ID_PREFIX.match(self.id_prefix):
            raise ValueError("id_prefix: 1-40 characters of [A-Za-z0-9_-]")

    @property
    def start_epoch(self) -> int:
        return int(
            datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC).timestamp()
        )

    @property
    def drift_epoch(self) -> int | None:
        """UTC epoch from which the scenario's drift applies (None for the baseline)."""
        if self.scenario == "baseline":
            return None
        return self.start_epoch + round(self.drift_start * self.days * DAY)

    @property
    def transaction_prefix(self) -> str:
        return self.id_prefix or f"t{self.seed}-{_SCENARIO_CODES[self.scenario]}"


@dataclass(frozen=True, slots=True)
class Label:
    """Ground truth of one transaction, kept apart from its payload."""

    transaction_id: str
    is_fraud: bool
    pattern: str  # "legit" or one of PATTERNS


@dataclass(frozen=True, slots=True)
class SimulatedBatch:
    """Transactions in event-time order (contract dicts), their labels, and the cards behind them."""

    config: SimulationConfig
    transactions: list[dict[str, object]]
    labels: list[Label]  # labels[i] belongs to transactions[i]
    timestamps: np.ndarray  # UTC epoch seconds of each transaction's event_time
    cards: dict[str, CardProfile] = field(repr=False)

    def __len__(self) -> int:
        return len(self.transactions)

    @property
    def is_fraud(self) -> np.ndarray:
        return np.array([label.is_fraud for label in self.labels], dtype=bool)

    @property
    def patterns(self) -> np.ndarray:
        return np.array([label.pattern for label in self.labels])

    def pattern_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(PATTERNS, 0)
        for label in self.labels:
            counts[label.pattern] += 1
        return counts

    def payloads(self) -> list[bytes]:
        """Each transaction as the UTF-8 JSON a producer puts on the stream."""
        return [encode_transaction(txn) for txn in self.transactions]


def encode_transaction(transaction: dict[str, object]) -> bytes:
    """Compact UTF-8 JSON of one transaction dict."""
    return json.dumps(transaction, separators=(",", ":")).encode()


def simulate(config: SimulationConfig | None = None) -> SimulatedBatch:
    """Simulate `config` (default: SimulationConfig()); deterministic for its seed."""
    config = config or SimulationConfig()
    rng = np.random.default_rng(config.seed)
    catalog = build_catalog(rng)
    population = build_population(rng, catalog, config.n_cards, config.days, config.mean_daily_txns)
    legit = _legitimate(rng, config, population, catalog)
    n_legit = legit.ts.size

    by_card = np.lexsort((legit.ts, legit.card))
    bounds = np.searchsorted(legit.card[by_card], np.arange(1, config.n_cards))
    legit_times = np.split(legit.ts[by_card], bounds)
    ctx = FraudContext(rng, population, catalog, config.start_epoch, config.days, legit_times)
    n_fraud = round(n_legit * config.fraud_rate / (1.0 - config.fraud_rate))
    fraud = fraud_rows(ctx, n_fraud, earliest_day=min(2.0, 0.2 * config.days))
    burst_merchants = moto_burst_merchants(rng, catalog)
    drift_epoch = config.drift_epoch
    if config.scenario == "new-fraud-pattern" and drift_epoch is not None:
        drift_day = config.drift_start * config.days
        n_new = round(config.new_pattern_rate * int(np.sum(legit.ts >= drift_epoch)))
        first = len(fraud)
        while len(fraud) - first < n_new:
            moto_burst(ctx, fraud, drift_day, burst_merchants)
    fraud_part = _convert(fraud, catalog)
    return _assemble(config, population, catalog, _concat(legit, fraud_part))


@dataclass(frozen=True, slots=True)
class _Columns:
    ts: np.ndarray
    card: np.ndarray
    merchant: np.ndarray
    amount: np.ndarray  # in the merchant country's currency
    channel: np.ndarray
    pattern: np.ndarray


def _categorical_rows(rng: np.random.Generator, cdf: np.ndarray) -> np.ndarray:
    """One draw per row of a matrix of cumulative probabilities."""
    u = rng.random((cdf.shape[0],))
    return np.minimum((u[:, None] > cdf).sum(axis=1), cdf.shape[1] - 1)


def _uniform_member(
    rng: np.random.Generator, pools: list[np.ndarray], country: np.ndarray
) -> np.ndarray:
    """For each row a random merchant of its country's pool."""
    out = np.empty(country.size, dtype=np.int64)
    for c in np.unique(country):
        rows = np.flatnonzero(country == c)
        out[rows] = pools[c][rng.integers(0, pools[c].size, rows.size)]
    return out


def _legitimate(
    rng: np.random.Generator,
    config: SimulationConfig,
    population: Population,
    catalog: MerchantCatalog,
) -> _Columns:
    days = config.days
    span = days - population.activation
    # Poisson arrivals thinned by the weekday profile.
    peak = WEEKDAY_PROFILE.max()
    counts = rng.poisson(population.rate * span * peak / WEEKDAY_PROFILE.mean())
    card = np.repeat(np.arange(population.home.size), counts)
    day = np.floor(population.activation[card] + rng.random(card.size) * span[card]).astype(
        np.int64
    )
    weekday = (config.start.weekday() + day) % 7
    keep = rng.random(card.size) < WEEKDAY_PROFILE[weekday] / peak
    card, day = card[keep], day[keep]

    hour = rng.choice(24, size=card.size, p=HOUR_PROFILE / HOUR_PROFILE.sum())
    hour = np.where(population.night_shift[card], (hour + NIGHT_SHIFT_HOURS) % 24, hour)
    local = day * DAY + hour * 3600 + rng.integers(0, 3600, card.size)
    inside = local < days * DAY
    card, local = card[inside], local[inside]
    home = population.home[card]
    ts = config.start_epoch + local - UTC_OFFSET_SECONDS[home]
    drift_epoch = config.drift_epoch
    drifted = np.zeros(card.size, dtype=bool) if drift_epoch is None else ts >= drift_epoch

    cdf = population.channel_cdf[card]
    if config.scenario == "channel-shift":
        mix = np.diff(cdf, prepend=0.0, axis=1)
        shifted = (1.0 - config.ecom_shift) * mix
        shifted[:, ECOM] += config.ecom_shift
        cdf = np.where(drifted[:, None], np.cumsum(shifted, axis=1), cdf)
    channel = _categorical_rows(rng, cdf)

    # Where: at home, abroad on a trip (card present), or a foreign web shop.
    country = home.copy()
    local_day = local / DAY
    travelling = (
        (population.trip_country[card] >= 0)
        & (local_day >= population.trip_start[card])
        & (local_day < population.trip_end[card])
        & ((channel == POS) | (channel == ATM))
    )
    country[travelling] = population.trip_country[card][travelling]
    travel_weight = np.array([c.travel_weight for c in COUNTRIES])
    cross_border = (channel == ECOM) & (rng.random(card.size) < CROSS_BORDER_ECOM_SHARE)
    country[cross_border] = rng.choice(
        len(COUNTRIES), size=int(cross_border.sum()), p=travel_weight / travel_weight.sum()
    )

    usual = population.usual[card, _categorical_rows(rng, population.usual_cdf[card])]
    other = _uniform_member(rng, catalog.regular, country)
    at_usual = (country == home) & (rng.random(card.size) < USUAL_MERCHANT_SHARE)
    merchant = np.where(at_usual, usual, other)
    small_digital = (channel == ECOM) & (rng.random(card.size) < SMALL_DIGITAL_SHARE)
    merchant[small_digital] = _uniform_member(rng, catalog.digital, country[small_digital])
    high_risk = (
        population.high_risk_user[card]
        & (channel != ATM)
        & (country == home)
        & (rng.random(card.size) < HIGH_RISK_USE_SHARE)
    )
    merchant[high_risk] = _uniform_member(rng, catalog.high_risk, country[high_risk])
    is_atm = channel == ATM
    merchant[is_atm] = _uniform_member(rng, catalog.atms, country[is_atm])

    eur = np.exp(population.mu[card] + population.sigma[card] * rng.standard_normal(card.size))
    eur *= catalog.amount_factor[merchant]
    eur[small_digital] = rng.choice(SMALL_DIGITAL_EUR, size=int(small_digital.sum()))
    eur[is_atm] = rng.choice(CASH_EUR, size=int(is_atm.sum()), p=CASH_P)
    if config.scenario == "amount-inflation":
        eur[drifted] *= config.inflation_factor
    amount = np.where(is_atm, to_cash_amount(eur, country), to_local_amount(eur, country))
    return _Columns(
        ts=ts.astype(np.int64),
        card=card,
        merchant=merchant,
        amount=amount,
        channel=channel.astype(np.int64),
        pattern=np.full(card.size, LEGIT),
    )


def _convert(rows: Rows, catalog: MerchantCatalog) -> _Columns:
    merchant = np.array(rows.merchant, dtype=np.int64)
    country = catalog.country[merchant]
    return _Columns(
        ts=np.array(rows.ts, dtype=np.int64),
        card=np.array(rows.card, dtype=np.int64),
        merchant=merchant,
        amount=to_local_amount(np.array(rows.eur, dtype=np.float64), country),
        channel=np.array(rows.channel, dtype=np.int64),
        pattern=np.array(rows.pattern, dtype=np.int64),
    )


def _concat(*parts: _Columns) -> _Columns:
    return _Columns(
        *(
            np.concatenate([getattr(p, name) for p in parts])
            for name in (f.name for f in fields(_Columns))
        )
    )


def _offset_text(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    return f"{sign}{abs(seconds) // 3600:02d}:{abs(seconds) % 3600 // 60:02d}"


def _assemble(
    config: SimulationConfig,
    population: Population,
    catalog: MerchantCatalog,
    columns: _Columns,
) -> SimulatedBatch:
    # Event-time order; ties keep generation order, so the result is deterministic.
    order = np.lexsort((np.arange(columns.ts.size), columns.ts))
    ts = columns.ts[order]
    card = columns.card[order]
    merchant = columns.merchant[order]
    channel = columns.channel[order]
    pattern = columns.pattern[order]
    home = population.home[card]
    # event_time in the card's home local time: local clock text plus the fixed offset.
    offsets = UTC_OFFSET_SECONDS[home]
    clock = np.datetime_as_string((ts + offsets).astype("datetime64[s]"), unit="s")
    offset_text = [_offset_text(int(s)) for s in UTC_OFFSET_SECONDS]
    country = catalog.country[merchant]

    prefix = config.transaction_prefix
    width = max(8, len(str(ts.size)))
    ids = [f"{prefix}-{i:0{width}d}" for i in range(ts.size)]
    card_ids = [p.card_id for p in population.profiles]
    codes = [c.code for c in COUNTRIES]
    currencies = [c.currency for c in COUNTRIES]
    transactions: list[dict[str, object]] = [
        {
            "transaction_id": tid,
            "card_id": card_ids[c],
            "merchant_id": catalog.ids[m],
            "amount": amt,
            "currency": currencies[k],
            "country": codes[k],
            "mcc": catalog.mccs[m],
            "channel": CHANNELS[ch],
            "event_time": f"{clk}{offset_text[h]}",
        }
        for tid, c, m, amt, k, ch, clk, h in zip(
            ids,
            card.tolist(),
            merchant.tolist(),
            columns.amount[order].tolist(),
            country.tolist(),
            channel.tolist(),
            clock.tolist(),
            home.tolist(),
            strict=True,
        )
    ]
    labels = [
        Label(tid, p != LEGIT, PATTERNS[p]) for tid, p in zip(ids, pattern.tolist(), strict=True)
    ]
    return SimulatedBatch(
        config=config,
        transactions=transactions,
        labels=labels,
        timestamps=ts,
        cards={p.card_id: p for p in population.profiles},
    )
