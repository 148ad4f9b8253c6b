"""The card population: home country, spend profile, channel mix, usual merchants, habits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.world import COUNTRIES, MerchantCatalog

CHANNELS: tuple[str, ...] = ("pos", "ecom", "atm", "moto")
POS, ECOM, ATM, MOTO = range(4)
BASE_CHANNEL_MIX = np.array([0.62, 0.27, 0.07, 0.04])
CHANNEL_CONCENTRATION = 30.0  # Dirichlet concentration around the base mix
MAX_USUAL_MERCHANTS = 14
NIGHT_SHIFT_SHARE = 0.06  # cards whose daily rhythm is shifted into the night
TRAVELLER_SHARE = 0.08  # cards with one trip abroad during the simulated period
HIGH_RISK_USER_SHARE = 0.06  # cards that legitimately bet, buy crypto or wire money
LATE_ACTIVATION_SHARE = 0.12  # cards issued during the period: first seen later on


@dataclass(frozen=True, slots=True)
class CardProfile:
    """One simulated card (token id, never a PAN) and its habits."""

    card_id: str
    home_country: str
    currency: str
    utc_offset_minutes: int
    amount_mu: float  # log-normal parameters of its everyday amounts, in EUR
    amount_sigma: float
    daily_rate: float  # mean legitimate transactions per day
    channel_mix: tuple[float, float, float, float]  # shares of CHANNELS
    usual_merchants: tuple[str, ...]
    activation_day: float  # days after the start before its first transaction
    night_shift: bool
    high_risk_user: bool
    trip: tuple[str, float, float] | None  # (country, first day, last day) of a trip abroad


@dataclass(frozen=True, slots=True)
class Population:
    """The cards as parallel arrays (for vectorised generation) plus their profiles."""

    profiles: list[CardProfile]
    home: np.ndarray  # country index
    mu: np.ndarray
    sigma: np.ndarray
    rate: np.ndarray
    channel_cdf: np.ndarray  # [cards, 4] cumulative channel mix
    usual: np.ndarray  # [cards, MAX_USUAL_MERCHANTS] merchant indices
    usual_cdf: np.ndarray  # [cards, MAX_USUAL_MERCHANTS] cumulative weights (padding weight 0)
    activation: np.ndarray  # days
    night_shift: np.ndarray
    high_risk_user: np.ndarray
    trip_country: np.ndarray  # -1: no trip
    trip_start: np.ndarray
    trip_end: np.ndarray


def build_population(
    rng: np.random.Generator,
    catalog: MerchantCatalog,
    n_cards: int,
    days: float,
    mean_daily_txns: float,
) -> Population:
    """`n_cards` cards with habits drawn around realistic means."""
    home_weight = np.array([c.home_weight for c in COUNTRIES])
    home = rng.choice(len(COUNTRIES), size=n_cards, p=home_weight / home_weight.sum())
    mu = rng.normal(np.log(30.0), 0.45, n_cards)
    sigma = rng.uniform(0.55, 0.95, n_cards)
    # log-normal rate with the requested mean: E[exp(N(m, s))] = exp(m + s^2 / 2)
    rate = np.exp(rng.normal(np.log(mean_daily_txns) - 0.18, 0.6, n_cards))
    mix = rng.dirichlet(CHANNEL_CONCENTRATION * BASE_CHANNEL_MIX, size=n_cards)

    usual = np.zeros((n_cards, MAX_USUAL_MERCHANTS), dtype=np.int64)
    weights = np.zeros((n_cards, MAX_USUAL_MERCHANTS))
    n_usual = rng.integers(5, MAX_USUAL_MERCHANTS + 1, n_cards)
    for card in range(n_cards):
        k = int(n_usual[card])
        usual[card, :k] = rng.choice(catalog.regular[home[card]], size=k, replace=False)
        weights[card, :k] = 1.0 / np.arange(1, k + 1)  # a few favourites, a long tail
    usual_cdf = np.cumsum(weights, axis=1)
    usual_cdf /= usual_cdf[:, -1:]

    activation = np.where(
        rng.random(n_cards) < LATE_ACTIVATION_SHARE, rng.uniform(0.0, 0.9 * days, n_cards), 0.0
    )
    night_shift = rng.random(n_cards) < NIGHT_SHIFT_SHARE
    high_risk_user = rng.random(n_cards) < HIGH_RISK_USER_SHARE

    travel_weight = np.array([c.travel_weight for c in COUNTRIES])
    traveller = rng.random(n_cards) < TRAVELLER_SHARE
    trip_country = np.full(n_cards, -1)
    trip_start = np.zeros(n_cards)
    trip_end = np.zeros(n_cards)
    for card in np.flatnonzero(traveller).tolist():
        p = travel_weight.copy()
        p[home[card]] = 0.0
        trip_country[card] = rng.choice(len(COUNTRIES), p=p / p.sum())
        trip_start[card] = rng.uniform(activation[card] + 1.0, max(activation[card] + 1.0, days))
        trip_end[card] = trip_start[card] + rng.uniform(2.0, 9.0)

    profiles = [
        CardProfile(
            card_id=f"card_{card:06d}",
            home_country=COUNTRIES[home[card]].code,
            currency=COUNTRIES[home[card]].currency,
            utc_offset_minutes=COUNTRIES[home[card]].utc_offset_minutes,
            amount_mu=float(mu[card]),
            amount_sigma=float(sigma[card]),
            daily_rate=float(rate[card]),
            channel_mix=(
                float(mix[card, 0]),
                float(mix[card, 1]),
                float(mix[card, 2]),
                float(mix[card, 3]),
            ),
            usual_merchants=tuple(catalog.ids[m] for m in usual[card, : n_usual[card]]),
            activation_day=float(activation[card]),
            night_shift=bool(night_shift[card]),
            high_risk_user=bool(high_risk_user[card]),
            trip=(
                None
                if trip_country[card] < 0
                else (
                    COUNTRIES[trip_country[card]].code,
                    float(trip_start[card]),
                    float(trip_end[card]),
                )
            ),
        )
        for card in range(n_cards)
    ]
    return Population(
        profiles=profiles,
        home=home,
        mu=mu,
        sigma=sigma,
        rate=rate,
        channel_cdf=np.cumsum(mix, axis=1),
        usual=usual,
        usual_cdf=usual_cdf,
        activation=activation,
        night_shift=night_shift,
        high_risk_user=high_risk_user,
        trip_country=trip_country,
        trip_start=trip_start,
        trip_end=trip_end,
    )
