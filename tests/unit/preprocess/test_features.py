"""Card features: hand-checked values, the state update, and training/serving parity."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from streamscore.core.items import from_item_value, to_item_value
from streamscore.preprocess.contracts import Transaction
from streamscore.preprocess.features import (
    DAY,
    FEATURE_NAMES,
    HOUR,
    MOMENT_ALPHA,
    CardState,
    advance_state,
    build_features,
    card_age_seconds,
    feature_vector,
    replay_features,
)

CET = timezone(timedelta(hours=1))
T0 = datetime(2026, 3, 2, 14, 0, 0, tzinfo=CET)


def txn(**overrides: Any) -> Transaction:
    fields: dict[str, Any] = {
        "transaction_id": "t1",
        "card_id": "card_1",
        "merchant_id": "m_1",
        "amount": 100.0,
        "currency": "EUR",
        "country": "DE",
        "mcc": "5411",
        "channel": "pos",
        "event_time": T0,
    }
    return Transaction.model_validate(fields | overrides, strict=False)


def test_first_seen_card_has_documented_defaults() -> None:
    features = build_features(txn(), None)

    assert list(features) == list(FEATURE_NAMES)
    assert features["is_first_seen"] == 1.0
    assert features["amount_log"] == math.log1p(100.0)
    assert features["txn_count_1h"] == 0.0
    assert features["amount_ratio_mean"] == 1.0
    assert features["amount_zscore"] == 0.0
    assert features["is_foreign"] == 0.0


def test_hour_uses_the_event_times_own_offset() -> None:
    # 14:00 at +01:00 is 13:00 UTC; the feature must see 14:00 local time.
    features = build_features(txn(), None)

    assert math.isclose(features["hour_sin"], math.sin(2 * math.pi * 14 / 24))
    assert math.isclose(features["hour_cos"], math.cos(2 * math.pi * 14 / 24))
    assert features["is_night"] == 0.0
    night = build_features(txn(event_time=datetime(2026, 3, 2, 3, 30, tzinfo=CET)), None)
    assert night["is_night"] == 1.0


def test_channel_and_mcc_flags() -> None:
    features = build_features(txn(channel="ecom", mcc="7995"), None)

    assert (features["channel_ecom"], features["channel_atm"], features["channel_moto"]) == (
        1.0,
        0.0,
        0.0,
    )
    assert features["mcc_high_risk"] == 1.0
    assert build_features(txn(mcc="5411"), None)["mcc_high_risk"] == 0.0


def test_decayed_counters_hand_checked() -> None:
    # given two transactions 30 minutes apart
    first = txn()
    state = advance_state(None, first)
    second = txn(transaction_id="t2", event_time=T0 + timedelta(minutes=30), country="FR")

    # when
    features = build_features(second, state)

    # then the 1 h counter decayed by exp(-0.5), the 24 h one by exp(-1/48)
    assert math.isclose(features["txn_count_1h"], math.exp(-1800 / HOUR))
    assert math.isclose(features["txn_count_24h"], math.exp(-1800 / DAY))
    assert math.isclose(features["seconds_since_last_log"], math.log1p(1800))
    assert features["is_foreign"] == 1.0
    assert features["same_merchant"] == 1.0
    assert features["is_first_seen"] == 0.0
    # with one earlier transaction, the amount ratio is exact and the z-score not yet defined
    assert math.isclose(features["amount_ratio_mean"], 1.0)
    assert features["amount_zscore"] == 0.0


def test_state_update_hand_checked() -> None:
    first = txn(amount=10.0, channel="ecom")
    state1 = advance_state(None, first)
    assert state1 == CardState(
        card_id="card_1",
        home_country="DE",
        txn_count=1,
        last_event_ts=T0.timestamp(),
        last_merchant_id="m_1",
        count_1h=1.0,
        count_24h=1.0,
        small_ecom_1h=0.0,  # 10 > SMALL_AMOUNT
        foreign_24h=0.0,
        log_amount_mean=math.log1p(10.0),
        log_amount_var=0.0,
        first_event_ts=T0.timestamp(),
    )

    second = txn(
        transaction_id="t2",
        amount=1.0,
        channel="ecom",
        country="US",
        merchant_id="m_2",
        event_time=T0 + timedelta(hours=1),
    )
    state2 = advance_state(state1, second)

    # exact moments while the history is short: weight 1/2
    delta = math.log1p(1.0) - math.log1p(10.0)
    assert state2.txn_count == 2
    assert math.isclose(state2.log_amount_mean, math.log1p(10.0) + delta / 2)
    assert math.isclose(state2.log_amount_var, 0.5 * (0.0 + 0.5 * delta * delta))
    assert math.isclose(state2.count_1h, math.exp(-1.0) + 1.0)
    assert state2.small_ecom_1h == 1.0  # a 1.00 ecom probe
    assert state2.foreign_24h == 1.0
    assert state2.home_country == "DE"  # home stays the first seen country
    assert state2.last_merchant_id == "m_2"
    assert state2.first_event_ts == T0.timestamp()  # the first transaction's, kept


def test_card_age_is_the_time_since_the_first_applied_transaction() -> None:
    # given a card first seen at T0 with a second transaction an hour later
    first = txn()
    state = advance_state(advance_state(None, first), txn(event_time=T0 + timedelta(hours=1)))

    # then its first transaction has age 0, later ones the time since T0, never negative
    assert card_age_seconds(first, None) == 0.0
    assert card_age_seconds(txn(event_time=T0 + timedelta(days=2)), state) == 2 * 86400.0
    assert card_age_seconds(txn(event_time=T0 - timedelta(minutes=5)), state) == 0.0


def test_state_written_before_card_age_existed_reads_as_known_since_ever() -> None:
    # given a stored state item without first_event_ts (written by an older preprocess)
    stored = advance_state(None, txn()).to_dict()
    del stored["first_event_ts"]

    # when it is read back and the card transacts
    state = CardState.from_dict(stored)
    age = card_age_seconds(txn(event_time=T0 + timedelta(hours=1)), state)

    # then the card counts as known since the epoch: the oldest history stratum
    assert state.first_event_ts == 0.0
    assert age == T0.timestamp() + 3600.0


def test_decayed_counters_reach_exact_zero_instead_of_denormals() -> None:
    # given a card idle for 20 days: exp(-480) on the 1 h counter is ~1e-209
    state = advance_state(None, txn())
    later = txn(transaction_id="t2", event_time=T0 + timedelta(days=20))

    features = build_features(later, state)
    after = advance_state(state, later)

    assert features["txn_count_1h"] == 0.0
    assert features["small_ecom_count_1h"] == 0.0
    assert after.count_1h == 1.0
    assert features["txn_count_24h"] == pytest.approx(math.exp(-20))


def test_moments_become_exponential_after_long_history() -> None:
    state = advance_state(None, txn(amount=100.0))
    for i in range(1, 200):
        state = advance_state(state, txn(transaction_id=f"t{i}", amount=100.0))
    before = state.log_amount_mean
    after = advance_state(state, txn(transaction_id="big", amount=10_000.0))

    expected = before + MOMENT_ALPHA * (math.log1p(10_000.0) - before)
    assert math.isclose(after.log_amount_mean, expected)


def test_out_of_order_event_time_counts_as_simultaneous() -> None:
    # given
    state = advance_state(None, txn())
    earlier = txn(transaction_id="t0", event_time=T0 - timedelta(hours=2))

    # when
    features = build_features(earlier, state)

    # then
    assert features["seconds_since_last_log"] == 0.0
    assert features["txn_count_1h"] == 1.0
    assert advance_state(state, earlier).last_event_ts == T0.timestamp()


def test_card_testing_burst_raises_small_ecom_counter() -> None:
    state = None
    for i in range(10):
        probe = txn(
            transaction_id=f"p{i}", amount=1.0, channel="ecom", event_time=T0 + timedelta(minutes=i)
        )
        last = build_features(probe, state)
        state = advance_state(state, probe)

    assert last["small_ecom_count_1h"] > 8.0
    assert last["txn_count_1h"] > 8.0


def test_feature_vector_is_in_model_order() -> None:
    features = build_features(txn(), None)

    assert feature_vector(features) == [features[n] for n in FEATURE_NAMES]
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES))


# ---- training path == streaming path -------------------------------------------------------


def stream_in_batches(transactions: list[Transaction], cuts: list[int]) -> list[dict[str, float]]:
    """The streaming path: batches, state loaded from and stored to DynamoDB values in between."""
    table: dict[str, dict[str, Any]] = {}  # card_id -> stored item
    out: list[dict[str, float]] = []
    bounds = [0, *sorted(set(cuts)), len(transactions)]
    for start, end in itertools.pairwise(bounds):
        # each batch reads its cards' states once, applies in order, writes back once
        states = {card: CardState.from_dict(from_item_value(item)) for card, item in table.items()}
        for t in transactions[start:end]:
            state = states.get(t.card_id)
            out.append(build_features(t, state))
            states[t.card_id] = advance_state(state, t)
        table = {card: to_item_value(s.to_dict()) for card, s in states.items()}
    return out


transaction_streams = st.lists(
    st.tuples(
        st.sampled_from(["card_a", "card_b", "card_c"]),
        st.floats(min_value=0.01, max_value=1_000_000, allow_nan=False),
        st.sampled_from(["pos", "ecom", "atm", "moto"]),
        st.sampled_from(["DE", "FR", "US"]),
        st.integers(min_value=0, max_value=3 * 86400),  # seconds since T0, then sorted
        st.sampled_from(["m_1", "m_2"]),
        st.sampled_from(["5411", "7995"]),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(rows=transaction_streams, cuts=st.lists(st.integers(min_value=0, max_value=60)))
def test_training_replay_and_batched_streaming_give_identical_features(
    rows: list[tuple[str, float, str, str, int, str, str]], cuts: list[int]
) -> None:
    # given
    rows = sorted(rows, key=lambda r: r[4])
    transactions = [
        txn(
            transaction_id=f"t{i}",
            card_id=card,
            amount=amount,
            channel=channel,
            country=country,
            event_time=(T0 + timedelta(seconds=offset)).astimezone(UTC),
            merchant_id=merchant,
            mcc=mcc,
        )
        for i, (card, amount, channel, country, offset, merchant, mcc) in enumerate(rows)
    ]

    # when
    training = list(replay_features(transactions))
    streaming = stream_in_batches(transactions, [c for c in cuts if c < len(transactions)])

    # then
    assert streaming == training  # exact equality, not approximate
    assert all(math.isfinite(v) for f in training for v in f.values())
