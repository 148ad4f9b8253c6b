"""Fraud patterns with ground truth: each episode hits one card and emits one or more transactions.

`card_testing`, `account_takeover` and `high_risk_mcc` are the patterns the model is trained on;
`moto_burst` only appears in the `new-fraud-pattern` drift scenario.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.population import ECOM, MOTO, POS, Population
from simulator.world import COUNTRIES, COUNTRY_INDEX, UTC_OFFSET_SECONDS, MerchantCatalog

PATTERNS: tuple[str, ...] = (
    "legit",
    "card_testing",
    "account_takeover",
    "high_risk_mcc",
    "moto_burst",
)
LEGIT, CARD_TESTING, ACCOUNT_TAKEOVER, HIGH_RISK_MCC, MOTO_BURST = range(5)
TRAINING_PATTERNS: tuple[str, ...] = PATTERNS[1:4]
# Share of fraudulent transactions per trained pattern (card testing is many rows per episode).
PATTERN_SHARES: dict[int, float] = {CARD_TESTING: 0.45, ACCOUNT_TAKEOVER: 0.25, HIGH_RISK_MCC: 0.30}
TESTER_HUBS: tuple[str, ...] = ("US", "GB", "NL")  # where card testers find their ecom merchants
MOTO_BURST_HOMES: tuple[str, ...] = ("US", "GB", "DE")  # one compromised merchant in each
DAY = 86_400
ATO_NIGHT_SHARE = 0.75
ATO_FOREIGN_SHARE = 0.8
ATO_MIN_HISTORY = 3
CARD_TESTING_LARGER_PROBES = 0.2  # episodes whose probes (5-15 EUR) are above the usual "tiny"


@dataclass(slots=True)
class Rows:
    """Transactions under construction, column by column (amounts in EUR until converted)."""

    ts: list[int] = field(default_factory=list)  # UTC epoch seconds
    card: list[int] = field(default_factory=list)
    merchant: list[int] = field(default_factory=list)
    eur: list[float] = field(default_factory=list)
    channel: list[int] = field(default_factory=list)
    pattern: list[int] = field(default_factory=list)

    def add(
        self, ts: int, card: int, merchant: int, eur: float, channel: int, pattern: int
    ) -> None:
        self.ts.append(ts)
        self.card.append(card)
        self.merchant.append(merchant)
        self.eur.append(eur)
        self.channel.append(channel)
        self.pattern.append(pattern)

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True, slots=True)
class FraudContext:
    """What episode generators need to know about the world and the period."""

    rng: np.random.Generator
    population: Population
    catalog: MerchantCatalog
    start_epoch: int  # UTC epoch of the start date's midnight; cards' local midnights are offset
    days: float
    legit_times: list[np.ndarray]  # per card: its legitimate transactions' UTC epochs, sorted

    def epoch(self, card: int, local_seconds: float) -> int:
        """UTC epoch of a moment given in the card's home local time since the start."""
        home = self.population.home[card]
        return int(self.start_epoch + int(local_seconds) - UTC_OFFSET_SECONDS[home])

    def pick_card(self, earliest_day: float, homes: np.ndarray | None = None) -> tuple[int, float]:
        """A card (optionally issued in `homes`) and a day at least one day after its activation;
        an episode starting late on the last day may run a little past the period."""
        eligible = np.ones(self.population.home.size, dtype=bool)
        if homes is not None:
            eligible &= np.isin(self.population.home, homes)
        lo = np.maximum(self.population.activation + 1.0, earliest_day)
        eligible &= lo < self.days
        candidates = np.flatnonzero(eligible)
        if candidates.size == 0:
            raise ValueError(
                "no card is active long enough for a fraud episode; simulate more days"
            )
        card = int(self.rng.choice(candidates))
        return card, float(self.rng.uniform(lo[card], self.days))

    def other_country(self, home: int, weights: str) -> int:
        p = np.array([getattr(c, weights) for c in COUNTRIES])
        p[home] = 0.0
        return int(self.rng.choice(len(COUNTRIES), p=p / p.sum()))

    def pick(self, merchants: np.ndarray) -> int:
        return int(merchants[self.rng.integers(merchants.size)])

    def pick_channel(self, shares: dict[int, float]) -> int:
        channels = list(shares)
        return int(channels[self.rng.choice(len(channels), p=list(shares.values()))])


def card_testing(ctx: FraudContext, rows: Rows, earliest_day: float) -> None:
    """A burst of tiny e-commerce probes within minutes, mostly at merchants new to the card,
    sometimes followed by one larger purchase once a probe went through."""
    rng = ctx.rng
    card, day = ctx.pick_card(earliest_day)
    home = int(ctx.population.home[card])
    hubs = [COUNTRY_INDEX[c] for c in TESTER_HUBS] + [home]
    t = ctx.epoch(card, np.floor(day) * DAY + rng.uniform(0, DAY))
    single = ctx.pick(ctx.catalog.digital[int(rng.choice(hubs))])
    rotate = rng.random() < 0.6
    mean_gap = rng.uniform(15.0, 300.0)
    low, high = (5.0, 15.0) if rng.random() < CARD_TESTING_LARGER_PROBES else (0.5, 4.99)
    for _ in range(min(40, 3 + int(rng.poisson(9.0)))):
        merchant = ctx.pick(ctx.catalog.digital[int(rng.choice(hubs))]) if rotate else single
        eur = low if rng.random() < 0.3 else float(rng.uniform(low, high))
        rows.add(t, card, merchant, eur, ECOM, CARD_TESTING)
        t += 1 + int(rng.exponential(mean_gap))
    if rng.random() < 0.3:
        merchant = ctx.pick(ctx.catalog.regular[int(rng.choice(hubs))])
        eur = float(rng.lognormal(np.log(300.0), 0.5))
        rows.add(t + int(rng.uniform(120, 1800)), card, merchant, eur, ECOM, CARD_TESTING)


