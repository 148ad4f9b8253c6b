"""The simulated world: countries (currency, fixed UTC offset, weights), merchant categories, merchants."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Country:
    """A country as the simulator sees it; the UTC offset is fixed (no daylight saving)."""

    code: str
    currency: str
    utc_offset_minutes: int
    units_per_eur: float  # rough exchange rate: amounts are drawn in EUR and converted
    decimals: int  # minor units of the currency
    home_weight: float  # share of the card population issued here
    travel_weight: float  # how often legitimate travellers and cross-border shops go here
    fraud_weight: float  # how often account-takeover purchases are made here


# Issuing mix loosely follows card volumes; a few countries only appear as destinations.
COUNTRIES: tuple[Country, ...] = (
    Country("US", "USD", -300, 1.08, 2, 0.22, 0.14, 0.10),
    Country("GB", "GBP", 0, 0.85, 2, 0.12, 0.12, 0.08),
    Country("DE", "EUR", 60, 1.0, 2, 0.14, 0.08, 0.03),
    Country("FR", "EUR", 60, 1.0, 2, 0.10, 0.10, 0.03),
    Country("ES", "EUR", 60, 1.0, 2, 0.06, 0.10, 0.03),
    Country("IT", "EUR", 60, 1.0, 2, 0.06, 0.08, 0.03),
    Country("NL", "EUR", 60, 1.0, 2, 0.04, 0.06, 0.05),
    Country("PL", "PLN", 60, 4.3, 2, 0.04, 0.03, 0.03),
    Country("SE", "SEK", 60, 11.2, 2, 0.02, 0.02, 0.01),
    Country("CA", "CAD", -300, 1.47, 2, 0.05, 0.04, 0.03),
    Country("MX", "MXN", -360, 18.5, 2, 0.03, 0.05, 0.06),
    Country("BR", "BRL", -180, 5.9, 2, 0.04, 0.02, 0.08),
    Country("IN", "INR", 330, 90.0, 2, 0.04, 0.02, 0.06),
    Country("JP", "JPY", 540, 160.0, 0, 0.03, 0.03, 0.02),
    Country("AU", "AUD", 600, 1.65, 2, 0.03, 0.03, 0.02),
    Country("RO", "RON", 120, 4.97, 2, 0.0, 0.02, 0.10),
    Country("NG", "NGN", 60, 1650.0, 2, 0.0, 0.0, 0.08),
    Country("TH", "THB", 420, 38.0, 2, 0.0, 0.05, 0.06),
    Country("HK", "HKD", 480, 8.4, 2, 0.0, 0.03, 0.10),
)

COUNTRY_INDEX: dict[str, int] = {country.code: i for i, country in enumerate(COUNTRIES)}
UNITS_PER_EUR = np.array([c.units_per_eur for c in COUNTRIES])
DECIMALS = np.array([c.decimals for c in COUNTRIES])
UTC_OFFSET_SECONDS = np.array([60 * c.utc_offset_minutes for c in COUNTRIES], dtype=np.int64)

# Everyday merchant categories: (MCC, share of merchants, typical amount relative to the card's).
EVERYDAY_MCCS: tuple[tuple[str, float, float], ...] = (
    ("5411", 0.18, 1.2),  # grocery
    ("5812", 0.12, 1.3),  # restaurants
    ("5814", 0.10, 0.4),  # fast food
    ("5541", 0.08, 1.5),  # fuel
    ("5912", 0.05, 0.8),  # pharmacy
    ("5311", 0.05, 1.8),  # department stores
    ("5999", 0.07, 1.0),  # miscellaneous retail
    ("5732", 0.04, 3.0),  # electronics
    ("5691", 0.06, 1.8),  # clothing
    ("4111", 0.05, 0.2),  # local transit
    ("4121", 0.03, 0.6),  # taxis
    ("5942", 0.02, 0.7),  # books
    ("7011", 0.02, 4.0),  # hotels
    ("4511", 0.02, 6.0),  # airlines
    ("5818", 0.05, 0.5),  # digital goods
    ("4899", 0.03, 0.6),  # streaming, cable
    ("5944", 0.01, 4.0),  # jewellery
    ("4722", 0.02, 5.0),  # travel agencies
)
DIGITAL_MCC = "5818"
ATM_MCC = "6011"
HIGH_RISK_MCCS: tuple[str, ...] = ("7995", "6051", "4829", "5967", "7801")

REGULAR_PER_COUNTRY = 240
HIGH_RISK_PER_COUNTRY = 10
ATMS_PER_COUNTRY = 8


@dataclass(frozen=True, slots=True)
class MerchantCatalog:
    """Every merchant of the world, as parallel arrays, with per-country index lists."""

    ids: list[str]
    mccs: list[str]
    country: np.ndarray  # country index per merchant
    amount_factor: np.ndarray  # typical amount at this merchant relative to the card's
    regular: list[np.ndarray]  # per country: indices of everyday merchants
    digital: list[np.ndarray]  # per country: everyday merchants selling digital goods
    high_risk: list[np.ndarray]  # per country: merchants in HIGH_RISK_MCCS
    atms: list[np.ndarray]  # per country: ATM operators


def build_catalog(rng: np.random.Generator) -> MerchantCatalog:
    """Merchants of every country: everyday ones by MCC share, high-risk ones, ATMs."""
    everyday_codes = [code for code, _, _ in EVERYDAY_MCCS]
    everyday_share = np.array([share for _, share, _ in EVERYDAY_MCCS])
    everyday_share /= everyday_share.sum()
    everyday_factor = {code: factor for code, _, factor in EVERYDAY_MCCS}

    ids: list[str] = []
    mccs: list[str] = []
    countries: list[int] = []
    factors: list[float] = []
    regular, digital, high_risk, atms = [], [], [], []
    for c_index, country in enumerate(COUNTRIES):

        def add(mcc: str, factor: float, code: str = country.code, ci: int = c_index) -> int:
            ids.append(f"m_{code}_{len(ids):06d}")
            mccs.append(mcc)
            countries.append(ci)
            factors.append(factor)
            return len(ids) - 1

        drawn = rng.choice(len(everyday_codes), size=REGULAR_PER_COUNTRY, p=everyday_share)
        regs = [add(everyday_codes[k], everyday_factor[everyday_codes[k]]) for k in drawn]
        risky_codes = rng.choice(len(HIGH_RISK_MCCS), size=HIGH_RISK_PER_COUNTRY)
        risky = [add(HIGH_RISK_MCCS[k], 1.5) for k in risky_codes]
        regular.append(np.array(regs))
        digital.append(np.array([m for m in regs if mccs[m] == DIGITAL_MCC] or regs[:1]))
        high_risk.append(np.array(risky))
        atms.append(np.array([add(ATM_MCC, 1.0) for _ in range(ATMS_PER_COUNTRY)]))
    return MerchantCatalog(
        ids=ids,
        mccs=mccs,
        country=np.array(countries),
        amount_factor=np.array(factors),
        regular=regular,
        digital=digital,
        high_risk=high_risk,
        atms=atms,
    )


def to_local_amount(eur: np.ndarray, country: np.ndarray) -> np.ndarray:
    """EUR amounts converted to each country's currency and rounded to its minor units (> 0)."""
    local = eur * UNITS_PER_EUR[country]
    decimals = DECIMALS[country]
    scale = 10.0**decimals
    rounded = np.round(local * scale) / scale
    return np.clip(rounded, 1.0 / scale, 999_999.0)


def to_cash_amount(eur: np.ndarray, country: np.ndarray) -> np.ndarray:
    """ATM amounts: EUR amounts converted and rounded to a banknote-like step of the currency."""
    step = 10.0 ** (np.floor(np.log10(UNITS_PER_EUR[country])) + 1)
    local = eur * UNITS_PER_EUR[country]
    return np.clip(np.maximum(step, np.round(local / step) * step), 1.0, 999_999.0)
