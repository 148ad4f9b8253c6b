"""Card-fraud features: pure functions over a transaction and its card's state, and the state update.

Preprocess runs these on the stream and training replays the simulated stream
through the very same functions, so serving and training cannot disagree.
Features describe a transaction *before* it is applied to its card's state.
State is O(1) per card: exponentially decayed counters and running moments
instead of transaction lists, so it fits in one small DynamoDB item.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace

from streamscore.preprocess.contracts import Transaction

FEATURE_SCHEMA = "card-v1"

# The model's features in model order, each with the sentence the model card carries for it
# (what an analyst reads next to a reason code).
FEATURE_DESCRIPTIONS: dict[str, str] = {
    "amount_log": "The transaction amount (log1p of the amount).",
    "hour_sin": "The local hour of day (event time at its own offset), sine on the unit circle.",
    "hour_cos": "The local hour of day (event time at its own offset), cosine on the unit circle.",
    "is_night": "The transaction is at night: local hour from 0 to 6.",
    "channel_ecom": "The transaction is e-commerce (card not present).",
    "channel_atm": "The transaction is an ATM withdrawal.",
    "channel_moto": "The transaction is mail or telephone order.",
    "mcc_high_risk": "The merchant's category is a high-risk one.",
    "is_foreign": "The transaction is in another country than the card's home country.",
    "is_first_seen": "The card has no earlier transaction here.",
    "seconds_since_last_log": "The time since the card's previous transaction (log1p seconds).",
    "txn_count_1h": "How many transactions the card made in about the last hour (decayed count).",
    "txn_count_24h": "How many transactions the card made in about the last day (decayed count).",
    "small_ecom_count_1h": (
        "How many small e-commerce transactions the card made in about the last hour "
        "(decayed count)."
    ),
    "foreign_count_24h": (
        "How many foreign transactions the card made in about the last day (decayed count)."
    ),
    "amount_ratio_mean": "The amount against the card's usual amount (its running mean).",
    "amount_zscore": "How unusual the amount is for the card (z-score of its log amount).",
    "same_merchant": "The same merchant as the card's previous transaction.",
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURE_DESCRIPTIONS)

# features that follow the time of day: their distribution over less than a whole day is not
# the all-day baseline's, drift or not (the drift check judges them only over whole days)
CLOCK_FEATURES: frozenset[str] = frozenset({"hour_sin", "hour_cos", "is_night"})

HIGH_RISK_MCCS: frozenset[str] = frozenset(
    {
        "4829",  # wire transfer / money orders
        "5933",  # pawn shops
        "5967",  # direct marketing, inbound telemarketing
        "6051",  # quasi-cash, crypto
        "6211",  # securities brokers
        "7801",  # government-licensed online casinos
        "7802",  # horse / dog racing
        "7995",  # betting, lottery, casino gaming
    }
)

SMALL_AMOUNT = 5.0  # card-testing probes are this small or smaller
HOUR = 3600.0
DAY = 86400.0
MAX_GAP_SECONDS = 90 * DAY  # gaps longer than this carry no more information
MOMENT_ALPHA = 0.05  # weight of a new amount in the running moments, once history is long
ZSCORE_CLIP = 10.0
MIN_STD = 0.1  # floor of the log-amount std, so a card of identical amounts stays finite
NEGLIGIBLE = 1e-12  # decayed counters below this are exactly zero
# The decayed counters (time constant in seconds). Their drift bins stop at COUNTER_RESOLUTION:
# a smaller value only says how many weeks ago the card last did this (e^-4.6 = 0.01, so four
# and a half time constants), which is history, not behaviour, and a card the pipeline has
# seen for days cannot have it (docs/ARCHITECTURE.md, "Drift on a fresh stack").
DECAYED_COUNTERS: dict[str, float] = {
    "txn_count_1h": HOUR,
    "txn_count_24h": DAY,
    "small_ecom_count_1h": HOUR,
    "foreign_count_24h": DAY,
}
COUNTER_RESOLUTION = 0.01
MIN_TYPICAL_AMOUNT = 0.01  # floor of the typical amount, so sub-cent amounts keep the ratio finite


@dataclass(frozen=True, slots=True)
class CardState:
    """What the pipeline remembers about one card; one EntityStateTable item."""

    card_id: str
    home_country: str
    txn_count: int
    last_event_ts: float  # epoch seconds of the latest applied transaction
    last_merchant_id: str
    count_1h: float  # decayed counters, as of last_event_ts
    count_24h: float
    small_ecom_1h: float
    foreign_24h: float
    log_amount_mean: float
    log_amount_var: float
    # event time of the first transaction the pipeline applied to the card; 0.0 in state written
    # before this field existed, which makes such cards as old as can be (they were seen before)
    first_event_ts: float = 0.0

    def to_dict(self) -> dict[str, str | int | float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> CardState:
        return cls(
            card_id=str(data["card_id"]),
            home_country=str(data["home_country"]),
            txn_count=int(str(data["txn_count"])),
            last_event_ts=float(str(data["last_event_ts"])),
            last_merchant_id=str(data["last_merchant_id"]),
            count_1h=float(str(data["count_1h"])),
            count_24h=float(str(data["count_24h"])),
            small_ecom_1h=float(str(data["small_ecom_1h"])),
            foreign_24h=float(str(data["foreign_24h"])),
            log_amount_mean=float(str(data["log_amount_mean"])),
            log_amount_var=float(str(data["log_amount_var"])),
            first_event_ts=float(str(data.get("first_event_ts", 0.0))),
        )


def _decay(value: float, elapsed: float, time_constant: float) -> float:
    # Below NEGLIGIBLE a counter is zero: it keeps stored state free of denormal numbers.
    decayed = value * math.exp(-elapsed / time_constant)
    return decayed if decayed >= NEGLIGIBLE else 0.0


def _is_small_ecom(txn: Transaction) -> bool:
    return txn.channel == "ecom" and txn.amount <= SMALL_AMOUNT


def build_features(txn: Transaction, state: CardState | None) -> dict[str, float]:
    """The feature vector of `txn` given its card's state before it (None: first seen)."""
    hour = txn.event_time.hour + txn.event_time.minute / 60.0
    angle = 2.0 * math.pi * hour / 24.0
    log_amount = math.log1p(txn.amount)
    features = {
        "amount_log": log_amount,
        "hour_sin": math.sin(angle),
        "hour_cos": math.cos(angle),
        "is_night": float(txn.event_time.hour < 6),
        "channel_ecom": float(txn.channel == "ecom"),
        "channel_atm": float(txn.channel == "atm"),
        "channel_moto": float(txn.channel == "moto"),
        "mcc_high_risk": float(txn.mcc in HIGH_RISK_MCCS),
    }
    if state is None:
        features |= {
            "is_foreign": 0.0,
            "is_first_seen": 1.0,
            "seconds_since_last_log": math.log1p(MAX_GAP_SECONDS),
            "txn_count_1h": 0.0,
            "txn_count_24h": 0.0,
            "small_ecom_count_1h": 0.0,
            "foreign_count_24h": 0.0,
            "amount_ratio_mean": 1.0,
            "amount_zscore": 0.0,
            "same_merchant": 0.0,
        }
        return features

    # Out-of-order event times within a card count as simultaneous.
    elapsed = max(0.0, txn.event_time.timestamp() - state.last_event_ts)
    std = max(math.sqrt(state.log_amount_var), MIN_STD)
    zscore = (log_amount - state.log_amount_mean) / std if state.txn_count >= 2 else 0.0
    features |= {
        "is_foreign": float(txn.country != state.home_country),
        "is_first_seen": 0.0,
        "seconds_since_last_log": math.log1p(min(elapsed, MAX_GAP_SECONDS)),
        "txn_count_1h": _decay(state.count_1h, elapsed, HOUR),
        "txn_count_24h": _decay(state.count_24h, elapsed, DAY),
        "small_ecom_count_1h": _decay(state.small_ecom_1h, elapsed, HOUR),
        "foreign_count_24h": _decay(state.foreign_24h, elapsed, DAY),
        "amount_ratio_mean": txn.amount
        / max(math.expm1(state.log_amount_mean), MIN_TYPICAL_AMOUNT),
        "amount_zscore": max(-ZSCORE_CLIP, min(ZSCORE_CLIP, zscore)),
        "same_merchant": float(txn.merchant_id == state.last_merchant_id),
    }
    return features