def account_takeover(ctx: FraudContext, rows: Rows, earliest_day: float) -> None:
    """After a normal history (ATO_MIN_HISTORY legitimate transactions at least), one to a few
    large purchases, typically abroad at the card's local night over ecom/moto; some takeovers
    are domestic, some happen in daytime."""
    rng = ctx.rng
    for _ in range(1000):
        card, day = ctx.pick_card(max(earliest_day, 2.0))
        night = rng.random() < ATO_NIGHT_SHARE
        hour = rng.uniform(0.0, 5.5) if night else rng.uniform(8.0, 24.0)
        t = ctx.epoch(card, np.floor(day) * DAY + hour * 3600)
        if np.searchsorted(ctx.legit_times[card], t) >= ATO_MIN_HISTORY:
            break
    else:
        raise ValueError("no card has enough history for an account takeover; simulate more")
    home = int(ctx.population.home[card])
    abroad = rng.random() < ATO_FOREIGN_SHARE
    country = ctx.other_country(home, "fraud_weight") if abroad else home
    typical = float(np.exp(ctx.population.mu[card]))
    for _ in range(min(4, 1 + int(rng.poisson(0.6)))):
        merchant = ctx.pick(ctx.catalog.regular[country])
        channel = ctx.pick_channel({ECOM: 0.6, MOTO: 0.25, POS: 0.15})
        eur = max(typical * float(rng.lognormal(np.log(8.0), 0.7)), float(rng.uniform(100, 400)))
        rows.add(t, card, merchant, eur, channel, ACCOUNT_TAKEOVER)
        t += int(rng.uniform(120, 1800))


def high_risk_mcc(ctx: FraudContext, rows: Rows, earliest_day: float) -> None:
    """Elevated amounts at betting, crypto, wire-transfer and telemarketing merchants."""
    rng = ctx.rng
    card, day = ctx.pick_card(earliest_day)
    home = int(ctx.population.home[card])
    t = ctx.epoch(card, np.floor(day) * DAY + rng.uniform(0, DAY))
    for _ in range(min(6, 1 + int(rng.poisson(1.2)))):
        country = home if rng.random() < 0.5 else ctx.other_country(home, "fraud_weight")
        merchant = ctx.pick(ctx.catalog.high_risk[country])
        channel = ctx.pick_channel({ECOM: 0.55, MOTO: 0.25, POS: 0.2})
        eur = float(rng.lognormal(np.log(200.0), 0.9))
        rows.add(t, card, merchant, eur, channel, HIGH_RISK_MCC)
        t += int(rng.uniform(300, 6 * 3600))


def moto_burst(
    ctx: FraudContext, rows: Rows, earliest_day: float, merchants: dict[int, int]
) -> None:
    """New pattern (not in training): a burst of mid-size mail/phone-order purchases at one of a
    few compromised domestic merchants, in daytime; nothing foreign, nothing tiny, nothing night."""
    rng = ctx.rng
    homes = np.array(list(merchants))
    card, day = ctx.pick_card(earliest_day, homes)
    merchant = merchants[int(ctx.population.home[card])]
    t = ctx.epoch(card, np.floor(day) * DAY + rng.uniform(9.0, 21.0) * 3600)
    for _ in range(min(12, 3 + int(rng.poisson(3.0)))):
        rows.add(t, card, merchant, float(rng.uniform(60.0, 400.0)), MOTO, MOTO_BURST)
        t += 30 + int(rng.exponential(480.0))


def moto_burst_merchants(rng: np.random.Generator, catalog: MerchantCatalog) -> dict[int, int]:
    """One compromised merchant (electronics, retail, department store) per MOTO_BURST_HOMES."""
    chosen = {}
    for code in MOTO_BURST_HOMES:
        country = COUNTRY_INDEX[code]
        pool = [m for m in catalog.regular[country] if catalog.mccs[m] in {"5732", "5999", "5311"}]
        chosen[country] = int(rng.choice(pool))
    return chosen


def fraud_rows(ctx: FraudContext, n_fraud: int, earliest_day: float) -> Rows:
    """About `n_fraud` fraudulent transactions of the trained patterns (each pattern at least once)."""
    rows = Rows()
    if n_fraud <= 0:
        return rows
    generators = {
        CARD_TESTING: card_testing,
        ACCOUNT_TAKEOVER: account_takeover,
        HIGH_RISK_MCC: high_risk_mcc,
    }
    for pattern, generate in generators.items():
        target = len(rows) + max(1, round(PATTERN_SHARES[pattern] * n_fraud))
        while len(rows) < target:
            generate(ctx, rows, earliest_day)
    return rows
