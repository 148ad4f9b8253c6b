"""Count items: what a fact adds, as top-level numbers DynamoDB can ADD, read back the same."""

from __future__ import annotations

from collections import Counter

import hypothesis.strategies as st
from hypothesis import given

from streamscore.core.monitoring import (
    MISSING,
    OUT_OF_RANGE,
    PREDICTIONS,
    CountKey,
    Counts,
    Fact,
    Tally,
    prediction_counts,
    quarantine_counts,
    shadow_counts,
    summed,
)
from streamscore.core.quality import quality_bin


def test_every_kind_of_count_reads_back_from_its_item_attributes() -> None:
    # given the counts of a few predictions (bins, decisions, strata) and a quarantined record
    counts = Counts()
    counts.add(prediction_counts("approve", [0, 3, MISSING], stratum=0))
    counts.add(prediction_counts("decline", [1, 3, OUT_OF_RANGE], stratum=4))
    counts.add(prediction_counts("approve", [1, 2, 0], stratum=4))
    counts.add(quarantine_counts("score", "undecodable"))

    # when they go through an item's attributes
    attributes = counts.attributes()
    again = Counts.from_item({"pk": "COUNT#...", "sk": "COUNT", "kind": "PRED"} | attributes)

    # then nothing is lost or invented
    assert again == counts
    assert attributes["h0"] == 1 and attributes["h4"] == 2
    assert again.history == Counter({0: 1, 4: 2})
    assert all(isinstance(v, int) and v > 0 for v in attributes.values())


def test_a_prediction_without_a_stratum_adds_no_history_attribute() -> None:
    attributes = prediction_counts("review", [2, 2]).counts().attributes()

    assert not any(name.startswith("h") for name in attributes)
    assert attributes["n"] == 1 and attributes["d_review"] == 1


def _counted_alone(tally: Tally) -> Counts:
    """What one fact adds, counted here without the module's summing: the reference."""
    return Counts(
        n=1,
        decisions=Counter([tally.decision] if tally.decision is not None else []),
        reasons=Counter([tally.reason] if tally.reason is not None else []),
        bins=Counter(enumerate(tally.bins)),
        history=Counter([tally.stratum] if tally.stratum is not None else []),
        pairs=Counter([tally.pair] if tally.pair is not None else []),
        joint=Counter([tally.joint] if tally.joint is not None else []),
    )


_decisions = st.sampled_from(["approve", "review", "decline"])
_bin = st.sampled_from([0, 1, 5, MISSING, OUT_OF_RANGE])


def _one_fact(width: st.SearchStrategy[int]) -> st.SearchStrategy[Tally]:
    rows = width.flatmap(lambda n: st.lists(_bin, min_size=n, max_size=n))
    strata = st.none() | st.integers(min_value=0, max_value=10)
    return st.one_of(
        st.builds(prediction_counts, _decisions, rows, strata),
        st.builds(shadow_counts, _decisions, rows, strata, _decisions, st.tuples(_bin, _bin)),
        st.builds(
            quarantine_counts, st.sampled_from(["preprocess", "score"]), st.sampled_from(["a", "b"])
        ),
    )


@given(
    st.integers(min_value=0, max_value=6).flatmap(
        # one model's facts (every row as wide), or rows of any width
        lambda n: st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=2),
                _one_fact(st.just(n) | st.integers(min_value=0, max_value=6)),
            ),
            max_size=40,
        )
    )
)
def test_facts_sum_per_count_item_as_adding_their_counts_one_by_one_does(
    facts: list[tuple[int, Tally]],
) -> None:
    # given: facts spread over three count items, some adding to a second item as well
    keys = [CountKey(PREDICTIONS, "v1", f"2026-03-04T0{h}", "stream/shard-0") for h in range(3)]
    listed = [Fact({}, str(i), keys[k], tally) for i, (k, tally) in enumerate(facts)]
    for one in listed[::3]:
        one.also = ((keys[(int(one.key) + 1) % 3], one.counts),)

    # when
    totals = summed(listed)

    # then: the same as adding each fact's counts, count by count
    expected: dict[CountKey, Counts] = {}
    for one in listed:
        for key, tally in one.adds():
            expected.setdefault(key, Counts()).add(_counted_alone(tally))
    assert totals == expected


def test_a_prediction_with_its_score_counts_what_quality_needs_of_it() -> None:
    # an approval: its quality bin (an implicit negative once labels matured) and its score
    approve = prediction_counts("approve", [0, 1], score=0.0042).counts()
    # a review: its score in its decision's sum only
    review = prediction_counts("review", [0, 1], score=0.25).counts()

    assert approve.attributes()["qa" + str(quality_bin(0.0042))] == 1
    assert approve.attributes()["qp_approve"] == 4200
    assert review.quality == Counter({"p_review": 250_000})
    assert Counts.from_item({"kind": "PRED"} | review.attributes()) == review