def advance_state(state: CardState | None, txn: Transaction) -> CardState:
    """The card's state after applying `txn`; `txn_count` numbers the card's applications."""
    now = txn.event_time.timestamp()
    log_amount = math.log1p(txn.amount)
    if state is None:
        return CardState(
            card_id=txn.card_id,
            home_country=txn.country,
            txn_count=1,
            last_event_ts=now,
            last_merchant_id=txn.merchant_id,
            count_1h=1.0,
            count_24h=1.0,
            small_ecom_1h=float(_is_small_ecom(txn)),
            foreign_24h=0.0,
            log_amount_mean=log_amount,
            log_amount_var=0.0,
            first_event_ts=now,
        )
    elapsed = max(0.0, now - state.last_event_ts)
    count = state.txn_count + 1
    # Exact running moments for the first transactions, exponential after.
    weight = max(MOMENT_ALPHA, 1.0 / count)
    delta = log_amount - state.log_amount_mean
    mean = state.log_amount_mean + weight * delta
    var = (1.0 - weight) * (state.log_amount_var + weight * delta * delta)
    return replace(
        state,
        txn_count=count,
        last_event_ts=max(now, state.last_event_ts),
        last_merchant_id=txn.merchant_id,
        count_1h=_decay(state.count_1h, elapsed, HOUR) + 1.0,
        count_24h=_decay(state.count_24h, elapsed, DAY) + 1.0,
        small_ecom_1h=_decay(state.small_ecom_1h, elapsed, HOUR) + float(_is_small_ecom(txn)),
        foreign_24h=_decay(state.foreign_24h, elapsed, DAY)
        + float(txn.country != state.home_country),
        log_amount_mean=mean,
        log_amount_var=var,
    )


def card_age_seconds(txn: Transaction, state: CardState | None) -> float:
    """How long the pipeline has known the card at `txn`: seconds since its first applied transaction.

    0 for the card's first transaction (and for an event time earlier than that first one).
    Not a model feature: the drift check conditions its baseline on it, so a fresh stack or a
    new population of cards is compared with cards of the same history depth.
    """
    if state is None:
        return 0.0
    return max(0.0, txn.event_time.timestamp() - state.first_event_ts)


def feature_vector(features: dict[str, float]) -> list[float]:
    """The features in model order (FEATURE_NAMES)."""
    return [features[name] for name in FEATURE_NAMES]


def replay(transactions: Iterable[Transaction]) -> Iterator[tuple[dict[str, float], float]]:
    """Features and card age of each transaction of an event-time-ordered stream (training path).

    Per-card state is kept in memory and starts empty, as on a freshly deployed stack.
    """
    states: dict[str, CardState] = {}
    for txn in transactions:
        state = states.get(txn.card_id)
        yield build_features(txn, state), card_age_seconds(txn, state)
        states[txn.card_id] = advance_state(state, txn)


def replay_features(transactions: Iterable[Transaction]) -> Iterator[dict[str, float]]:
    """Features of an event-time-ordered stream, keeping per-card state in memory (training path)."""
    for features, _ in replay(transactions):
        yield features
